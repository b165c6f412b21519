//! What production needs before facing the internet: per-tenant rate
//! limits, input limits, tenant lifecycle, and SIGTERM losing nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{eventually, patch_op, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_limit_gets_429_while_another_succeeds() {
    let stack = Stack::new("rate_limit")
        .with_env("SCIMFLOW_TENANT_RATE", "5")
        .with_env("SCIMFLOW_TENANT_BURST", "10")
        .started()
        .await;
    let noisy = stack.tenant("");
    let quiet = stack.tenant("");
    let mut limited = None;
    for _ in 0..40 {
        let r = noisy.get("/Users").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let limited = limited.expect("the noisy tenant is limited");
    limited.assert_error(429, None);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    for _ in 0..5 {
        assert_eq!(
            quiet.get("/Users").await.status,
            200,
            "another tenant is not held back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_limit_answers_its_scim_error_and_changes_nothing() {
    let stack = Stack::start("input_limits").await;
    let t = stack.tenant("");
    let ok = json!({"userName": "limit@x.example", "emails": [{"value": "limit@x.example", "type": "work"}]});
    let id = t.post("/Users", &ok).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let before = t.get(&format!("/Users/{id}")).await.body;

    // Body size: 413 with the Error body.
    let huge = json!({"userName": "big@x.example", "title": "x".repeat(1_100_000)});
    t.post("/Users", &huge).await.assert_error(413, None);
    // JSON nesting depth.
    let deep: String = "[".repeat(300) + &"]".repeat(300);
    let r = t
        .http
        .post(format!("{}/Users", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .body(deep)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    // String length.
    let long = json!({"userName": "long@x.example", "displayName": "x".repeat(5000), "emails": [{"value": "long@x.example"}]});
    t.post("/Users", &long)
        .await
        .assert_error(400, Some("invalidValue"));
    // Number of emails.
    let emails: Vec<Value> = (0..101)
        .map(|i| json!({"value": format!("e{i}@x.example")}))
        .collect();
    t.post(
        "/Users",
        &json!({"userName": "many@x.example", "emails": emails}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    // Number of PATCH operations.
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "replace", "path": "title", "value": format!("t{i}")}))
        .collect();
    t.patch(&format!("/Users/{id}"), &patch_op(Value::Array(ops)))
        .await
        .assert_error(400, Some("tooMany"));
    // Filter length and depth.
    let long_filter = format!("userName eq \"{}\"", "a".repeat(5000));
    t.filter_users(&long_filter)
        .await
        .assert_error(400, Some("invalidFilter"));
    let deep_filter = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
    t.filter_users(&deep_filter)
        .await
        .assert_error(400, Some("invalidFilter"));
    // count is capped to the advertised maximum.
    let spc = t.get("/ServiceProviderConfig").await.body;
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(t.get("/Users?count=100000").await.status, 200);
    // Unknown and malformed Authorization headers.
    for auth in ["Basic dXNlcjpwYXNz", "Bearer", "non-token", "Bearer   "] {
        let r = t
            .http
            .get(format!("{}/Users", t.base))
            .header("Authorization", auth)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "{auth}");
        let body: Value = r.json().await.expect("SCIM error body");
        assert_eq!(body["status"], "401");
    }
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users"),
        1,
        "nothing was created"
    );
    assert_eq!(
        t.get(&format!("/Users/{id}")).await.body,
        before,
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_suspend_holds_commands_resume_applies_them_delete_purges() {
    let stack = Stack::start("tenant_lifecycle").await;
    let t = stack.tenant("");
    let u = t
        .post(
            "/Users",
            &json!({"userName": "s@x.example", "emails": [{"value": "s@x.example"}]}),
        )
        .await;
    let id = u.body["id"].as_str().expect("id").to_string();

    stack.cli(&["tenant", "suspend", "--tenant", &t.id, "--json"]);
    t.refused(&t.token).await;
    // A command already queued when the tenant was suspended is held.
    let envelope = json!({"v": 1, "command_id": uuid::Uuid::now_v7(), "tenant_id": t.id, "request_id": "queued",
        "accepted_at": "2026-01-01T00:00:00Z", "base_url": t.base,
        "command": {"type": "patch_user", "user_id": id, "body": patch_op(json!([{"op": "replace", "path": "title", "value": "held"}]))}});
    stack
        .produce_raw(
            &format!("{}.commands", stack.prefix()),
            &format!("{}/{id}", t.id),
            envelope.to_string().as_bytes(),
        )
        .await;
    let db = &stack;
    eventually(
        "the queued command to be held",
        Duration::from_secs(60),
        || async move {
            (db.count("SELECT count(*) AS n FROM dead_letters WHERE status = 'open'") == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users WHERE attrs->>'title' = 'held'"),
        0
    );

    let resumed = stack.cli(&["tenant", "resume", "--tenant", &t.id, "--json"]);
    assert_eq!(resumed["replayed"].as_array().map(Vec::len), Some(1));
    eventually(
        "the held command to apply after resume",
        Duration::from_secs(60),
        || async move {
            (db.count("SELECT count(*) AS n FROM users WHERE attrs->>'title' = 'held'") == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        t.get(&format!("/Users/{id}")).await.status,
        200,
        "the token works again"
    );

    // Delete: needs --confirm, then purges and revokes.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimflow"))
        .args(["tenant", "delete", "--tenant", &t.id])
        .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run");
    assert!(!out.status.success(), "delete without --confirm is refused");
    let deleted = stack.cli(&["tenant", "delete", "--tenant", &t.id, "--confirm", "--json"]);
    assert_eq!(deleted["purged"]["users"], 1);
    t.refused(&t.token).await;
    assert_eq!(stack.count("SELECT count(*) AS n FROM users"), 0);
    stack.outbox_drained().await;
    let events = stack.read_topic(&format!("{}.user-changes", stack.prefix()));
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.json()["type"] == "tenant.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "one tenant.deleted event");
    assert_eq!(deleted[0].key.as_deref(), Some(t.id.as_str()));
    crate::common::assert_matches_schema(&deleted[0].json(), "user-change-event.schema.json");
    let group_events = stack.read_topic(&format!("{}.group-changes", stack.prefix()));
    let on_groups: Vec<_> = group_events
        .iter()
        .filter(|e| e.json()["type"] == "tenant.deleted")
        .collect();
    assert_eq!(on_groups.len(), 1, "on the group topic too");
    crate::common::assert_matches_schema(&on_groups[0].json(), "group-change-event.schema.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_processor_and_ingress_during_writes_loses_nothing() {
    const USERS: usize = 12;
    const PATCHES: usize = 40;
    let mut stack = Stack::new("sigterm")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "5000")
        .started()
        .await;
    let t = stack.tenant("");
    let acks = Arc::new(AtomicUsize::new(0));
    let mut ids = Vec::new();
    for u in 0..USERS {
        let email = format!("term{u}@x.example");
        let r = t
            .post(
                "/Users",
                &json!({"userName": email, "emails": [{"value": email}]}),
            )
            .await;
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    let writers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (t, id, acks) = (t.clone(), id.clone(), acks.clone());
            tokio::spawn(async move {
                let (mut acked, mut uncertain, mut k) = (0usize, 0usize, 1usize);
                while k <= PATCHES {
                    let op = patch_op(
                        json!([{"op": "replace", "path": "title", "value": format!("v{k}")}]),
                    );
                    let sent = t
                        .http
                        .patch(format!("{}/Users/{id}", t.base))
                        .header("Authorization", format!("Bearer {}", t.token))
                        .json(&op)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            acked += 1;
                            acks.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) if r.status() == 503 => uncertain += 1,
                        Ok(r) => panic!("unexpected {}", r.status()),
                        // The ingress was not listening: nothing was sent; try again.
                        Err(e) if e.is_connect() => continue,
                        Err(_) => uncertain += 1,
                    }
                    k += 1;
                }
                (id, acked, uncertain)
            })
        })
        .collect();
    let wait = |n: usize| {
        let acks = acks.clone();
        async move {
            eventually("acknowledged writes", Duration::from_secs(120), || {
                let got = acks.load(Ordering::SeqCst);
                async move { (got >= n).then_some(()) }
            })
            .await
        }
    };
    wait(100).await;
    stack.stop_processor(0);
    stack.spawn_processor();
    wait(250).await;
    stack.stop_ingress();
    stack.spawn_ingress();
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.expect("writer"));
    }
    // A barrier per user proves everything published before it is applied.
    for (id, _, _) in &results {
        let barrier =
            patch_op(json!([{"op": "replace", "path": "displayName", "value": "barrier"}]));
        let (t, barrier) = (&t, &barrier);
        eventually("a barrier write", Duration::from_secs(120), || async move {
            (t.patch(&format!("/Users/{id}"), barrier).await.status == 200).then_some(())
        })
        .await;
    }
    let (mut acked_total, mut uncertain_total) = (0, 0);
    for (id, acked, uncertain) in &results {
        let applied = (stack.count(&format!("SELECT version AS n FROM users WHERE id = '{id}'"))
            - 2) as usize;
        assert!(
            applied >= *acked && applied <= acked + uncertain,
            "user {id}: {applied} applied, {acked} acked, {uncertain} uncertain"
        );
        acked_total += acked;
        uncertain_total += uncertain;
    }
    println!("sigterm: {acked_total} acknowledged writes all applied; {uncertain_total} uncertain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_admin_listeners_with_sensible_values() {
    let (stack, ingress_admin) = Stack::new("metrics").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let (stack, processor_admin) = stack.with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    let stack = stack
        .with_env("SCIMFLOW_METRICS_TENANT_LABEL", "true")
        .started()
        .await;
    let t = stack.tenant("");
    for i in 0..5 {
        let email = format!("m{i}@x.example");
        assert_eq!(
            t.post(
                "/Users",
                &json!({"userName": email, "emails": [{"value": email}]})
            )
            .await
            .status,
            201
        );
    }
    t.get("/Users/not-a-user").await.assert_error(404, None);
    let ingress = stack.metrics(ingress_admin).await;
    let created = format!(
        "scimflow_http_requests_total{{method=\"POST\",route=\"/scim/v2/{{tenant_id}}/Users\",status=\"201\",tenant=\"{}\"}} 5",
        t.id
    );
    assert!(ingress.contains(&created), "{created} in\n{ingress}");
    assert!(ingress.contains("scimflow_http_request_duration_seconds_bucket"));
    assert!(ingress.contains("status=\"404\""));
    assert!(ingress.contains("scimflow_db_pool_connections{state=\"idle\"}"));
    // Six authenticated requests, one token: the tenant cache answered.
    assert!(
        ingress.contains("scimflow_tenant_cache_live 1"),
        "{ingress}"
    );
    let hits = series_value(
        &ingress,
        "scimflow_tenant_cache_lookups_total{result=\"hit\"}",
    );
    assert!(hits >= 1.0, "tenant cache hits: {hits}");
    // The SCIM listener does not serve it.
    assert_eq!(
        stack
            .http
            .get(format!("{}/metrics", stack.base_url()))
            .send()
            .await
            .expect("request")
            .status(),
        404
    );
    let processor = stack.metrics(processor_admin).await;
    for series in [
        "scimflow_processor_batch_size_count",
        "scimflow_processor_commands_total",
        "scimflow_processor_batch_retries_total 0",
        "scimflow_processor_dead_letters_total 0",
        "scimflow_outbox_backlog",
        "scimflow_db_pool_connections",
    ] {
        assert!(processor.contains(series), "{series} in\n{processor}");
    }
    let commands = series_value(&processor, "scimflow_processor_commands_total");
    assert!(commands >= 5.0, "{commands}");
}

/// The value of one series (name and labels exactly) in Prometheus text, or
/// 0 when it is absent.
fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One tenant's backlog does not hold another's writes behind it: with
/// 3,000 of tenant A's creates queued ahead of one create of tenant B, the
/// processor applies B's long before it has worked through A's (strictly in
/// partition order, B would wait for nearly all of them). Nothing is lost,
/// and the committed offsets end at the end of every partition, although
/// commands were applied out of partition order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_tenants_backlog_does_not_hold_another_tenants_write() {
    use scimflow_shared::command::{Command as Cmd, CommandEnvelope, ENVELOPE_VERSION};

    const BACKLOG: usize = 3000;
    // The default batch size (500) reads ten batches ahead: the whole
    // backlog fits the window, as fair sharing needs (docs/guarantees.md).
    let mut stack = Stack::new("fair_share");
    // The ingress creates the topics; no processor yet, so the backlog builds.
    stack.spawn_ingress();
    stack.wait_ready().await;
    let (noisy, quiet) = (stack.tenant(""), stack.tenant(""));
    let envelope = |tenant: &str, n: usize| {
        let tenant_id: uuid::Uuid = tenant.parse().expect("tenant id");
        let user_id = uuid::Uuid::new_v4();
        let env = CommandEnvelope {
            v: ENVELOPE_VERSION,
            command_id: uuid::Uuid::new_v4(),
            tenant_id,
            request_id: format!("fair-{n}"),
            accepted_at: chrono::Utc::now(),
            base_url: format!("http://127.0.0.1/scim/v2/{tenant}"),
            if_match: None,
            reply: Default::default(),
            command: Cmd::CreateUser {
                user_id,
                body: json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("user{n}@{tenant}.example.com"),
                    "name": {"givenName": "Fair", "familyName": format!("Share{n}")},
                    "emails": [{"value": format!("user{n}@{tenant}.example.com"), "type": "work", "primary": true}],
                    "active": true
                }),
            },
        };
        (
            env.partition_key(),
            serde_json::to_vec(&env).expect("envelope JSON"),
        )
    };
    let mut messages: Vec<(String, Vec<u8>)> =
        (0..BACKLOG).map(|n| envelope(&noisy.id, n)).collect();
    let commands = format!("{}.commands", stack.prefix());
    stack.produce_many(&commands, &messages).await;
    messages.clear();
    stack
        .produce_many(&commands, &[envelope(&quiet.id, 0)])
        .await;

    stack.spawn_processor();
    let count = |tenant: &str| {
        stack.count(&format!(
            "SELECT count(*) AS n FROM users WHERE tenant_id = '{tenant}'"
        ))
    };
    let noisy_applied_when_quiet_was =
        eventually("the quiet tenant's write", Duration::from_secs(180), || {
            let quiet_applied = count(&quiet.id);
            let noisy_applied = count(&noisy.id);
            async move { (quiet_applied == 1).then_some(noisy_applied) }
        })
        .await;
    println!(
        "fair share: the quiet tenant's write was applied after {noisy_applied_when_quiet_was} of the {BACKLOG} writes queued ahead of it"
    );
    assert!(
        noisy_applied_when_quiet_was < (BACKLOG as i64) / 2,
        "the quiet tenant's write waited for {noisy_applied_when_quiet_was} of {BACKLOG} queued writes of another tenant"
    );
    eventually("the whole backlog", Duration::from_secs(300), || {
        let n = count(&noisy.id);
        async move { (n == BACKLOG as i64).then_some(()) }
    })
    .await;

    // Offsets: committed up to the end of every partition, no further.
    let kafka = stack.kafka_settings();
    let group = format!("{}.processor", stack.prefix());
    let timeout = Duration::from_secs(10);
    let ends: Vec<i64> = scimflow_bus::tail::offsets(&kafka, &commands, None, timeout)
        .expect("watermarks")
        .iter()
        .map(|p| p.high)
        .collect();
    assert_eq!(ends.len(), 4, "the command topic's partitions");
    eventually(
        "offsets committed to the end",
        Duration::from_secs(60),
        || {
            let committed = scimflow_bus::tail::offsets(&kafka, &commands, Some(&group), timeout)
                .ok()
                .map(|partitions| {
                    partitions
                        .iter()
                        .map(|p| p.committed.unwrap_or(-1))
                        .collect::<Vec<i64>>()
                });
            let done = committed.as_deref() == Some(ends.as_slice());
            async move { done.then_some(()) }
        },
    )
    .await;
}

