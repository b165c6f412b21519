//! Bounds end to end: sizes that agree from the request body to the Kafka
//! message, a 413 that a client writing its whole body first can read, and
//! what one ingress takes on under abuse (requests in flight, slow
//! requests and statements, /Bulk rates, failed authentication, readiness
//! probes, a waiting write's memory). Each is a setting on `Config`.

use std::io::{Read, Write};
use std::time::Duration;

use diesel::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, Stack, Tenant};
use scimflow_shared::config::max_body_bytes;

/// The default message size and the body limit that follows from it.
const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// The value of one series (name and labels exactly) in Prometheus text, or
/// `None` when it is absent.
fn series(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// A valid user whose body is exactly `len` bytes: an attribute outside
/// the schema pads it. The ingress keeps a body as sent, so the padding
/// travels in the command (the processor drops it, I5).
fn user_of_len(email: &str, len: usize) -> String {
    let head = format!(r#"{{"userName":"{email}","emails":[{{"value":"{email}"}}],"padding":""#);
    let tail = r#""}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let body = format!("{head}{}{tail}", "p".repeat(pad));
    assert_eq!(body.len(), len, "pad a body to {len} bytes");
    body
}

async fn post_raw(t: &Tenant, path: &str, body: String) -> crate::common::Reply {
    let resp = t
        .http
        .post(format!("{}{path}", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("Content-Type", "application/scim+json")
        .body(body)
        .send()
        .await
        .expect("HTTP request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap_or_default();
    crate::common::Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Nothing an IdP would retry forever: a body the ingress accepts fits in
/// a message (at the limit, it is applied), and one that does not fit,
/// whichever way it got there, is a 413 with the sizes in its detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_would_not_fit_in_a_message_is_413_and_one_that_fits_is_applied() {
    let stack = Stack::start("sizes").await;
    let t = stack.tenant("");
    let limit = max_body_bytes(MAX_MESSAGE_BYTES);

    // At the body limit: accepted, queued and applied.
    let at_limit = post_raw(&t, "/Users", user_of_len("at-limit@x.example", limit)).await;
    assert_eq!(at_limit.status, 201, "{}", at_limit.body);
    // One byte over: refused before anything is queued.
    let over = post_raw(&t, "/Users", user_of_len("over@x.example", limit + 1)).await;
    over.assert_error(413, None);
    let detail = over.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&limit.to_string()), "{detail}");
    // Larger than the old 1 MiB limit allowed, smaller than 1 MiB.
    let between = post_raw(&t, "/Users", user_of_len("between@x.example", 1_020_000)).await;
    between.assert_error(413, None);
    // Within the body limit, but longer once re-encoded in the envelope
    // (`1e15` is written out as 1000000000000000.0).
    let numbers = vec!["1e15"; limit / 6].join(",");
    let growing = format!(
        r#"{{"userName":"grow@x.example","emails":[{{"value":"grow@x.example"}}],"n":[{numbers}]}}"#
    );
    assert!(growing.len() <= limit);
    let grown = post_raw(&t, "/Users", growing).await;
    grown.assert_error(413, None);
    let detail = grown.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("queued command") && detail.contains(&MAX_MESSAGE_BYTES.to_string()),
        "{detail}"
    );

    // /Bulk: one operation too large for a message is that operation's
    // 413; its neighbour is applied.
    let big = user_of_len("bulk-big@x.example", 1_500_000);
    let bulk = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[
            {{"method":"POST","path":"/Users","bulkId":"big","data":{big}}},
            {{"method":"POST","path":"/Users","bulkId":"small","data":{{"userName":"bulk-small@x.example","emails":[{{"value":"bulk-small@x.example"}}]}}}}]}}"#
    );
    let r = post_raw(&t, "/Bulk", bulk).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bulk_statuses(), vec!["413", "201"], "{}", r.body);
    let entry = &r.body["Operations"][0]["response"];
    assert_eq!(entry["status"], "413");
    assert!(
        entry["detail"]
            .as_str()
            .is_some_and(|d| d.contains("queued command")),
        "{entry}"
    );

    // Many small operations that together are far larger than a message:
    // they go out in several messages, and every one is applied.
    let ops: Vec<Value> = (0..300)
        .map(|i| {
            let email = format!("many{i}@x.example");
            json!({"method": "POST", "path": "/Users", "bulkId": format!("m{i}"),
                   "data": {"userName": email, "emails": [{"value": email}], "padding": "q".repeat(12_000)}})
        })
        .collect();
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
    assert!(bulk.to_string().len() > 3 * MAX_MESSAGE_BYTES);
    let r = t.post("/Bulk", &bulk).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.bulk_statuses().iter().all(|s| *s == "201"),
        "{:?}",
        r.bulk_statuses()
    );
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users"),
        302,
        "the user at the limit, the small bulk one and the 300; nothing refused"
    );
}

