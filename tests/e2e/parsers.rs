//! Hostile input to the parsers, through the real ingress, broker and
//! processor: each attribute path, filter and body the review found
//! reaching a panic, a stack overflow, an undecodable command or an
//! unchecked write is a precise 400 at the ingress (or a write that
//! stores only what a PUT would), both processes keep serving, another
//! tenant's writes succeed, and nothing is dead-lettered.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{patch_op, Stack, Tenant};

fn user_body(name: &str) -> Value {
    let email = format!("{name}@parsers.example");
    json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]})
}

async fn create_user(t: &Tenant, body: &Value) -> String {
    let r = t.post("/Users", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

/// `{"userName": ..., "x": [[...]]}` nested `depth` levels in all.
fn nested_body(name: &str, depth: usize) -> String {
    let mut body = user_body(name).to_string();
    body.pop();
    format!(
        "{body},\"x\":{}1{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

async fn send_raw(t: &Tenant, path: &str, body: String) -> crate::common::Reply {
    let r = t
        .http
        .post(format!("{}{path}", t.base))
        .header("Authorization", format!("Bearer {}", t.token))
        .header("Content-Type", crate::common::SCIM_JSON)
        .body(body)
        .send()
        .await
        .expect("HTTP request");
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.json().await.unwrap_or(Value::Null);
    crate::common::Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_filters_and_bodies_are_refused_at_the_ingress() {
    let stack = Stack::start("parsers").await;
    let (a, b) = (stack.tenant(""), stack.tenant(""));
    let phones: Vec<Value> = (0..100)
        .map(|i| json!({"value": format!("+1 555 {i:04}"), "type": "work"}))
        .collect();
    let mut body = user_body("phones");
    body["phoneNumbers"] = json!(phones);
    let id = create_user(&a, &body).await;
    let user = format!("/Users/{id}");

    // A path-less key with a multi-byte character across byte 4, and the
    // same text after a value filter: refused before it is queued.
    for key in [
        "emails[type eq \"work\"].abcé",
        "abcé",
        "urné:x",
        "name.givenNamé",
    ] {
        let r = a
            .patch(
                &user,
                &patch_op(json!([{"op": "add", "value": {key: "x"}}])),
            )
            .await;
        r.assert_error(400, Some("invalidPath"));
    }
    // A PATCH path holding a long `or` chain: refused by its length,
    // naming the limit, before any tree is built.
    let chain = format!("emails[{}]", vec!["a pr"; 60_000].join(" or "));
    let r = a
        .patch(&user, &patch_op(json!([{"op": "remove", "path": chain}])))
        .await;
    r.assert_error(400, Some("invalidPath"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("4096 bytes"),
        "{}",
        r.body
    );

    // Multi-byte text in query parameters and in a body key.
    for query in [
        "/Users?attributes=abc%C3%A9",
        "/Users?excludedAttributes=urn%C3%A9",
        "/Users?sortBy=abc%C3%A9",
        &format!("{user}?attributes=abc%C3%A9"),
    ] {
        a.get(query).await.assert_error(400, Some("invalidValue"));
    }
    let mut odd_key = user_body("oddkey");
    odd_key["abcé"] = json!("dropped, as any unknown attribute is");
    create_user(&a, &odd_key).await;
    let terms = vec!["userName pr"; 101].join(" or ");
    a.filter_users(&terms)
        .await
        .assert_error(400, Some("invalidFilter"));

    // Nesting: at the limit the processor decodes and applies it; one
    // level past it, a 400 naming the limit.
    let r = send_raw(&a, "/Users", nested_body("deep64", 64)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = send_raw(&a, "/Users", nested_body("deep65", 65)).await;
    r.assert_error(400, Some("invalidSyntax"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("64 levels"),
        "{}",
        r.body
    );

    // PATCH holds no more than PUT may: the 101st phone number is refused
    // (by the processor: it depends on the stored user), in one request
    // or in several operations, and the user keeps its 100.
    let more: Vec<Value> = (100..200)
        .map(|i| json!({"value": format!("+1 {i}")}))
        .collect();
    let r = a
        .patch(
            &user,
            &patch_op(json!([{"op": "add", "path": "phoneNumbers", "value": more}])),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    let r = a
        .patch(
            &user,
            &patch_op(json!([{"op": "add", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1"}])),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    let r = a.get(&user).await;
    assert_eq!(r.body["phoneNumbers"].as_array().map(Vec::len), Some(100));

    // An element a filter creates keeps only the schema's sub-attributes.
    let other = create_user(&a, &user_body("seeded")).await;
    let path = format!(
        "addresses[type eq \"work\" and note eq \"{}\"].locality",
        "n".repeat(3000)
    );
    let r = a
        .patch(
            &format!("/Users/{other}"),
            &patch_op(json!([{"op": "add", "path": path, "value": "Oslo"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["addresses"],
        json!([{"type": "work", "locality": "Oslo"}])
    );

    // Members per request are capped.
    let members: Vec<String> = (0..10_001u128)
        .map(|n| uuid::Uuid::from_u128(n).to_string())
        .collect();
    let r = a
        .post(
            "/Groups",
            &json!({"displayName": "big", "members": members}),
        )
        .await;
    r.assert_error(400, Some("tooMany"));

    // Both processes still serve, and another tenant is unaffected.
    create_user(&b, &user_body("other-tenant")).await;
    let r = a
        .send(
            Method::PATCH,
            &user,
            Some(&patch_op(
                json!([{"op": "replace", "path": "title", "value": "ok"}]),
            )),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stack.count("SELECT count(*) AS n FROM dead_letters"), 0);
}
