//! P4: no tenant's command can stop the pipeline for the others. Poison is
//! put straight on the command topic, past the ingress: a command that
//! makes the processor panic (the debug build's deliberate fault, which no
//! HTTP request can ask for) and a body nested too deep to decode. Each
//! becomes a dead letter naming its tenant and what failed, another
//! tenant's write is answered meanwhile, and a restarted processor does
//! not stop on them again. Replays keep their resource's order, and one
//! that fails again names the letter it came from.

use std::time::Duration;

use diesel::{PgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use scimflow_processor::batch::TEST_PANIC_REQUEST_ID;

use crate::common::{eventually, patch_op, Stack, Tenant};

/// A PATCH of `user` as the ingress would have sent it, with `request_id`
/// and `body`; (key, payload).
fn patch_envelope(
    t: &Tenant,
    user: &str,
    command_id: Uuid,
    request_id: &str,
    body: Value,
) -> (String, Vec<u8>) {
    let envelope = json!({"v": 1, "command_id": command_id, "tenant_id": t.id, "request_id": request_id,
        "accepted_at": "2026-01-01T00:00:00Z", "base_url": t.base,
        "command": {"type": "patch_user", "user_id": user, "body": body}});
    (
        format!("{}/{user}", t.id),
        envelope.to_string().into_bytes(),
    )
}

fn user(name: &str) -> Value {
    let email = format!("{name}@poison.example");
    json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]})
}

async fn letters(stack: &Stack, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} dead letters"),
        Duration::from_secs(60),
        || async move {
            let listed = stack.cli(&["dlq", "list", "--all", "--json"]);
            let listed = listed.as_array().cloned().unwrap_or_default();
            (listed.len() >= n).then_some(listed)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p4_poison_on_the_topic_never_blocks_another_tenant() {
    // One partition: the poison and the other tenant's writes share it,
    // so a processor stuck on the poison would answer nobody.
    let mut stack = Stack::new("poison")
        .with_env("SCIMFLOW_COMMAND_PARTITIONS", "1")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "20000")
        .started()
        .await;
    let (victim, other) = (stack.tenant(""), stack.tenant(""));
    let target = victim.post("/Users", &user("target")).await;
    assert_eq!(target.status, 201, "{}", target.body);
    let target = target.body["id"].as_str().expect("id").to_string();

    let (panics, deep) = (Uuid::now_v7(), Uuid::now_v7());
    let title = patch_op(json!([{"op": "replace", "path": "title", "value": "never"}]));
    // Deeper than the processor's JSON decoder goes (128 levels).
    let mut nested = json!("x");
    for _ in 0..140 {
        nested = json!([nested]);
    }
    let deep_body = patch_op(json!([{"op": "replace", "path": "title", "value": nested}]));
    let deep_user = Uuid::now_v7().to_string();
    let commands = format!("{}.commands", stack.prefix());
    stack
        .produce_many(
            &commands,
            &[
                patch_envelope(&victim, &target, panics, TEST_PANIC_REQUEST_ID, title),
                patch_envelope(&victim, &deep_user, deep, "deep", deep_body),
            ],
        )
        .await;

    // Another tenant's write, behind the poison on the same partition, is
    // answered (within the reply deadline) rather than left waiting.
    let r = other.post("/Users", &user("bystander")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bystander = r.body["id"].as_str().expect("id").to_string();

    let listed = letters(&stack, 2).await;
    let letter = |command: Uuid| {
        listed
            .iter()
            .find(|l| l["command_id"] == json!(command))
            .unwrap_or_else(|| panic!("a letter for {command}: {listed:?}"))
            .clone()
    };
    let (panicked, undecodable) = (letter(panics), letter(deep));
    let reason = |l: &Value| l["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason(&panicked).contains("panicked: a deliberate fault"),
        "{panicked}"
    );
    assert!(
        reason(&undecodable).contains("undecodable"),
        "{undecodable}"
    );
    for l in [&panicked, &undecodable] {
        assert_eq!(
            l["tenant_id"],
            json!(victim.id),
            "attributed to its tenant: {l}"
        );
        assert_eq!(l["status"], "open");
    }
    assert_eq!(
        victim.get(&format!("/Users/{target}")).await.body["title"],
        Value::Null,
        "the poison applied nothing"
    );
    // Its status monitor answers 500 naming the letter (as it would the
    // IdP's request waiting for it).
    let status = victim.get(&format!("/Status/{panics}")).await;
    status.assert_error(500, None);
    let named = format!("dead letter {}", panicked["id"]);
    assert!(
        status.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&named)),
        "{}",
        status.body
    );

    // A payload that cannot be decoded is not sent back round.
    let refused = stack.cli(&["dlq", "replay", &undecodable["id"].to_string(), "--json"]);
    assert_eq!(refused["replayed"], json!([]), "{refused}");
    assert!(
        refused["skipped"][0][1]
            .as_str()
            .is_some_and(|why| why.contains("cannot be decoded")),
        "{refused}"
    );

    // A restarted processor does not stop on the poison again.
    stack.stop_processor(0);
    stack.spawn_processor();
    let (other, bystander) = (&other, &bystander);
    eventually(
        "a write after the restart",
        Duration::from_secs(90),
        || async move {
            let op = patch_op(json!([{"op": "replace", "path": "title", "value": "after"}]));
            let r = other.patch(&format!("/Users/{bystander}"), &op).await;
            (r.status == 200).then_some(())
        },
    )
    .await;
    let r = victim
        .patch(
            &format!("/Users/{}", other_target(&victim).await),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "flows"}])),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the victim tenant's other users flow: {}",
        r.body
    );
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM dead_letters"),
        2,
        "nothing dead-lettered twice"
    );
}

