//! Okta's provisioning flow, request for request as Okta sends it
//! (../shared/spec/idp-interop.md), checking every field Okta reads.

use serde_json::{json, Value};

use crate::common::{patch_op, Stack, SCIM_JSON};

fn okta_user(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "1mP0ssible!",
        "active": true
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_create_get_put_deactivate_reactivate_l1_l2_l3_l4() {
    let stack = Stack::start("okta_flow").await;
    let okta = stack.tenant("");

    // Connection test and lookup before create: an empty list, never 404.
    let lookup = okta.filter_users(r#"userName eq "ada@example.com""#).await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.content_type(), SCIM_JSON);
    assert_eq!(lookup.body["totalResults"], 0);
    assert_eq!(lookup.body["Resources"], json!([]));
    assert_eq!(
        lookup.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );

    // L1: create answers 201 with the full user.
    let created = okta
        .post("/Users", &okta_user("ada@example.com", "ada@example.com"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.content_type(), SCIM_JSON);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        created.headers["location"],
        format!("{}/Users/{id}", okta.base)
    );
    assert!(created.headers.contains_key("etag"));
    assert_eq!(created.body["userName"], "ada@example.com");
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["externalId"], "00u1abcd");
    assert_eq!(created.body["name"]["givenName"], "Ada");
    assert_eq!(created.body["emails"][0]["value"], "ada@example.com");
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(
        created.body.get("password").is_none(),
        "password is never stored or returned"
    );
    // R3: no roles sent, analyst + user.
    assert_eq!(
        created.body["roles"],
        json!([{"value": "analyst", "primary": true}, {"value": "user"}])
    );

    // P1: the acknowledged write is visible to the next read.
    let got = okta.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["id"], id.as_str());
    assert_eq!(got.body["name"]["familyName"], "Lovelace");

    // Okta's lookup in capitals still matches (I4: case-insensitive).
    let upper = okta.filter_users(r#"userName eq "ADA@EXAMPLE.COM""#).await;
    assert_eq!(upper.body["totalResults"], 1);
    assert_eq!(upper.body["Resources"][0]["id"], id.as_str());

    // L2: Okta updates a profile by PUT of the whole user it got, meta,
    // groups and password included.
    let mut put_body = got.body.clone();
    put_body["name"]["givenName"] = json!("Augusta");
    put_body["groups"] = json!([]);
    put_body["password"] = json!("an0ther!");
    let put = okta.put(&format!("/Users/{id}"), &put_body).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["name"]["givenName"], "Augusta");
    assert_eq!(put.body["name"]["familyName"], "Lovelace");
    assert_eq!(put.body["id"], id.as_str());
    assert_ne!(put.body["meta"]["version"], got.body["meta"]["version"]);

    // L3: deactivate with a path-less replace; still returned by GET and filters.
    let deactivate = patch_op(json!([{"op": "replace", "value": {"active": false}}]));
    let off = okta.patch(&format!("/Users/{id}"), &deactivate).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["active"], false);
    assert_eq!(
        okta.get(&format!("/Users/{id}")).await.body["active"],
        false
    );
    let listed = okta.filter_users(r#"userName eq "ada@example.com""#).await;
    assert_eq!(listed.body["Resources"][0]["active"], false);

    // L4: reactivate keeps roles.
    let on = okta
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await;
    assert_eq!(on.status, 200);
    assert_eq!(on.body["active"], true);
    assert_eq!(on.body["roles"], created.body["roles"]);

    // I4: Okta's conformance test re-POSTs the userName with another email.
    let dup = okta
        .post("/Users", &okta_user("ada@example.com", "other@example.com"))
        .await;
    dup.assert_error(409, Some("uniqueness"));
    // I3: the same email, SCIM-managed already, is a 409 too.
    let dup_email = okta
        .post("/Users", &okta_user("someone-else", "Ada@Example.com"))
        .await;
    dup_email.assert_error(409, Some("uniqueness"));
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users"),
        1,
        "rejected writes change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_paging_and_bad_requests() {
    let stack = Stack::start("okta_paging").await;
    let okta = stack.tenant("");
    for i in 0..5 {
        let r = okta
            .post(
                "/Users",
                &okta_user(&format!("u{i}@example.com"), &format!("u{i}@example.com")),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let page1 = okta.get("/Users?startIndex=1&count=2").await;
    assert_eq!(page1.body["totalResults"], 5);
    assert_eq!(page1.body["itemsPerPage"], 2);
    assert_eq!(page1.body["startIndex"], 1);
    let page3 = okta.get("/Users?startIndex=5&count=2").await;
    assert_eq!(page3.body["itemsPerPage"], 1);
    let all: Vec<String> = okta.get("/Users?startIndex=1&count=100").await.body["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        all,
        (0..5)
            .map(|i| format!("u{i}@example.com"))
            .collect::<Vec<_>>(),
        "stable order"
    );

    okta.filter_users(r#"userName eq "x" and"#)
        .await
        .assert_error(400, Some("invalidFilter"));
    okta.filter_users(r#"shoeSize eq "x""#)
        .await
        .assert_error(400, Some("invalidFilter"));
    okta.get("/Users?count=abc")
        .await
        .assert_error(400, Some("invalidValue"));
    okta.get(&format!("/Users/{}", uuid::Uuid::new_v4()))
        .await
        .assert_error(404, None);
    okta.get("/Users/not-a-uuid").await.assert_error(404, None);
    let no_email =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"});
    okta.post("/Users", &no_email)
        .await
        .assert_error(400, Some("invalidValue"));
    okta.patch(
        &format!("/Users/{}", uuid::Uuid::new_v4()),
        &patch_op(json!([])),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    let resp = okta
        .http
        .post(format!("{}/Users", okta.base))
        .header("Authorization", format!("Bearer {}", okta.token))
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users"),
        5,
        "bad input changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5_deleted_user_is_gone_then_comes_back_with_the_same_id() {
    let stack = Stack::start("l5_delete").await;
    let idp = stack.tenant("");
    let body = okta_user("gone@example.com", "gone@example.com");
    let created = idp.post("/Users", &body).await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().expect("id").to_string();
    let admin = patch_op(json!([{"op": "add", "path": "roles", "value": ["recorder", "admin"]}]));
    assert_eq!(idp.patch(&format!("/Users/{id}"), &admin).await.status, 200);

    let deleted = idp.delete(&format!("/Users/{id}")).await;
    assert_eq!(deleted.status, 204);
    idp.get(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    assert_eq!(
        idp.filter_users(r#"userName eq "gone@example.com""#)
            .await
            .body["totalResults"],
        0
    );
    idp.delete(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    // L5: the record is kept for the product.
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM users WHERE deleted_at IS NOT NULL"),
        1
    );

    let back = idp.post("/Users", &body).await;
    assert_eq!(back.status, 201, "{}", back.body);
    assert_eq!(back.body["id"], id.as_str(), "the same user comes back");
    assert_eq!(
        back.body["roles"],
        json!([{"value": "recorder", "primary": true}, {"value": "admin"}])
    );
    assert_eq!(idp.get(&format!("/Users/{id}")).await.status, 200);
}