/// Write a whole HTTP/1.1 request (head, then every body byte), and only
/// then read: what Python's urllib and many Java clients do. Returns the
/// response's status line.
fn write_all_then_read(port: u16, head: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write the head");
    stream
        .write_all(body)
        .expect("write the whole body: the server must not reset the connection");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).expect("read the answer: not a reset");
        assert!(n > 0, "the connection closed without an answer");
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_string()
}

/// A client that writes its whole body before it reads gets the answer,
/// not a reset: over the limit (declared, or chunked without a length),
/// and refused before the body mattered (a wrong token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_its_whole_body_first_reads_the_413() {
    let stack = Stack::start("drain").await;
    let t = stack.tenant("");
    let port = stack.http_port;
    let path = format!("/scim/v2/{}/Users", t.id);
    let token = t.token.clone();
    let lines = tokio::task::spawn_blocking(move || {
        // Larger than what the kernel's socket buffers hold on loopback
        // (a few MB): the server must read it, or the client's writes fail.
        let body = vec![b' '; 8_000_000];
        let declared = write_all_then_read(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            &body,
        );
        let mut chunked = Vec::new();
        for _ in 0..160 {
            chunked.extend_from_slice(format!("{:x}\r\n", 50_000).as_bytes());
            chunked.extend_from_slice(&[b' '; 50_000]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let streamed = write_all_then_read(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            &chunked,
        );
        // Within the /Bulk limit, never read: the token is wrong.
        let unread = vec![b' '; 4_000_000];
        let bulk = path.replace("/Users", "/Bulk");
        let unauthorized = write_all_then_read(
            port,
            &format!(
                "POST {bulk} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: {}\r\n\r\n",
                unread.len()
            ),
            &unread,
        );
        (declared, streamed, unauthorized)
    })
    .await
    .expect("the raw client");
    assert!(lines.0.starts_with("HTTP/1.1 413"), "{}", lines.0);
    assert!(lines.1.starts_with("HTTP/1.1 413"), "{}", lines.1);
    assert!(lines.2.starts_with("HTTP/1.1 401"), "{}", lines.2);
    assert_eq!(stack.count("SELECT count(*) AS n FROM users"), 0);
}

/// A request the HTTP layer refuses before any handler runs (more headers
/// than it parses: 431) is answered and the connection closed; a client
/// still writing its body must read that answer, not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_routing_is_answered_to_a_client_still_writing() {
    let stack = Stack::start("linger").await;
    let t = stack.tenant("");
    let port = stack.http_port;
    let path = format!("/scim/v2/{}/Bulk", t.id);
    let token = t.token.clone();
    let line = tokio::task::spawn_blocking(move || {
        let junk: String = (0..150).map(|i| format!("X-Junk-{i}: j\r\n")).collect();
        let body = vec![b' '; 4_000_000];
        write_all_then_read(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{junk}Content-Length: {}\r\n\r\n",
                body.len()
            ),
            &body,
        )
    })
    .await
    .expect("the raw client");
    assert!(line.starts_with("HTTP/1.1 431"), "{line}");
    // The ingress goes on serving.
    let r = t.get("/Users").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Wait until `n` of the ingress's statements wait for a lock.
async fn statements_waiting_for_a_lock(stack: &Stack, n: i64) {
    let db = stack
        .db_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    eventually(
        "statements to wait for the lock",
        Duration::from_secs(60),
        || {
            let waiting = stack.count(&format!(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{db}' AND wait_event_type = 'Lock'"
            ));
            async move { (waiting >= n).then_some(()) }
        },
    )
    .await;
}

