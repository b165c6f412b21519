//! Microsoft Entra ID's provisioning flow: GET-filter, POST, PATCH with
//! capitalised ops, string booleans, value-filter paths, dotted and URN
//! keys, roles from app role assignments.

use serde_json::json;

use crate::common::{patch_op, Stack, SCIM_JSON};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_filter_post_patch_flow_r4_l3() {
    let stack = Stack::start("entra_flow").await;
    let entra = stack.tenant("voice");

    // Connection test with a random GUID: an empty list.
    let probe = entra
        .filter_users(&format!("userName eq \"{}\"", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.body["totalResults"], 0);

    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "8c5f6b2e-entra",
        "userName": "Test_User_a@contoso.com",
        "active": true,
        "displayName": "Test User",
        "title": null,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_a@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701", "department": "Sales"}
    });
    let created = entra.post("/Users", &create).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.content_type(), SCIM_JSON);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert!(
        created.body.get("title").is_none(),
        "explicit null means not set"
    );
    assert_eq!(created.body[ENTERPRISE]["employeeNumber"], "701");
    assert_eq!(created.body["roles"][0]["value"], "analyst");

    // Entra looks users up by externalId and by email too.
    let by_ext = entra
        .filter_users(r#"externalId eq "8c5f6b2e-entra""#)
        .await;
    assert_eq!(by_ext.body["totalResults"], 1);
    // With the work email as matching attribute Entra filters on the
    // PATCH-path form, outside RFC 7644's filter grammar but unambiguous:
    // read as emails[type eq "work" and value eq "..."].
    let by_email = entra
        .filter_users(r#"emails[type eq "work"].value eq "test_user_a@contoso.com""#)
        .await;
    assert_eq!(by_email.status, 200, "{}", by_email.body);
    assert_eq!(by_email.body["totalResults"], 1, "{}", by_email.body);
    assert_eq!(by_email.body["Resources"][0]["id"], id.as_str());
    let other_type = entra
        .filter_users(r#"emails[type eq "home"].value eq "test_user_a@contoso.com""#)
        .await;
    assert_eq!(other_type.body["totalResults"], 0, "{}", other_type.body);
    let by_email = entra
        .filter_users(r#"emails.value eq "TEST_USER_A@contoso.com" and active eq true"#)
        .await;
    assert_eq!(by_email.body["totalResults"], 1, "{}", by_email.body);

    // PATCH as Entra sends it without the aadOptscim062020 flag.
    let patch = patch_op(json!([
        {"op": "Replace", "path": "displayName", "value": "Tess User"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "tess@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Userton"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-42"},
        {"op": "Replace", "path": "active", "value": "False"}
    ]));
    let patched = entra.patch(&format!("/Users/{id}"), &patch).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["displayName"], "Tess User");
    assert_eq!(
        patched.body["emails"],
        json!([{"primary": true, "type": "work", "value": "tess@contoso.com"}])
    );
    assert_eq!(patched.body["name"]["familyName"], "Userton");
    assert_eq!(patched.body[ENTERPRISE]["manager"]["value"], "mgr-42");
    assert_eq!(
        patched.body["active"], false,
        "L3: the string False deactivates"
    );

    // I1: identity followed the work email.
    let by_new_email = entra
        .filter_users(r#"emails.value eq "tess@contoso.com""#)
        .await;
    assert_eq!(by_new_email.body["totalResults"], 1);

    // With the flag: path-less replace with dotted and URN keys.
    let flagged = patch_op(json!([{"op": "replace", "value": {
        "name.givenName": "Tessa",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "702",
        "active": true
    }}]));
    let r = entra.patch(&format!("/Users/{id}"), &flagged).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Tessa");
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "702");
    assert_eq!(r.body[ENTERPRISE]["department"], "Sales");
    assert_eq!(r.body["active"], true);

    // Roles from an app role assignment: a permission only keeps the
    // primary role (R4), a primary only keeps the permission.
    let admin = patch_op(json!([{"op": "Add", "path": "roles", "value": [
        {"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "admin"}]}]));
    let r = entra.patch(&format!("/Users/{id}"), &admin).await;
    assert_eq!(
        r.body["roles"],
        json!([{"value": "analyst", "primary": true}, {"value": "admin"}]),
        "{}",
        r.body
    );
    let voice = patch_op(
        json!([{"op": "replace", "path": "roles[primary eq \"True\"].value", "value": "recorder_and_voice"}]),
    );
    let r = entra.patch(&format!("/Users/{id}"), &voice).await;
    assert_eq!(
        r.body["roles"],
        json!([{"value": "recorder_and_voice", "primary": true}, {"value": "admin"}]),
        "{}",
        r.body
    );

    // A malformed PATCH is refused and changes nothing.
    let before = entra.get(&format!("/Users/{id}")).await.body;
    let bad = patch_op(json!([{"op": "Replace", "path": "emails[type eq", "value": "x"}]));
    entra
        .patch(&format!("/Users/{id}"), &bad)
        .await
        .assert_error(400, Some("invalidPath"));
    let listener =
        patch_op(json!([{"op": "Add", "path": "roles", "value": [{"value": "listener"}]}]));
    let refused = entra.patch(&format!("/Users/{id}"), &listener).await;
    refused.assert_error(400, Some("invalidValue"));
    assert!(refused.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("listener plan feature"));
    assert_eq!(entra.get(&format!("/Users/{id}")).await.body, before);
}
