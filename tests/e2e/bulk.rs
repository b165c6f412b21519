//! Bulk (RFC 7644 §3.7): bulkId references between operations, including
//! group members that are users created in the same request; per-operation
//! results; failOnErrors; the advertised limits.

use serde_json::{json, Value};

use crate::common::Stack;

fn user(bulk_id: &str, name: &str) -> Value {
    let email = format!("{name}@bulk.example");
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
           "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
                    "emails": [{"value": email, "type": "work", "primary": true}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_creates_users_and_a_group_referencing_them() {
    let stack = Stack::start("bulk").await;
    let t = stack.tenant("");
    let spc = t.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"]["supported"], true);
    assert_eq!(spc.body["bulk"]["maxOperations"], 1000);

    let request = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"displayName": "Bulk Team", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
        user("u1", "one"),
        user("u2", "two"),
        {"method": "PATCH", "path": "/Users/bulkId:u1",
         "data": {"Operations": [{"op": "replace", "path": "title", "value": "Lead"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": "no-email"}},
        {"method": "POST", "path": "/Groups", "bulkId": "g2", "data": {"displayName": "Broken", "members": [{"value": "bulkId:bad"}]}}
    ]});
    let r = t.post("/Bulk", &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = r.body["Operations"].as_array().expect("Operations");
    assert_eq!(ops.len(), 6);
    let status = r.bulk_statuses();
    assert_eq!(
        status,
        vec!["201", "201", "201", "200", "400", "409"],
        "{}",
        r.body
    );
    assert_eq!(ops[4]["response"]["scimType"], "invalidValue");
    assert!(ops[1]["location"]
        .as_str()
        .unwrap_or_default()
        .contains("/Users/"));

    let group_loc = ops[0]["location"].as_str().expect("group location");
    let group = t.get(group_loc).await;
    let mut members: Vec<String> = group.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().unwrap_or("").to_string())
        .collect();
    members.sort();
    let mut users: Vec<String> = ops[1..3]
        .iter()
        .map(|o| {
            o["location"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    users.sort();
    assert_eq!(
        members, users,
        "members reference the users created in the same request"
    );
    assert_eq!(
        t.get(ops[1]["location"].as_str().expect("loc")).await.body["title"],
        "Lead"
    );
    assert_eq!(
        t.filter_users(r#"userName eq "no-email""#).await.body["totalResults"],
        0
    );

    // failOnErrors: after the first wave's error, nothing more runs.
    let stop = json!({"failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "nobody"}},
        user("later", "later"),
        {"method": "PATCH", "path": "/Users/bulkId:later", "data": {"Operations": [{"op": "replace", "path": "title", "value": "x"}]}}
    ]});
    let r = t.post("/Bulk", &stop).await;
    assert_eq!(r.status, 200);
    let ops = r.body["Operations"].as_array().expect("Operations");
    assert_eq!(ops.len(), 2, "the dependent PATCH never ran: {}", r.body);

    // Past maxOperations: 413, nothing runs.
    let too_many: Vec<Value> = (0..1001)
        .map(|i| user(&format!("b{i}"), &format!("many{i}")))
        .collect();
    let r = t.post("/Bulk", &json!({"Operations": too_many})).await;
    r.assert_error(413, Some("tooMany"));
    assert_eq!(
        t.filter_users(r#"userName sw "many""#).await.body["totalResults"],
        0
    );
}

/// Creates the processor rejects (I2/I3: the email is taken; I4: the
/// userName is taken) among creates it applies, in one /Bulk request and so
/// (usually) in one batch: the rejected ones leave nothing behind (creates run
/// without a savepoint of their own, so this is what proves they decide
/// before they write), and the others are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_creates_in_a_batch_leave_nothing_and_spare_their_neighbours() {
    let stack = Stack::start("bulk_rejects").await;
    let t = stack.tenant("");
    let create = |bulk_id: &str, user_name: &str, email: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
               "data": {"userName": user_name, "emails": [{"value": email, "type": "work", "primary": true}]}})
    };
    let request = json!({"Operations": [
        create("a", "a@rej.example", "a@rej.example"),
        create("same-email", "other@rej.example", "A@rej.example"),
        create("b", "b@rej.example", "b@rej.example"),
        create("same-user-name", "B@REJ.example", "c@rej.example"),
        create("d", "d@rej.example", "d@rej.example"),
    ]});
    let r = t.post("/Bulk", &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let status = r.bulk_statuses();
    assert_eq!(status.len(), 5, "{}", r.body);
    // Independent operations are applied in any order (they are different
    // resources, on different partitions): of each conflicting pair, one
    // is created and the other refused.
    for (x, y) in [(0, 1), (2, 3)] {
        let mut pair = [status[x], status[y]];
        pair.sort();
        assert_eq!(pair, ["201", "409"], "{}", r.body);
    }
    assert_eq!(status[4], "201", "{}", r.body);
    assert_eq!(stack.count("SELECT count(*) AS n FROM users"), 3);
    assert_eq!(stack.count("SELECT count(*) AS n FROM user_history"), 3);
    stack.outbox_drained().await;
    let events = stack.read_topic(&format!("{}.user-changes", stack.prefix()));
    assert_eq!(events.len(), 3, "one change event per created user");
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM processed_commands"),
        5
    );
}

/// The processor looks up a batch's creates together before applying it
/// (`apply::BatchCreates`) and writes their rows when the batch ends: a PATCH
/// earlier in the same batch that takes a userName must still refuse a
/// later create of it, one that frees a userName must let a later create
/// have it, and a PATCH after a create must see the created user, all
/// without failing the batch (which would show as a retry). One
/// partition, so the operations reach the processor in the request's
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_earlier_in_a_batch_decides_the_creates_after_it() {
    let (stack, processor_admin) = Stack::new("bulk_rename")
        .with_env("SCIMFLOW_COMMAND_PARTITIONS", "1")
        .with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    let stack = stack.started().await;
    let t = stack.tenant("");
    let r = t
        .post(
            "/Users",
            &json!({"userName": "old@ren.example", "emails": [{"value": "u1@ren.example"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    let create = |user_name: &str, email: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": user_name,
               "data": {"userName": user_name, "emails": [{"value": email}]}})
    };
    let request = json!({"Operations": [
        {"method": "PATCH", "path": format!("/Users/{id}"),
         "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "replace", "path": "userName", "value": "new@ren.example"}]}},
        create("NEW@ren.example", "n@ren.example"),
        create("old@ren.example", "o@ren.example"),
    ]});
    let r = t.post("/Bulk", &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bulk_statuses(), ["200", "409", "201"], "{}", r.body);
    // The other way round: a create, then a rename to its userName. The
    // create's row is written only when the batch ends unless something
    // reads users first; the PATCH must see it.
    let request = json!({"Operations": [
        create("third@ren.example", "t@ren.example"),
        {"method": "PATCH", "path": format!("/Users/{id}"),
         "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "replace", "path": "userName", "value": "THIRD@ren.example"}]}},
    ]});
    let r = t.post("/Bulk", &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bulk_statuses(), ["201", "409"], "{}", r.body);
    let processor = stack.metrics(processor_admin).await;
    assert!(
        processor.contains("scimflow_processor_batch_retries_total 0"),
        "{processor}"
    );
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users WHERE deleted_at IS NULL"),
        3
    );
}

/// A /Bulk wave's commands share a message only when their keys land in
/// one partition (`bus::partition_for`), produced to that partition. That
/// must be the partition the producer puts each key in when it decides
/// (single requests, replays), or one user's commands could sit in two
/// partitions and be applied out of order (P2).
#[tokio::test]
async fn the_bulk_partitioner_agrees_with_the_producer() {
    use scimflow_bus as bus;

    let stack = Stack::new("bulk_partitioner");
    let topic = format!("{}.partitioner-check", stack.prefix());
    let partitions = 8;
    bus::ensure_topics(
        &stack.kafka_settings(),
        &[(topic.clone(), partitions)],
        1_000_000,
    )
    .await
    .expect("create the topic");
    let producer = bus::Publisher::connect(&stack.kafka_settings(), 1_000_000).expect("a producer");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let key = format!("{}/{}", uuid::Uuid::new_v4(), uuid::Uuid::now_v7());
        let message = bus::Outgoing::to(&topic, b"x").key(&key);
        let (partition, _) = producer
            .send(message, std::time::Duration::from_secs(60))
            .await
            .expect("produce");
        assert_eq!(partition, bus::partition_for(&key, partitions), "{key}");
        seen.insert(partition);
    }
    assert_eq!(
        seen.len(),
        partitions as usize,
        "200 keys reach every partition"
    );
}