/// Hold `users` locked until the returned connection ends its transaction.
fn lock_users(stack: &Stack) -> diesel::PgConnection {
    let mut conn = stack.db();
    diesel::sql_query("BEGIN")
        .execute(&mut conn)
        .expect("begin");
    diesel::sql_query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .expect("lock");
    conn
}

/// Past `SCIMFLOW_MAX_IN_FLIGHT` requests, the next one is refused at once
/// with 503, Retry-After and a SCIM error, instead of queueing; probes still
/// answer; the requests in flight finish normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_limit_get_503_at_once_and_probes_still_answer() {
    let stack = Stack::new("in_flight")
        .with_env("SCIMFLOW_MAX_IN_FLIGHT", "2")
        .started()
        .await;
    let t = stack.tenant("");
    assert_eq!(t.get("/Users").await.status, 200, "the tenant is cached");
    let mut lock = lock_users(&stack);
    // Two listings wait for the lock, holding both places.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.get("/Users").await.status })
        })
        .collect();
    statements_waiting_for_a_lock(&stack, 2).await;
    let refused = t.get("/ServiceProviderConfig").await;
    refused.assert_error(503, None);
    assert!(refused.headers.contains_key("retry-after"));
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("limit of 2 requests"), "{detail}");
    for probe in ["/healthz", "/readyz"] {
        let r = stack
            .http
            .get(format!("{}{probe}", stack.base_url()))
            .send()
            .await
            .expect("probe");
        assert_eq!(r.status(), 200, "{probe}");
    }
    diesel::sql_query("COMMIT")
        .execute(&mut lock)
        .expect("unlock");
    for h in held {
        assert_eq!(h.await.expect("request"), 200);
    }
    assert_eq!(t.get("/Users").await.status, 200, "a place is free again");
}

/// A statement past `SCIMFLOW_DB_STATEMENT_TIMEOUT_MS` is cancelled by
/// PostgreSQL, and a request past `SCIMFLOW_REQUEST_TIMEOUT_MS` (here one
/// whose body never finishes arriving) is answered: both 503 with
/// Retry-After and a detail that says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_and_a_slow_request_end_in_a_precise_503() {
    let stack = Stack::new("timeouts")
        .with_env("SCIMFLOW_DB_STATEMENT_TIMEOUT_MS", "1000")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "1000")
        .with_env("SCIMFLOW_REQUEST_TIMEOUT_MS", "3000")
        .started()
        .await;
    let t = stack.tenant("");
    assert_eq!(t.get("/Users").await.status, 200, "the tenant is cached");
    let mut lock = lock_users(&stack);
    let r = t.get("/Users").await;
    r.assert_error(503, None);
    assert!(r.headers.contains_key("retry-after"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("statement took longer"), "{detail}");
    diesel::sql_query("COMMIT")
        .execute(&mut lock)
        .expect("unlock");

    // A body that never finishes arriving.
    let port = stack.http_port;
    let path = format!("/scim/v2/{}/Users", t.id);
    let token = t.token.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{\"userName\":"
        );
        stream.write_all(head.as_bytes()).expect("write");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .expect("the slow client");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert!(answer.contains("did not finish within 3000 ms"), "{answer}");
    assert_eq!(t.get("/Users").await.status, 200, "still serving");
}

/// A /Bulk request costs one token of the tenant's rate per operation: a
/// request of more operations than the burst takes a full bucket and
/// leaves the tenant waiting for the rest; another tenant is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_costs_a_rate_token_per_operation() {
    let stack = Stack::new("bulk_rate")
        .with_env("SCIMFLOW_TENANT_RATE", "1")
        .with_env("SCIMFLOW_TENANT_BURST", "10")
        .started()
        .await;
    let noisy = stack.tenant("");
    let quiet = stack.tenant("");
    // 100 operations, refused one by one without reaching the broker (not
    // a user id): the cost is in the number, not in the work.
    let ops: Vec<Value> = (0..100)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/not-a-user-{i}")}))
        .collect();
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
    let r = noisy.post("/Bulk", &bulk).await;
    assert_eq!(r.status, 200, "a full bucket lets it through: {}", r.body);
    // 99 tokens in debt at 1 a second: the next request waits.
    let after = noisy.get("/Users").await;
    after.assert_error(429, None);
    let retry: u64 = after.headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry > 10, "{retry}");
    noisy.post("/Bulk", &bulk).await.assert_error(429, None);
    assert_eq!(quiet.get("/Users").await.status, 200, "another tenant");
}