/// A user of `t` other than the poisoned one.
async fn other_target(t: &Tenant) -> String {
    let r = t.post("/Users", &user("unrelated")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p2_p4_replays_keep_their_order_and_a_failed_replay_names_its_letter() {
    let stack = Stack::new("replay_order")
        .with_env("SCIMFLOW_COMMAND_PARTITIONS", "1")
        .started()
        .await;
    let t = stack.tenant("");
    let target = t.post("/Users", &user("ordered")).await;
    let target = target.body["id"].as_str().expect("id").to_string();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let op = |v: &str| patch_op(json!([{"op": "replace", "path": "title", "value": v}]));
    stack
        .produce_many(
            &format!("{}.commands", stack.prefix()),
            &[
                patch_envelope(&t, &target, first, TEST_PANIC_REQUEST_ID, op("first")),
                patch_envelope(&t, &target, second, "second", op("second")),
            ],
        )
        .await;
    let listed = letters(&stack, 2).await;
    let (l1, l2) = (listed[0]["id"].to_string(), listed[1]["id"].to_string());
    assert_eq!(listed[0]["command_id"], json!(first));
    assert!(
        listed[1]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("held")),
        "{listed:?}"
    );

    // The later letter cannot go ahead of the earlier one.
    let refused = stack.cli(&["dlq", "replay", &l2, "--json"]);
    assert_eq!(refused["replayed"], json!([]), "{refused}");
    let why = refused["skipped"][0][1].as_str().unwrap_or_default();
    assert!(why.contains(&format!("dead letter {l1}")), "{refused}");

    // Replaying the first brings the second along; the first fails again
    // (the fault is still there), so the second stays held behind it.
    let replayed = stack.cli(&["dlq", "replay", &l1, "--json"]);
    assert_eq!(replayed["replayed"].as_array().map(Vec::len), Some(2));
    let listed = letters(&stack, 4).await;
    let again = |of: &str| {
        listed
            .iter()
            .find(|l| l["replay_of"].to_string().as_str() == of)
            .unwrap_or_else(|| panic!("a letter replayed from {of}: {listed:?}"))
            .clone()
    };
    let (l3, l4) = (again(&l1), again(&l2));
    assert_eq!(l3["command_id"], json!(first));
    assert!(
        l3["reason"]
            .as_str()
            .is_some_and(|r| r.contains("panicked")),
        "{l3}"
    );
    assert_eq!(l4["command_id"], json!(second));
    assert!(
        l4["reason"].as_str().is_some_and(|r| r.starts_with("held")),
        "{l4}"
    );
    assert!(l3["id"].as_i64() < l4["id"].as_i64());
    let shown = stack.cli(&["dlq", "show", &l1, "--json"]);
    assert_eq!(shown["dead_letter"]["status"], "replayed");
    assert_eq!(shown["replayed_as"], json!([l3["id"]]));
    let shown = stack.cli(&["dlq", "show", &l3["id"].to_string(), "--json"]);
    assert_eq!(shown["replay_of"].to_string(), l1);
    assert_eq!(
        t.get(&format!("/Users/{target}")).await.body["title"],
        Value::Null,
        "nothing applied out of order"
    );
}

/// The boundary itself, against the real database: a command that panics
/// after writing is rolled back to its savepoint and dead-lettered with the
/// panic's message; its neighbours apply, and the connection is left with
/// no transaction open. In a whole batch the panic fails the batch, naming
/// the command, and nothing is kept.
#[test]
fn p4_a_panic_behind_the_boundary_leaves_the_transaction_and_the_connection_sound() {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    use scimflow_bus::Topics;
    use scimflow_processor::apply::{apply, ApplyError, Context};
    use scimflow_processor::batch::{
        run_batch_with, BatchError, BatchSettings, Disposition, Inbound,
    };
    use scimflow_processor::policy::{Attempt, Failure, Mode};
    use scimflow_shared::command::{CommandEnvelope, Outcome};

    let stack = Stack::new("boundary");
    let mut conn = stack.db();
    let tenant = crate::races::new_tenant(&mut conn);
    let (a, b) = (
        crate::races::new_user(&mut conn, tenant, "a@boundary.example"),
        crate::races::new_user(&mut conn, tenant, "b@boundary.example"),
    );
    let poison = Uuid::now_v7();
    let command = |user: Uuid, command_id: Uuid, title: &str| {
        let env = CommandEnvelope {
            v: 1,
            command_id,
            tenant_id: tenant,
            request_id: "boundary".into(),
            accepted_at: chrono::Utc::now(),
            base_url: "http://127.0.0.1/scim/v2".into(),
            if_match: None,
            reply: Default::default(),
            command: scimflow_shared::command::Command::PatchUser {
                user_id: user,
                body: patch_op(json!([{"op": "replace", "path": "title", "value": title}])),
            },
        };
        Inbound {
            topic: "boundary.commands".into(),
            partition: 0,
            offset: 0,
            key: Some(env.partition_key()),
            payload: serde_json::to_vec(&env).expect("envelope"),
            trace: None,
        }
    };
    let batch = [
        command(a, Uuid::now_v7(), "one"),
        command(b, poison, "poisoned"),
        command(a, Uuid::now_v7(), "two"),
    ];
    // Writes first, then panics: the write must not survive.
    let faulty = move |conn: &mut PgConnection, ctx: &Context<'_>| -> Result<Outcome, ApplyError> {
        let outcome = apply(conn, ctx)?;
        if ctx.envelope.command_id == poison {
            panic!("boom after a write");
        }
        Ok(outcome)
    };
    let topics = Topics::new("boundary");
    let settings = |mode| BatchSettings {
        topics: &topics,
        attempt: Attempt { failed: 1, mode },
    };
    let version = |user: Uuid| {
        stack.count(&format!(
            "SELECT version AS n FROM users WHERE id = '{user}'"
        ))
    };
    let open = |conn: &mut PgConnection| {
        AnsiTransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()
            .expect("a sound transaction manager")
    };

    let whole = run_batch_with(&mut conn, &batch, &settings(Mode::Whole), &faulty);
    match whole {
        Err(BatchError::Command {
            index: 1,
            failure: Failure::Panic,
            ref detail,
        }) => assert!(detail.contains("boom after a write"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(open(&mut conn), None, "no transaction left open");
    assert_eq!((version(a), version(b)), (1, 1), "nothing kept");

    let isolated = run_batch_with(&mut conn, &batch, &settings(Mode::Isolated), &faulty)
        .expect("the batch commits");
    let statuses: Vec<String> = isolated
        .iter()
        .map(|d| match d {
            Disposition::Answered(o) => o.status().to_string(),
            Disposition::DeadLettered { command_id, .. } => {
                assert_eq!(*command_id, Some(poison));
                "dead".into()
            }
        })
        .collect();
    assert_eq!(statuses, ["200", "dead", "200"]);
    assert_eq!(open(&mut conn), None, "no transaction left open");
    assert_eq!(
        (version(a), version(b)),
        (3, 1),
        "the neighbours applied, the poison did not"
    );
    assert_eq!(
        stack.count(&format!(
            "SELECT count(*) AS n FROM dead_letters WHERE command_id = '{poison}' \
             AND tenant_id = '{tenant}' AND reason LIKE '%panicked: boom after a write%'"
        )),
        1
    );
    // The connection still works.
    assert_eq!(
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .expect("usable"),
        1
    );
}
