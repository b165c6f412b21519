//! P2/P4: a command that cannot be applied goes to the dead-letter topic
//! and table with its reason, later commands for the same user are held
//! behind it, other users' writes keep flowing, and `dlq replay` after the
//! cause is fixed applies it (and what it held) once, in order.

use std::time::Duration;

use serde_json::json;

use crate::common::{eventually, patch_op, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p2_p4_poison_command_is_dead_lettered_held_and_replayed_once() {
    let stack = Stack::new("dlq")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "15000")
        .started()
        .await;
    let t = stack.tenant("");
    let user = |name: &str| {
        let email = format!("{name}@dlq.example");
        json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]})
    };
    let victim = t.post("/Users", &user("victim")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(
            t.post("/Users", &user(&format!("other{i}"))).await.body["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    // The cause: a database rule this command breaks, fixed later by ops.
    stack.refuse_poison();

    // Other users' writes keep flowing while the poison is retried.
    let flow = others.iter().map(|id| {
        let (t, id) = (t.clone(), id.clone());
        tokio::spawn(async move {
            let mut ok = 0;
            for k in 0..15 {
                let r = t
                    .patch(
                        &format!("/Users/{id}"),
                        &patch_op(
                            json!([{"op": "replace", "path": "title", "value": format!("t{k}")}]),
                        ),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                ok += 1;
            }
            ok
        })
    });
    let flow: Vec<_> = flow.collect();
    let version_before = stack.count(&format!(
        "SELECT version AS n FROM users WHERE id = '{victim}'"
    ));
    let poison = t
        .patch(
            &format!("/Users/{victim}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "poison"}])),
        )
        .await;
    poison.assert_error(500, None);
    assert!(
        poison.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("dead letter"),
        "{}",
        poison.body
    );
    // Held behind it: not applied ahead of the poison (P2). Sent with
    // respond-async, so its status monitor is what tells.
    let held = t
        .send_async(
            reqwest::Method::PATCH,
            &format!("/Users/{victim}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "after"}])),
        )
        .await;
    assert_eq!(held.status, 202, "{}", held.body);
    let held_monitor = held.headers["location"]
        .to_str()
        .expect("Location")
        .to_string();
    let held_outcome = t.settled(&held_monitor).await;
    held_outcome.assert_error(500, None);
    assert!(
        held_outcome.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("held for an operator (dead letter")),
        "{}",
        held_outcome.body
    );
    let mut flowed = 0;
    for f in flow {
        flowed += f.await.expect("writer");
    }
    assert_eq!(flowed, 60, "other users' writes all applied");
    // An undecodable message, straight onto the command topic.
    stack
        .produce_raw(
            &format!("{}.commands", stack.prefix()),
            "garbage-key",
            b"\xff not json",
        )
        .await;

    let db_ref = &stack;
    eventually("three dead letters", Duration::from_secs(60), || async move {
        (db_ref.count("SELECT count(*) AS n FROM dead_letters") == 3).then_some(())
    })
    .await;
    let listed = stack.cli(&["dlq", "list", "--json"]);
    let listed = listed.as_array().expect("list").clone();
    assert_eq!(listed.len(), 3);
    let reasons: Vec<&str> = listed
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons[0].contains("refused by a database rule") && reasons[0].contains("attempts"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("held"), "{reasons:?}");
    assert!(reasons[2].contains("undecodable"), "{reasons:?}");
    assert!(listed[0]["attempts"].as_i64().unwrap_or(0) > 1);
    assert_eq!(
        stack.count(&format!(
            "SELECT version AS n FROM users WHERE id = '{victim}'"
        )),
        version_before,
        "nothing applied"
    );

    // The dead-letter topic carries them with headers naming the reason,
    // the attempts and the origin.
    stack.outbox_drained().await;
    let dlq = stack.read_topic(&format!("{}.commands.dlq", stack.prefix()));
    assert_eq!(dlq.len(), 3);
    let first = dlq
        .iter()
        .find(|m| {
            m.header("scimflow-dlq-reason")
                .is_some_and(|r| r.contains("database rule"))
        })
        .expect("poison on the topic");
    assert_eq!(
        first.header("scimflow-dlq-original-topic"),
        Some(format!("{}.commands", stack.prefix()).as_str())
    );
    assert_eq!(
        first.header("scimflow-dlq-original-key"),
        Some(format!("{}/{victim}", t.id).as_str())
    );
    assert!(first
        .header("scimflow-dlq-original-offset")
        .is_some_and(|o| o.parse::<i64>().is_ok()));
    assert!(first
        .header("scimflow-dlq-attempts")
        .is_some_and(|a| a.parse::<i64>().unwrap_or(0) > 1));

    // Fix the cause, replay: the poison and what it held apply, once, in order.
    stack.allow_poison();
    let poison_id = listed[0]["id"].as_i64().expect("id").to_string();
    let replayed = stack.cli(&["dlq", "replay", &poison_id, "--json"]);
    assert_eq!(
        replayed["replayed"].as_array().map(|a| a.len()),
        Some(2),
        "{replayed}"
    );
    let again = stack.cli(&["dlq", "replay", &poison_id, "--json"]);
    assert_eq!(
        again["replayed"].as_array().map(|a| a.len()),
        Some(0),
        "a replay happens once: {again}"
    );
    let victim_ref = &victim;
    eventually(
        "the replayed commands to apply",
        Duration::from_secs(60),
        || async move {
            let v = db_ref.count(&format!(
                "SELECT version AS n FROM users WHERE id = '{victim_ref}'"
            ));
            (v == version_before + 2).then_some(())
        },
    )
    .await;
    assert_eq!(
        t.get(&format!("/Users/{victim}")).await.body["title"],
        "after",
        "in order: poison, then after"
    );
    // The held write's monitor now gives its real outcome.
    let applied = t.get(&held_monitor).await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(applied.body["title"], "after");
    let garbage_id = listed[2]["id"].as_i64().expect("id").to_string();
    stack.cli(&[
        "dlq",
        "discard",
        &garbage_id,
        "--reason",
        "not a command",
        "--json",
    ]);
    assert_eq!(stack.cli(&["dlq", "list", "--json"]), json!([]));
    let shown = stack.cli(&["dlq", "show", &poison_id, "--json"]);
    assert_eq!(shown["dead_letter"]["status"], "replayed");
    assert_eq!(shown["actions"][0]["action"], "replay");
    assert_eq!(shown["payload"]["command"]["type"], "patch_user");
    // The user's writes flow again.
    let r = t
        .patch(
            &format!("/Users/{victim}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "free"}])),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        stack.count(&format!(
            "SELECT version AS n FROM users WHERE id = '{victim}'"
        )),
        version_before + 3
    );
}
