//! Groups (L6) as Okta and Entra push them: create, rename, membership
//! changes in every shape they send, delete; members must be users of the
//! same tenant; a deleted user leaves every group.

use serde_json::{json, Value};

use crate::common::{patch_op, Stack, Tenant, SCIM_JSON};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

async fn user(t: &Tenant, name: &str) -> String {
    let email = format!("{name}@example.com");
    let r = t
        .post("/Users", &json!({"userName": email, "displayName": name, "emails": [{"value": email, "type": "work", "primary": true}]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_okta_group_push_rename_membership_delete() {
    let stack = Stack::start("okta_groups").await;
    let okta = stack.tenant("");
    let (a, b, c) = (
        user(&okta, "a").await,
        user(&okta, "b").await,
        user(&okta, "c").await,
    );

    let created = okta
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Engineering", "members": []}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.content_type(), SCIM_JSON);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(created.body["displayName"], "Engineering");
    assert_eq!(created.body["members"], json!([]));
    assert_eq!(created.body["meta"]["resourceType"], "Group");
    assert_eq!(
        created.headers["location"],
        format!("{}/Groups/{id}", okta.base)
    );

    let listed = okta.get("/Groups").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["totalResults"], 1);

    // Rename: path-less replace carrying the id.
    let rename = patch_op(json!([{"op": "replace", "value": {"id": id, "displayName": "Eng"}}]));
    assert_eq!(
        okta.patch(&format!("/Groups/{id}"), &rename).await.status,
        204
    );
    // Membership: add path members.
    let add = patch_op(
        json!([{"op": "add", "path": "members", "value": [{"value": a, "display": "a"}, {"value": b}]}]),
    );
    assert_eq!(okta.patch(&format!("/Groups/{id}"), &add).await.status, 204);
    // Remove by value filter and add in one request.
    let swap = patch_op(json!([
        {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
        {"op": "add", "path": "members", "value": [{"value": c}]}
    ]));
    assert_eq!(
        okta.patch(&format!("/Groups/{id}"), &swap).await.status,
        204
    );
    let got = okta.get(&format!("/Groups/{id}")).await;
    assert_eq!(got.body["displayName"], "Eng");
    assert_eq!(member_ids(&got.body), sorted(vec![b.clone(), c.clone()]));
    assert!(got.body["members"][0]["$ref"]
        .as_str()
        .unwrap_or_default()
        .contains("/Users/"));

    // The user resource lists its groups.
    let ub = okta.get(&format!("/Users/{b}")).await;
    assert_eq!(ub.body["groups"][0]["value"], id.as_str());
    assert_eq!(ub.body["groups"][0]["display"], "Eng");

    // Full replace of members.
    let replace = patch_op(json!([{"op": "replace", "path": "members", "value": [{"value": a}]}]));
    assert_eq!(
        okta.patch(&format!("/Groups/{id}"), &replace).await.status,
        204
    );
    assert_eq!(
        member_ids(&okta.get(&format!("/Groups/{id}")).await.body),
        vec![a.clone()]
    );

    // Lookups the IdPs make.
    let by_name = okta
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            "displayName%20eq%20%22eng%22"
        ))
        .await;
    assert_eq!(by_name.body["totalResults"], 1);
    assert!(
        by_name.body["Resources"][0].get("members").is_none(),
        "excludedAttributes=members"
    );
    let by_member = okta
        .get(&format!("/Groups?filter=members%20eq%20%22{a}%22"))
        .await;
    assert_eq!(by_member.body["totalResults"], 1);

    // displayName is unique per tenant, case-insensitively.
    okta.post(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "ENG"}),
    )
    .await
    .assert_error(409, Some("uniqueness"));

    // L5: a deleted user leaves every group.
    assert_eq!(okta.delete(&format!("/Users/{a}")).await.status, 204);
    assert_eq!(
        member_ids(&okta.get(&format!("/Groups/{id}")).await.body),
        Vec::<String>::new()
    );

    assert_eq!(okta.delete(&format!("/Groups/{id}")).await.status, 204);
    okta.get(&format!("/Groups/{id}"))
        .await
        .assert_error(404, None);
    assert_eq!(okta.get("/Groups").await.body["totalResults"], 0);

    // P5: the group's history on its change topic, in order.
    stack.outbox_drained().await;
    let events = stack.read_topic(&format!("{}.group-changes", stack.prefix()));
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            let v = e.json();
            crate::common::assert_matches_schema(&v, "group-change-event.schema.json");
            format!(
                "{}#{}",
                v["type"].as_str().unwrap_or_default(),
                v["sequence"]
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "group.created#1",
            "group.updated#2",
            "group.members_added#3",
            "group.updated#4",
            "group.updated#5",
            "group.members_removed#6",
            "group.deleted#7",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_entra_group_flow_and_cross_tenant_members() {
    let stack = Stack::start("entra_groups").await;
    let entra = stack.tenant("");
    let other = stack.tenant("");
    let (a, b) = (user(&entra, "ea").await, user(&entra, "eb").await);
    let stranger = user(&other, "stranger").await;

    // Entra looks the group up first, members excluded.
    let lookup = entra
        .get("/Groups?excludedAttributes=members&filter=displayName%20eq%20%22Sales%22")
        .await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.body["totalResults"], 0);

    let body = json!({"schemas": [GROUP, "urn:ietf:params:scim:schemas:extension:misspelled:Group"],
                      "externalId": "ext-1", "displayName": "Sales",
                      "members": [{"$ref": null, "value": a}]});
    let created = entra.post("/Groups", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(member_ids(&created.body), vec![a.clone()]);

    // Several membership changes in one PATCH, capitalised ops, Entra's
    // removal shape.
    let patch = patch_op(json!([
        {"op": "Add", "path": "members", "value": [{"value": b}]},
        {"op": "Remove", "path": "members", "value": [{"value": a}]},
        {"op": "Replace", "path": "externalId", "value": "ext-2"}
    ]));
    let r = entra.patch(&format!("/Groups/{id}"), &patch).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{id}")).await;
    assert_eq!(member_ids(&got.body), vec![b.clone()]);
    assert_eq!(got.body["externalId"], "ext-2");

    // A member from another tenant, or no user at all: 400, nothing changes.
    let bad = patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": stranger}]}]));
    entra
        .patch(&format!("/Groups/{id}"), &bad)
        .await
        .assert_error(400, Some("invalidValue"));
    let bad = patch_op(
        json!([{"op": "Add", "path": "members", "value": [{"value": uuid::Uuid::new_v4().to_string()}]}]),
    );
    entra
        .patch(&format!("/Groups/{id}"), &bad)
        .await
        .assert_error(400, Some("invalidValue"));
    entra
        .post(
            "/Groups",
            &json!({"displayName": "Mixed", "members": [{"value": stranger}]}),
        )
        .await
        .assert_error(400, Some("invalidValue"));
    assert_eq!(
        member_ids(&entra.get(&format!("/Groups/{id}")).await.body),
        vec![b.clone()]
    );
    // The other tenant sees none of it.
    other
        .get(&format!("/Groups/{id}"))
        .await
        .assert_error(404, None);
    assert_eq!(other.get("/Groups").await.body["totalResults"], 0);

    // PUT replaces; If-Match guards it.
    let etag = got.headers["etag"].to_str().expect("etag").to_string();
    let put = json!({"schemas": [GROUP], "displayName": "Sales EMEA", "members": [{"value": a}, {"value": b}]});
    let replaced = entra
        .send(
            reqwest::Method::PUT,
            &format!("{}/Groups/{id}", entra.base),
            Some(&put),
            None,
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["displayName"], "Sales EMEA");
    assert_eq!(
        member_ids(&replaced.body),
        sorted(vec![a.clone(), b.clone()])
    );
    let resp = entra
        .http
        .delete(format!("{}/Groups/{id}", entra.base))
        .header("Authorization", format!("Bearer {}", entra.token))
        .header("If-Match", etag)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 412, "a stale If-Match is refused");
}