/// Failed authentication: a repeated unknown token is looked up once; past
/// `SCIMFLOW_AUTH_FAILURE_LIMIT` failures an address gets 429 with
/// Retry-After and no lookup, while a token the ingress knows still works
/// from it; a token that becomes valid (a tenant change) works at once,
/// although it was remembered as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_throttled_and_unknown_tokens_are_looked_up_once() {
    let (stack, admin) = Stack::new("auth_failures")
        .with_env("SCIMFLOW_AUTH_FAILURE_LIMIT", "20")
        .with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let stack = stack.started().await;
    let t = stack.tenant("");
    let other = stack.tenant("");
    assert_eq!(t.get("/Users").await.status, 200);
    let misses = |text: &str| {
        series(text, "scimflow_tenant_cache_lookups_total{result=\"miss\"}").unwrap_or(0.0)
    };

    // A token unknown now, valid later: remembered as unknown, then let
    // in as soon as the change that makes it valid commits.
    let later = format!("scimflow_later_{}", uuid::Uuid::new_v4().simple());
    let r = other.send(Method::GET, "/Users", None, Some(&later)).await;
    r.assert_error(401, None);
    let before = misses(&stack.metrics(admin).await);
    for _ in 0..3 {
        other
            .send(Method::GET, "/Users", None, Some(&later))
            .await
            .assert_error(401, None);
    }
    assert_eq!(
        misses(&stack.metrics(admin).await),
        before,
        "a repeated unknown token is not looked up again"
    );
    diesel::sql_query(format!(
        "UPDATE tenants SET token_hash = '{}' WHERE id = '{}'",
        scimflow_shared::token::hash(&later),
        other.id
    ))
    .execute(&mut stack.db())
    .expect("give the tenant the token");
    eventually("the new token to work", Duration::from_secs(10), || async {
        let r = other.send(Method::GET, "/Users", None, Some(&later)).await;
        (r.status == 200).then_some(())
    })
    .await;

    // That change emptied the cache: the token is known again once used.
    assert_eq!(t.get("/Users").await.status, 200);
    // Unknown tokens, each new, until the address is held.
    let mut refused = 0;
    let throttled = loop {
        let token = format!("scimflow_wrong_{}", uuid::Uuid::new_v4().simple());
        let r = t.send(Method::GET, "/Users", None, Some(&token)).await;
        if r.status == 429 {
            break r;
        }
        r.assert_error(401, None);
        refused += 1;
        assert!(refused <= 20, "no more than the limit of 401s");
    };
    throttled.assert_error(429, None);
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let detail = throttled.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("failed authentications"), "{detail}");
    let held = misses(&stack.metrics(admin).await);
    for _ in 0..3 {
        let token = format!("scimflow_wrong_{}", uuid::Uuid::new_v4().simple());
        t.send(Method::GET, "/Users", None, Some(&token))
            .await
            .assert_error(429, None);
    }
    assert_eq!(
        misses(&stack.metrics(admin).await),
        held,
        "a held address's tokens are not looked up"
    );
    assert_eq!(
        t.get("/Users").await.status,
        200,
        "a known token still works"
    );
}

/// `/readyz` checks the database and the broker at most once a second,
/// however often it is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_checks_at_most_once_a_second() {
    let (stack, admin) = Stack::new("readyz").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let stack = stack.started().await;
    let checks = |text: &str| series(text, "scimflow_readiness_checks_total");
    let before = checks(&stack.metrics(admin).await).expect("the series");
    let start = std::time::Instant::now();
    for _ in 0..200 {
        let r = stack
            .http
            .get(format!("{}/readyz", stack.base_url()))
            .send()
            .await
            .expect("readyz");
        assert_eq!(r.status(), 200);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ran = checks(&stack.metrics(admin).await).expect("the series") - before;
    assert!(
        ran <= elapsed.ceil() + 1.0,
        "{ran} checks for 200 calls in {elapsed:.1} s"
    );
}

