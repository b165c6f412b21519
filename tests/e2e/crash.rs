//! P1/P3 under a crash: SIGKILL the processor in the middle of a stream of
//! writes, start a new one, and check that every acknowledged write is
//! applied, and that no write is applied twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::common::{eventually, patch_op, Stack};

const USERS: usize = 12;
const PATCHES_PER_USER: usize = 25;
const KILL_AFTER_ACKS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p1_p3_processor_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice() {
    // A short deadline: requests caught by the crash answer 503 quickly,
    // which is what an IdP would see and retry.
    let mut stack = Stack::new("crash")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "3000")
        .started()
        .await;
    let tenant = stack.tenant("");
    let acks = Arc::new(AtomicUsize::new(0));

    let mut writers = Vec::new();
    for u in 0..USERS {
        let (tenant, acks) = (tenant.clone(), acks.clone());
        writers.push(tokio::spawn(async move {
            let email = format!("crash{u}@example.com");
            let body = json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]});
            // The create must be acknowledged to get an id; retry it the
            // way an IdP would (look up, then POST again).
            let id = loop {
                let r = tenant.post("/Users", &body).await;
                if r.status == 201 {
                    acks.fetch_add(1, Ordering::SeqCst);
                    break r.body["id"].as_str().expect("id").to_string();
                }
                assert!(r.status == 503 || r.status == 409, "create: {} {}", r.status, r.body);
                let found = tenant.filter_users(&format!("userName eq \"{email}\"")).await;
                if let Some(id) = found.body["Resources"][0]["id"].as_str() {
                    break id.to_string();
                }
            };
            let (mut acked, mut uncertain) = (0usize, 0usize);
            for k in 1..=PATCHES_PER_USER {
                let op = patch_op(json!([{"op": "replace", "path": "title", "value": format!("v{k}")}]));
                let r = tenant.patch(&format!("/Users/{id}"), &op).await;
                match r.status.as_u16() {
                    200 => {
                        assert_eq!(r.body["title"], format!("v{k}"), "the answer is this write's outcome");
                        acked += 1;
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    // Published, outcome unknown within the deadline.
                    503 => uncertain += 1,
                    other => panic!("patch: {other} {}", r.body),
                }
            }
            (id, acked, uncertain)
        }));
    }

    eventually(
        "enough acknowledged writes before the kill",
        Duration::from_secs(120),
        || {
            let n = acks.load(Ordering::SeqCst);
            async move { (n >= KILL_AFTER_ACKS).then_some(()) }
        },
    )
    .await;
    stack.kill_processor(0);
    let killed_at = acks.load(Ordering::SeqCst);
    stack.spawn_processor();

    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.expect("writer"));
    }
    let acked: usize = results.iter().map(|r| r.1).sum();
    let uncertain: usize = results.iter().map(|r| r.2).sum();
    let sent_patches = USERS * PATCHES_PER_USER;
    println!("crash test: killed after {killed_at} acks; {acked} patches acknowledged, {uncertain} answered 503, {sent_patches} sent");

    // Every published command is eventually applied, exactly once.
    let expected_commands =
        stack.count("SELECT count(*) AS n FROM processed_commands WHERE status = 201") as usize;
    assert_eq!(expected_commands, USERS, "one create per user");
    let db = &stack;
    eventually(
        "every published patch to be applied",
        Duration::from_secs(90),
        || {
            let n = db.count("SELECT count(*) AS n FROM processed_commands WHERE status = 200")
                as usize;
            async move { (n >= sent_patches).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM processed_commands WHERE status = 200") as usize,
        sent_patches
    );
    for (id, _, _) in &results {
        // Each patch bumps the version once: applied twice would show.
        let version = stack.count(&format!("SELECT version AS n FROM users WHERE id = '{id}'"));
        assert_eq!(
            version as usize,
            1 + PATCHES_PER_USER,
            "user {id}: every write applied exactly once"
        );
        let last = stack.count(&format!("SELECT count(*) AS n FROM users WHERE id = '{id}' AND attrs->>'title' = 'v{PATCHES_PER_USER}'"));
        assert_eq!(
            last, 1,
            "user {id}: the last write is the last applied (P2)"
        );
    }
    assert!(acked + uncertain == sent_patches);
}
