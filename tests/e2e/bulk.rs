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
    let status: Vec<&str> = ops
        .iter()
        .map(|o| o["status"].as_str().unwrap_or(""))
        .collect();
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