/// A change event larger than a message is published reduced (no
/// resource, `"truncated": true`, its ids and sequence kept) and the relay
/// goes on with the events after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_a_message_is_published_reduced_and_the_relay_goes_on() {
    let stack = Stack::start("big_event").await;
    let topic = format!("{}.user-changes", stack.prefix());
    let event = |n: u128, pad: usize| {
        json!({"schema_version": 1, "event_id": uuid::Uuid::from_u128(n), "type": "user.updated",
               "tenant_id": uuid::Uuid::from_u128(1), "resource_id": uuid::Uuid::from_u128(2),
               "sequence": n, "occurred_at": "2026-12-01T00:00:00Z", "command_id": uuid::Uuid::from_u128(n),
               "request_id": format!("r{n}"), "changed": ["attributes"],
               "resource": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "id": uuid::Uuid::from_u128(2), "userName": "u@x.example", "active": true,
                            "roles": [], "meta": {}, "title": "t".repeat(pad)}})
    };
    let key = format!("{}/{}", uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
    for e in [event(1, 1_200_000), event(2, 10)] {
        diesel::sql_query(
            "INSERT INTO outbox (topic, message_key, payload, headers) VALUES ($1, $2, $3, '{}'::jsonb)",
        )
        .bind::<diesel::sql_types::Text, _>(&topic)
        .bind::<diesel::sql_types::Text, _>(&key)
        .bind::<diesel::sql_types::Binary, _>(e.to_string().into_bytes())
        .execute(&mut stack.db())
        .expect("an outbox row");
    }
    stack.outbox_drained().await;
    let events: Vec<Value> = stack.read_topic(&topic).iter().map(|m| m.json()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let (reduced, whole) = (&events[0], &events[1]);
    assert_eq!(reduced["truncated"], true);
    assert_eq!(reduced["resource"], Value::Null);
    let original = event(1, 0);
    for kept in [
        "event_id",
        "type",
        "tenant_id",
        "resource_id",
        "sequence",
        "command_id",
        "request_id",
        "changed",
    ] {
        assert_eq!(reduced[kept], original[kept], "{kept}");
    }
    crate::common::assert_matches_schema(reduced, "user-change-event.schema.json");
    assert_eq!(whole["sequence"], 2);
    assert!(whole.get("truncated").is_none());
    assert_eq!(whole["resource"]["title"], "t".repeat(10));
}

/// A write waiting for its outcome holds nothing of its body: forty
/// writes of 900 KB each, published and waiting (no processor answers),
/// add far less than their bodies to the ingress's resident memory.
/// (glibc is told to map every large allocation on its own, so memory
/// freed is memory returned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_write_holds_none_of_its_body() {
    let (mut stack, admin) = Stack::new("waiting_memory")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "120000")
        .with_env("MALLOC_MMAP_THRESHOLD_", "131072")
        .with_admin_port("SCIMFLOW_ADMIN_ADDR");
    stack.spawn_ingress(); // no processor: nothing is answered
    stack.wait_ready().await;
    let t = stack.tenant("");
    let rss = |text: &str| series(text, "process_resident_memory_bytes").unwrap_or(0.0);
    // Warm up the path once (a body refused after parsing).
    let warm = post_raw(&t, "/Users", user_of_len("", 900_000)).await;
    assert_eq!(warm.status, 400, "{}", warm.body);
    let before = rss(&stack.metrics(admin).await);
    let n = 40;
    let writes: Vec<_> = (0..n)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                post_raw(
                    &t,
                    "/Users",
                    user_of_len(&format!("w{i}@x.example"), 900_000),
                )
                .await
            })
        })
        .collect();
    let kafka = stack.kafka_settings();
    let topic = format!("{}.commands", stack.prefix());
    eventually(
        "every write to be published",
        Duration::from_secs(120),
        || {
            let queued: i64 =
                scimflow_bus::tail::offsets(&kafka, &topic, None, Duration::from_secs(5))
                    .map(|partitions| partitions.iter().map(|p| p.high - p.low).sum())
                    .unwrap_or(0);
            async move { (queued >= n).then_some(()) }
        },
    )
    .await;
    let during = rss(&stack.metrics(admin).await);
    let bodies = (n as f64) * 900_000.0;
    assert!(
        during - before < bodies / 3.0,
        "{n} waiting writes of 900 KB added {:.1} MB",
        (during - before) / 1e6
    );
    for w in writes {
        w.abort();
    }
}