/// The IdP's request id follows a write: echoed in the answer, on the
/// ingress's request span, through the Kafka headers to the processor's
/// command span, and into the change event. Tokens appear in no log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_follows_a_write_through_kafka_into_logs_and_events() {
    let stack = Stack::new("trace")
        .with_env("SCIMFLOW_LOG_FORMAT", "json")
        .with_env(
            "RUST_LOG",
            &format!(
                "info,{},scimflow_ingress=debug,scimflow_processor=debug",
                scimflow_bus::CLIENT_LOG_DIRECTIVE
            ),
        )
        .started()
        .await;
    let t = stack.tenant("");
    let request_id = "entra-7f3a9c01";
    let r = t
        .http
        .post(format!("{}/Users", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("Content-Type", "application/scim+json")
        .header("client-request-id", request_id)
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "trace@example.com",
                "emails": [{"value": "trace@example.com", "type": "work", "primary": true}],
                "active": true
            })
            .to_string(),
        )
        .send()
        .await
        .expect("POST /Users");
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], request_id);
    let user: Value = r.json().await.expect("user JSON");
    let user_id = user["id"].as_str().expect("id").to_string();
    // Without one, the ingress mints one and says which.
    let minted = t.get("/Users").await;
    let minted = minted.headers["x-request-id"].to_str().expect("header");
    assert!(uuid::Uuid::parse_str(minted).is_ok(), "minted id {minted}");

    stack.outbox_drained().await;
    let events = stack.read_topic(&format!("{}.user-changes", stack.prefix()));
    let event = events
        .iter()
        .map(|m| m.json())
        .find(|e| e["resource_id"] == user_id.as_str())
        .expect("the create's change event");
    assert_eq!(event["request_id"], request_id);
    let command_id = event["command_id"].as_str().expect("command_id");

    let log_lines = |name: &str| -> Vec<Value> {
        let path = stack.logs.join(format!("{}-{name}.log", stack.name));
        std::fs::read_to_string(path)
            .expect("service log")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let in_span = |lines: &[Value], span: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["span"]["name"] == span && l["span"]["request_id"] == request_id)
            .cloned()
            .collect()
    };
    let ingress = log_lines("ingress");
    let request_lines = in_span(&ingress, "request");
    assert!(
        request_lines
            .iter()
            .any(|l| l["span"]["tenant_id"] == t.id.as_str()
                && l["span"]["route"] == "/scim/v2/{tenant_id}/Users"),
        "no ingress line in the request's span: {request_lines:?}"
    );
    let processor = log_lines("processor0");
    let command_lines = in_span(&processor, "command");
    assert!(
        command_lines
            .iter()
            .any(|l| l["span"]["command_id"] == command_id && l["message"] == "command applied"),
        "no processor line in the command's span: {command_lines:?}"
    );
    for (name, lines) in [("ingress", &ingress), ("processor", &processor)] {
        assert!(
            !lines.iter().any(|l| l.to_string().contains(&t.token)),
            "the token is in the {name} log"
        );
    }
}
