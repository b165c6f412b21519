//! The product rules (../shared/spec/product-rules.md) through the real
//! pipeline, each with an IdP-shaped request. Test names carry rule ids.

use serde_json::{json, Value};

use crate::common::{patch_op, Reply, Stack, Tenant};

fn body(email: &str, extra: Value) -> Value {
    let mut b = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true
    });
    if let (Some(obj), Value::Object(more)) = (b.as_object_mut(), extra) {
        obj.extend(more);
    }
    b
}

async fn create(t: &Tenant, email: &str, extra: Value) -> Reply {
    t.post("/Users", &body(email, extra)).await
}

fn roles(primary: &str, permission: &str) -> Value {
    json!([{"value": primary, "primary": true}, {"value": permission}])
}

async fn patch(t: &Tenant, id: &str, ops: Value) -> Reply {
    t.patch(&format!("/Users/{id}"), &patch_op(ops)).await
}

fn id(r: &Reply) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.body))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_r2_r3_r7_r11_shapes_defaults_and_round_trip() {
    let stack = Stack::start("rules_shapes").await;
    let t = stack.tenant("");
    // R2: plain strings; R1: one primary role and one permission.
    let a = create(
        &t,
        "strings@r.example",
        json!({"roles": ["recorder", "admin"]}),
    )
    .await;
    assert_eq!(a.body["roles"], roles("recorder", "admin"), "{}", a.body);
    // R2: objects with extra sub-attributes, order irrelevant, case and spaces.
    let b = create(
        &t,
        "objects@r.example",
        json!({"roles": [
        {"value": " ADMIN ", "display": "Admin", "type": "WindowsAzureActiveDirectoryRole"},
        {"value": "Recorder", "primary": "True"}]}),
    )
    .await;
    assert_eq!(b.body["roles"], roles("recorder", "admin"));
    // R3: no roles, an empty list, only unrecognised values: analyst + user.
    for (email, extra) in [
        ("none@r.example", json!({})),
        ("empty@r.example", json!({"roles": []})),
        (
            "unknown@r.example",
            json!({"roles": [{"value": "pilot"}, "captain"]}),
        ),
    ] {
        let r = create(&t, email, extra).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["roles"], roles("analyst", "user"), "{email}");
    }
    // R7: every value unrecognised keeps an existing user's roles.
    let a_id = id(&a);
    let r = patch(
        &t,
        &a_id,
        json!([{"op": "replace", "path": "roles", "value": [{"value": "pilot"}]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("recorder", "admin"));
    // R11: PUT of a GET result changes nothing, not even the version.
    let got = t.get(&format!("/Users/{a_id}")).await;
    let put = t.put(&format!("/Users/{a_id}"), &got.body).await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body["roles"], got.body["roles"]);
    assert_eq!(put.body["meta"]["version"], got.body["meta"]["version"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_r5_r6_independent_parts_user_and_listener() {
    let stack = Stack::start("rules_parts").await;
    let t = stack.tenant("listener");
    let u = id(&create(
        &t,
        "parts@r.example",
        json!({"roles": ["recorder", "manager"]}),
    )
    .await);
    // R4: only a permission keeps the primary role; only a primary keeps the permission.
    let r = patch(
        &t,
        &u,
        json!([{"op": "add", "path": "roles", "value": [{"value": "admin"}]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("recorder", "admin"));
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": ["analyst"]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("analyst", "admin"));
    // R5: `user` removes admin.
    let r = patch(
        &t,
        &u,
        json!([{"op": "add", "path": "roles", "value": ["user"]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("analyst", "user"));
    // R6: listener with admin in one request applies listener + user.
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": ["listener", "admin"]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("listener", "user"));
    // R6: admin sent to a user who stays listener is not applied.
    let r = patch(
        &t,
        &u,
        json!([{"op": "add", "path": "roles", "value": [{"value": "admin", "primary": true}]}]),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["roles"], roles("listener", "user"));
    // R6: switching to listener clears a permission held before.
    let v = id(&create(
        &t,
        "switch@r.example",
        json!({"roles": ["recorder", "manager"]}),
    )
    .await);
    let r = patch(
        &t,
        &v,
        json!([{"op": "replace", "value": {"roles": ["listener"]}}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("listener", "user"));
    // R6: a new user created as listener with manager.
    let r = create(
        &t,
        "newlistener@r.example",
        json!({"roles": ["manager", "listener"]}),
    )
    .await;
    assert_eq!(r.body["roles"], roles("listener", "user"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_r9_t4_conflicts_and_plan_features_change_nothing() {
    let stack = Stack::start("rules_conflicts").await;
    let t = stack.tenant("");
    let u = id(&create(
        &t,
        "conflict@r.example",
        json!({"roles": ["recorder", "admin"]}),
    )
    .await);
    let before = t.get(&format!("/Users/{u}")).await.body;
    // R8: two primary roles, none marked primary: 400, nothing changes.
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": ["recorder", "analyst"]}]),
    )
    .await;
    r.assert_error(400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap_or_default().contains("R8"));
    // R8: two permissions, two marked: 400.
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": [
        {"value": "admin", "primary": true}, {"value": "manager", "primary": "True"}]}]),
    )
    .await;
    r.assert_error(400, Some("invalidValue"));
    // R8: exactly one marked primary wins.
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": [
        {"value": "analyst", "primary": "True"}, {"value": "recorder"}]}]),
    )
    .await;
    assert_eq!(r.body["roles"], roles("analyst", "admin"));
    let r = patch(
        &t,
        &u,
        json!([{"op": "replace", "path": "roles", "value": ["recorder"]}]),
    )
    .await;
    assert_eq!(r.body["roles"], before["roles"]);
    // R9/T4: a role the plan lacks is refused, naming the feature.
    let r = create(
        &t,
        "voice@r.example",
        json!({"roles": ["recorder_and_voice"]}),
    )
    .await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(
        r.body["detail"],
        "recorder_and_voice needs the voice plan feature (rule R9)"
    );
    assert_eq!(
        t.filter_users(r#"userName eq "voice@r.example""#)
            .await
            .body["totalResults"],
        0,
        "nothing created"
    );
    let r = patch(
        &t,
        &u,
        json!([{"op": "Add", "path": "roles", "value": [{"value": "listener"}]}]),
    )
    .await;
    assert!(r.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("listener plan feature"));
    assert_eq!(
        t.get(&format!("/Users/{u}")).await.body["roles"],
        before["roles"]
    );
    // T4: once the plan has the feature, the same request applies.
    let set = stack.cli(&[
        "tenant",
        "set-features",
        "--tenant",
        &t.id,
        "--features",
        "voice",
        "--json",
    ]);
    assert_eq!(set["features"], json!(["voice"]));
    let r = create(
        &t,
        "voice@r.example",
        json!({"roles": ["recorder_and_voice"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["roles"], roles("recorder_and_voice", "user"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_every_patch_form_on_roles_and_bulk() {
    let stack = Stack::start("rules_patch").await;
    let t = stack.tenant("voice");
    let u = id(&create(
        &t,
        "patchforms@r.example",
        json!({"roles": ["recorder", "admin"]}),
    )
    .await);
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "remove by value filter resets the permission",
            json!([{"op": "remove", "path": "roles[value eq \"admin\"]"}]),
            roles("recorder", "user"),
        ),
        (
            "add applies to the added values",
            json!([{"op": "Add", "path": "roles", "value": [{"value": "manager"}]}]),
            roles("recorder", "manager"),
        ),
        (
            "Entra: primary filter with a sub-attribute",
            json!([{"op": "replace", "path": "roles[primary eq \"True\"].value", "value": "recorder_and_voice"}]),
            roles("recorder_and_voice", "manager"),
        ),
        (
            "remove by value filter resets the primary role",
            json!([{"op": "remove", "path": "roles[value eq \"recorder_and_voice\"]"}]),
            roles("analyst", "manager"),
        ),
        (
            "path-less value object",
            json!([{"op": "replace", "value": {"roles": [{"value": "recorder"}, {"value": "admin"}]}}]),
            roles("recorder", "admin"),
        ),
        (
            "remove of roles resets both",
            json!([{"op": "remove", "path": "roles"}]),
            roles("analyst", "user"),
        ),
        (
            "Entra: remove with a value list",
            json!([{"op": "add", "path": "roles", "value": ["admin"]}, {"op": "Remove", "path": "roles", "value": [{"value": "admin"}]}]),
            roles("analyst", "user"),
        ),
    ];
    for (name, ops, want) in cases {
        let r = patch(&t, &u, ops).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.body["roles"], want, "R10 {name}");
    }
    // Bulk carries the same rules.
    let bulk = json!({"Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": body("bulkroles@r.example", json!({"roles": ["listener", "admin"]}))},
        {"method": "PATCH", "path": format!("/Users/{u}"), "data": {"Operations": [{"op": "add", "path": "roles", "value": ["recorder_and_voice", "manager"]}]}}
    ]});
    let r = t.post("/Bulk", &bulk).await;
    let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        ops[0]["status"], "400",
        "listener is not on this plan: {}",
        r.body
    );
    assert_eq!(ops[1]["status"], "200");
    assert_eq!(
        t.get(&format!("/Users/{u}")).await.body["roles"],
        roles("recorder_and_voice", "manager")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i1_i2_i4_identity_is_the_primary_work_email_not_user_name() {
    let stack = Stack::start("rules_identity").await;
    let t = stack.tenant("");
    // I1: the work+primary email identifies, not userName.
    let a = t
        .post(
            "/Users",
            &json!({"userName": "jdoe", "emails": [
        {"value": "home@r.example", "type": "home"},
        {"value": "J.Doe@R.example", "type": "work", "primary": true}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a_id = id(&a);
    // I2: emails compare case-insensitively: the same email is taken.
    let r = t
        .post(
            "/Users",
            &json!({"userName": "other", "emails": [{"value": "j.doe@r.example", "type": "work"}]}),
        )
        .await;
    r.assert_error(409, Some("uniqueness"));
    // I4: a different email but the same userName (any case) is 409 too.
    let r = t
        .post(
            "/Users",
            &json!({"userName": "JDOE", "emails": [{"value": "x@r.example", "type": "work"}]}),
        )
        .await;
    r.assert_error(409, Some("uniqueness"));
    // I1: no email and a userName that is not one: 400.
    let r = t.post("/Users", &json!({"userName": "no-email"})).await;
    r.assert_error(400, Some("invalidValue"));
    // I1: a userName that is an email suffices.
    assert_eq!(
        t.post("/Users", &json!({"userName": "plain@r.example"}))
            .await
            .status,
        201
    );
    // I4: userName stays filterable, case-insensitively.
    assert_eq!(
        t.filter_users(r#"userName eq "JDoe""#).await.body["totalResults"],
        1
    );

    // The email changes by PATCH on emails[type eq "work"].value: the
    // identity moves, and the old address is free for someone else.
    let r = patch(&t, &a_id, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "jane@r.example"}])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let shown = stack.cli(&[
        "user",
        "show",
        "--tenant",
        &t.id,
        "--email",
        "JANE@r.example",
        "--json",
    ]);
    assert_eq!(shown["user"]["id"], a_id.as_str());
    let r = t.post("/Users", &json!({"userName": "newcomer", "emails": [{"value": "j.doe@r.example", "type": "work"}]})).await;
    assert_eq!(r.status, 201, "the old address is free: {}", r.body);
    // Changing to an address another live user holds is 409, nothing changes.
    let r = patch(&t, &a_id, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "plain@r.example"}])).await;
    r.assert_error(409, Some("uniqueness"));
    assert_eq!(
        t.get(&format!("/Users/{a_id}")).await.body["emails"][1]["value"],
        "jane@r.example"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i3_manual_user_is_linked_by_email_then_scim_managed() {
    let stack = Stack::start("rules_link").await;
    let t = stack.tenant("");
    let manual = stack.cli(&[
        "user",
        "create",
        "--tenant",
        &t.id,
        "--email",
        "Manual@R.example",
        "--given-name",
        "Man",
        "--json",
    ]);
    let manual_id = manual["id"].as_str().expect("id").to_string();
    // I3: POST with that primary work email links: 201 with the existing id.
    let r = create(
        &t,
        "manual@r.example",
        json!({"name": {"givenName": "Linked"}, "roles": ["recorder"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["id"], manual_id.as_str());
    assert_eq!(
        r.body["name"]["givenName"], "Linked",
        "its attributes are now the IdP's"
    );
    assert_eq!(r.body["roles"], roles("recorder", "user"));
    // Now SCIM-managed: the same email again is 409.
    create(&t, "MANUAL@r.example", json!({"userName": "another"}))
        .await
        .assert_error(409, Some("uniqueness"));
    let shown = stack.cli(&[
        "user",
        "show",
        "--tenant",
        &t.id,
        "--email",
        "manual@r.example",
        "--json",
    ]);
    assert_eq!(shown["scim_managed"], true);
    let changes: Vec<&str> = shown["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["change"].as_str())
        .collect();
    assert_eq!(changes, vec!["manually_provisioned", "linked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_no_attribute_remapping_and_history_of_every_change() {
    let stack = Stack::start("rules_history").await;
    let t = stack.tenant("");
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    // I5: only the standard attributes are the contract.
    let r = create(
        &t,
        "hist@r.example",
        json!({"department": "not core", "customRole": "admin",
        "urn:example:custom:2.0:User": {"x": 1}, ent: {"department": "Sales"}}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert!(r.body.get("department").is_none() && r.body.get("customRole").is_none());
    assert!(r.body.get("urn:example:custom:2.0:User").is_none());
    assert_eq!(r.body[ent]["department"], "Sales");
    assert_eq!(
        r.body["roles"],
        roles("analyst", "user"),
        "a custom attribute never sets roles"
    );
    let u = id(&r);

    let changes = [
        json!([{"op": "add", "path": "roles", "value": ["admin"]}]),
        json!([{"op": "replace", "value": {"active": false}}]),
        json!([{"op": "replace", "value": {"active": true}}]),
        json!([{"op": "replace", "path": "title", "value": "not tracked"}]),
    ];
    for (i, ops) in changes.iter().enumerate() {
        let resp = t
            .http
            .patch(format!("{}/Users/{u}", t.base))
            .header("Authorization", format!("Bearer {}", t.token))
            .header("client-request-id", format!("req-{i}"))
            .json(&patch_op(ops.clone()))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
    }
    let shown = stack.cli(&[
        "user",
        "show",
        "--tenant",
        &t.id,
        "--email",
        "hist@r.example",
        "--json",
    ]);
    let history = shown["history"].as_array().expect("history");
    let summary: Vec<(String, String)> = history
        .iter()
        .map(|h| {
            (
                h["change"].as_str().unwrap_or("").to_string(),
                h["request_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary[1..],
        [
            ("roles_changed".to_string(), "req-0".to_string()),
            ("deactivated".to_string(), "req-1".to_string()),
            ("reactivated".to_string(), "req-2".to_string()),
        ]
    );
    assert_eq!(history[1]["before"]["roles"]["permission"], "user");
    assert_eq!(history[1]["after"]["roles"]["permission"], "admin");
    assert_eq!(
        shown["roles"],
        json!({"primary": "analyst", "permission": "admin"})
    );
}
