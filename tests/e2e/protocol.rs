//! The rest of RFC 7644 a client relies on: search by POST, sorting,
//! projections, conditional GET, /Me, and the roles values /Schemas
//! advertises per plan (T4).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::Stack;

async fn user(t: &crate::common::Tenant, name: &str, family: &str) -> String {
    let email = format!("{name}@proto.example");
    let r = t
        .post(
            "/Users",
            &json!({"userName": email, "name": {"givenName": name, "familyName": family},
                                 "emails": [{"value": email, "type": "work", "primary": true}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

fn names(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["userName"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_sort_projection_etags_me_and_schemas() {
    let stack = Stack::start("protocol").await;
    let t = stack.tenant("");
    let carol = user(&t, "carol", "Zed").await;
    user(&t, "alice", "Young").await;
    user(&t, "bob", "Xavier").await;

    // sortBy / sortOrder.
    let r = t
        .get("/Users?sortBy=name.familyName&sortOrder=ascending")
        .await;
    assert_eq!(
        names(&r.body),
        vec![
            "bob@proto.example",
            "alice@proto.example",
            "carol@proto.example"
        ]
    );
    let r = t
        .get("/Users?sortBy=userName&sortOrder=descending&count=2")
        .await;
    assert_eq!(
        names(&r.body),
        vec!["carol@proto.example", "bob@proto.example"]
    );
    assert_eq!(r.body["totalResults"], 3);

    // POST /Users/.search with a filter and a projection.
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "filter": "name.givenName sw \"a\" or name.familyName eq \"zed\"",
                        "attributes": ["userName"], "sortBy": "userName", "startIndex": 1, "count": 10});
    let r = t.post("/Users/.search", &search).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        names(&r.body),
        vec!["alice@proto.example", "carol@proto.example"]
    );
    let first = &r.body["Resources"][0];
    assert!(
        first.get("emails").is_none() && first.get("id").is_some(),
        "only userName (and id) were asked for: {first}"
    );

    // Root search spans resource types.
    t.post("/Groups", &json!({"displayName": "Protocol"})).await;
    let r = t
        .post(
            "/.search",
            &json!({"filter": "meta.created gt \"2000-01-01T00:00:00Z\""}),
        )
        .await;
    assert_eq!(r.body["totalResults"], 4, "{}", r.body);

    // excludedAttributes on a GET by id; ETag and If-None-Match.
    let got = t
        .get(&format!("/Users/{carol}?excludedAttributes=emails,name"))
        .await;
    assert!(got.body.get("emails").is_none() && got.body.get("name").is_none());
    assert_eq!(got.body["userName"], "carol@proto.example");
    let etag = got.headers["etag"].to_str().expect("etag").to_string();
    assert_eq!(got.body["meta"]["version"], etag.as_str());
    let cached = t
        .http
        .get(format!("{}/Users/{carol}", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(cached.status(), 304);

    // If-Match on PATCH: stale is 412 and changes nothing, current applies.
    let patch = json!({"Operations": [{"op": "replace", "path": "title", "value": "Boss"}]});
    let ok = t
        .http
        .patch(format!("{}/Users/{carol}", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("If-Match", &etag)
        .json(&patch)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
    let stale = t
        .http
        .patch(format!("{}/Users/{carol}", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("If-Match", &etag)
        .json(&json!({"Operations": [{"op": "replace", "path": "title", "value": "Nope"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), 412);
    assert_eq!(
        t.get(&format!("/Users/{carol}")).await.body["title"],
        "Boss"
    );

    // /Me is not supported.
    t.send(Method::GET, "/Me", None, None)
        .await
        .assert_error(501, None);

    // T4: /Schemas lists the roles values the plan allows.
    let roles_values = |schemas: &Value| -> Vec<String> {
        let user = schemas["Resources"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "User"))
            .cloned()
            .unwrap_or_default();
        let roles = user["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "roles"))
            .cloned()
            .unwrap_or_default();
        let value = roles["subAttributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "value"))
            .cloned()
            .unwrap_or_default();
        value["canonicalValues"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let basic = roles_values(&t.get("/Schemas").await.body);
    assert_eq!(
        basic,
        vec!["recorder", "analyst", "user", "manager", "admin"]
    );
    let full = stack.tenant("voice,listener");
    let all = roles_values(&full.get("/Schemas").await.body);
    assert_eq!(
        all,
        vec![
            "recorder",
            "recorder_and_voice",
            "analyst",
            "listener",
            "user",
            "manager",
            "admin"
        ]
    );
}

/// RFC 7240 respond-async: 202 once queued, the outcome (success or a
/// rule's error) at the status monitor afterwards; bad input is still
/// refused at once; /Bulk applies it when no operation waits on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_async_answers_202_and_the_status_monitor_gives_the_outcome() {
    let stack = Stack::start("respond_async").await;
    let t = stack.tenant("");
    let body = |email: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
               "emails": [{"value": email, "type": "work", "primary": true}]})
    };
    let r = t
        .send_async(Method::POST, "/Users", &body("async@proto.example"))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.headers["preference-applied"], "respond-async");
    let monitor = r.headers["location"]
        .to_str()
        .expect("Location")
        .to_string();
    assert!(
        monitor.starts_with(&format!("{}/Status/", t.base)),
        "{monitor}"
    );
    assert_eq!(r.body["status"], "pending");
    let done = t.settled(&monitor).await;
    assert_eq!(done.status, 201, "{}", done.body);
    let id = done.body["id"].as_str().expect("id").to_string();
    assert_eq!(t.get(&format!("/Users/{id}")).await.status, 200);
    assert_eq!(
        t.get(&monitor).await.status,
        201,
        "asked again, the same answer"
    );

    // The same userName again: accepted, then the processor's 409 (I4).
    let r = t
        .send_async(Method::POST, "/Users", &body("ASYNC@proto.example"))
        .await;
    assert_eq!(r.status, 202);
    let conflict = t
        .settled(r.headers["location"].to_str().expect("Location"))
        .await;
    conflict.assert_error(409, Some("uniqueness"));

    // Bad input is refused before anything is queued, preference or not.
    let r = t
        .send_async(Method::POST, "/Users", &json!({"userName": 7}))
        .await;
    r.assert_error(400, None);
    // Nobody else's, and never minted: not found.
    let r = t.get(&format!("/Status/{}", uuid::Uuid::new_v4())).await;
    r.assert_error(404, None);

    // /Bulk: independent operations are queued and answered 202 each.
    let op = |n: usize| {
        json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
               "data": body(&format!("bulk-async{n}@proto.example"))})
    };
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                      "Operations": [op(1), op(2), op(3)]});
    let r = t.send_async(Method::POST, "/Bulk", &bulk).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.headers["preference-applied"], "respond-async");
    let ops = r.body["Operations"].as_array().expect("Operations").clone();
    assert_eq!(ops.len(), 3);
    for op in &ops {
        assert_eq!(op["status"], "202", "{op}");
        let done = t.settled(op["location"].as_str().expect("location")).await;
        assert_eq!(done.status, 201, "{}", done.body);
        // Queued operations keep their whole outcome for the monitor
        // (synchronous /Bulk operations keep none of the resource).
        assert!(
            done.body["id"].is_string(),
            "the created user: {}",
            done.body
        );
    }
    // One operation referencing another's bulkId needs its outcome: the
    // preference is not applied, and the answer is the usual one.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [op(4), {"method": "POST", "path": "/Groups", "bulkId": "g",
            "data": {"displayName": "async group", "members": [{"value": "bulkId:u4"}]}}]});
    let r = t.send_async(Method::POST, "/Bulk", &bulk).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.get("preference-applied").is_none());
    let statuses = r.bulk_statuses();
    assert_eq!(statuses, ["201", "201"]);
}
