//! The admin API (`scimflow admin-api`) through the real stack: tenants
//! made and changed over HTTP act on SCIM at once, the provisioning status
//! and the activity log show what the IdP did (refusals with their SCIM
//! error), dead letters are replayed and discarded with the CLI's rules,
//! and the OpenAPI document validates and holds against the live API.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{eventually, patch_op, AdminApi, Stack, Tenant, ADMIN_TOKEN};

fn user(name: &str) -> Value {
    let email = format!("{name}@admin.example");
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
           "emails": [{"value": email, "type": "work", "primary": true}]})
}

/// A tenant made through the API, as a SCIM client.
fn scim_client(stack: &Stack, created: &Value) -> Tenant {
    Tenant {
        id: created["tenant"]["tenant_id"]
            .as_str()
            .expect("id")
            .to_string(),
        base: created["tenant"]["scim_base_url"]
            .as_str()
            .expect("base")
            .to_string(),
        token: created["token"].as_str().expect("token").to_string(),
        http: stack.http.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_makes_a_tenant_that_provisions_and_shows_it_then_rotates_its_token() {
    let stack = Stack::start("admin_tenants").await;
    let api = AdminApi::start(&stack).await;

    // A wrong or missing admin token: 401, nothing done.
    for token in [None, Some("wrong-token"), Some("")] {
        let a = api
            .call_as(token, Method::GET, "/admin/v1/tenants", None)
            .await;
        a.assert_problem(401);
    }

    // Bad input: a problem, and no tenant made.
    for bad in [
        json!({"name": ""}),
        json!({"name": "acme", "features": ["video"]}),
        json!({"name": "acme", "colour": "red"}),
        json!({"name": "x".repeat(201)}),
        json!({"name": "acme", "external_ref": "   "}),
        json!({"name": "nul\u{0}inside"}),
        json!({"name": "acme", "features": "voice"}),
        json!([1, 2]),
    ] {
        api.call(Method::POST, "/admin/v1/tenants", Some(bad))
            .await
            .assert_problem(400);
    }
    assert_eq!(api.get("/admin/v1/tenants").await.body["total"], 0);

    // Create, with the product's reference: the token is shown once, and a
    // second create with the reference returns the same tenant.
    let new = json!({"name": "Acme", "features": ["voice"], "external_ref": "org_42"});
    let created = api
        .call(Method::POST, "/admin/v1/tenants", Some(new.clone()))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let t = scim_client(&stack, &created.body);
    assert!(t.token.starts_with("scimflow_"));
    assert_eq!(created.body["tenant"]["status"], "active");
    assert_eq!(created.body["tenant"]["features"], json!(["voice"]));
    let again = api.call(Method::POST, "/admin/v1/tenants", Some(new)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["created"], false);
    assert_eq!(
        again.body["token"],
        Value::Null,
        "the token is never shown again"
    );
    assert_eq!(again.body["tenant"]["tenant_id"], t.id.as_str());
    // One implementation: the CLI lists what the API made.
    let listed = stack.cli(&["tenant", "list", "--json"]);
    let by_cli = listed
        .as_array()
        .and_then(|all| all.iter().find(|x| x["tenant_id"] == t.id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(by_cli["external_ref"], "org_42", "{listed}");
    assert_eq!(by_cli["features"], json!(["voice"]));
    let other = api
        .call(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "Zürich € 🎉"})),
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.body);

    // List, paged and bounded; get one; unknown and malformed ids.
    let page = api.get("/admin/v1/tenants?limit=1").await;
    assert_eq!(page.body["total"], 2, "{}", page.body);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page.body["items"][0]["tenant_id"], t.id.as_str());
    let second = api.get("/admin/v1/tenants?offset=1&limit=1").await;
    assert_eq!(second.body["items"][0]["name"], "Zürich € 🎉");
    for bad in [
        "?limit=0",
        "?limit=201",
        "?offset=-1",
        "?limit=x",
        "?pages=2",
    ] {
        api.get(&format!("/admin/v1/tenants{bad}"))
            .await
            .assert_problem(400);
    }
    let one = api.get(&format!("/admin/v1/tenants/{}", t.id)).await;
    assert_eq!(one.body["external_ref"], "org_42", "{}", one.body);
    assert!(!one.body.to_string().contains(&t.token), "never the token");
    api.get(&format!("/admin/v1/tenants/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(404);
    api.get("/admin/v1/tenants/not-a-uuid")
        .await
        .assert_problem(400);
    api.get("/admin/v1/nothing-here").await.assert_problem(404);

    // Provision a user over SCIM with the API's token.
    let sent = t
        .http
        .post(format!("{}/Users", t.base))
        .bearer_auth(&t.token)
        .header("content-type", "application/scim+json")
        .header("x-request-id", "okta-req-1")
        .body(user("ada").to_string())
        .send()
        .await
        .expect("SCIM POST");
    assert_eq!(sent.status(), 201);
    let ada: Value = sent.json().await.expect("json");
    let ada_id = ada["id"].as_str().expect("id").to_string();

    // The status counts it and the log holds the request.
    let status = eventually(
        "the status to count the write",
        Duration::from_secs(30),
        || {
            let (api, path) = (&api, format!("/admin/v1/tenants/{}/status", t.id));
            async move {
                let s = api.get(&path).await.body;
                (s["writes_last_hour"].as_i64() >= Some(1)).then_some(s)
            }
        },
    )
    .await;
    assert_eq!(status["users"]["active"], 1, "{status}");
    assert_eq!(status["users"]["deleted"], 0, "{status}");
    assert_eq!(status["groups"], 0);
    assert_eq!(status["open_dead_letters"], 0);
    assert_eq!(status["rejections_last_day"], 0);
    assert!(status["last_request_at"].as_str().is_some(), "{status}");
    let entry = api
        .logged(&t.id, "", |e| e["request_id"] == "okta-req-1")
        .await;
    assert_eq!(entry["method"], "POST", "{entry}");
    assert_eq!(entry["resource_type"], "User");
    assert_eq!(entry["status"], 201);
    assert_eq!(entry["user_id"], ada_id.as_str());
    assert_eq!(entry["detail"], Value::Null);
    let text = entry.to_string();
    assert!(!text.contains(&t.token) && !text.contains("ada@"), "{text}");
    // Filters: by user, by status; a bad filter is a problem.
    t.get(&format!("/Users/{ada_id}")).await;
    t.get("/Users").await;
    let mine = api
        .logged(&t.id, &format!("?user_id={ada_id}"), |e| {
            e["method"] == "GET"
        })
        .await;
    assert_eq!(mine["resource_id"], ada_id.as_str());
    let only_user = api.activity(&t.id, &format!("?user_id={ada_id}")).await;
    assert!(only_user.iter().all(|e| e["user_id"] == ada_id.as_str()));
    let created_only = api.activity(&t.id, "?status=201").await;
    assert_eq!(created_only.len(), 1, "{created_only:?}");
    let newest_first = api.activity(&t.id, "").await;
    let ids: Vec<i64> = newest_first
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let paged = api
        .get(&format!("/admin/v1/tenants/{}/activity?limit=1", t.id))
        .await;
    let before = paged.body["next_before"].as_i64().expect("a next page");
    let next = api
        .activity(&t.id, &format!("?limit=1&before={before}"))
        .await;
    assert!(next[0]["id"].as_i64() < Some(before));
    for bad in ["?status=6xx", "?status=abc", "?limit=1000", "?user_id=x"] {
        api.get(&format!("/admin/v1/tenants/{}/activity{bad}", t.id))
            .await
            .assert_problem(400);
    }
    api.get(&format!(
        "/admin/v1/tenants/{}/activity",
        uuid::Uuid::now_v7()
    ))
    .await
    .assert_problem(404);

    // The user's record with its history, by id or by email.
    for who in [ada_id.clone(), "ada@admin.example".to_string()] {
        let r = api
            .get(&format!("/admin/v1/tenants/{}/users/{who}", t.id))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["user"]["id"], ada_id.as_str());
        assert_eq!(r.body["scim_managed"], true);
        assert!(r.body["roles"]["primary"].as_str().is_some());
        assert_eq!(
            r.body["history"][0]["request_id"], "okta-req-1",
            "{}",
            r.body
        );
    }
    api.get(&format!(
        "/admin/v1/tenants/{}/users/{}",
        t.id,
        uuid::Uuid::now_v7()
    ))
    .await
    .assert_problem(404);
    // A name that is neither an id nor an email is a userName.
    api.get(&format!("/admin/v1/tenants/{}/users/nobody", t.id))
        .await
        .assert_problem(404);
    for bad in ["a%00@admin.example", "%20"] {
        api.get(&format!("/admin/v1/tenants/{}/users/{bad}", t.id))
            .await
            .assert_problem(400);
    }

    // Rotate: the new token is shown once, the old one is refused over SCIM.
    let rotated = api
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/token", t.id),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_token = rotated.body["token"].as_str().expect("token").to_string();
    assert_ne!(new_token, t.token);
    t.refused(&t.token).await;
    let fresh = Tenant {
        token: new_token.clone(),
        ..t.clone()
    };
    assert_eq!(fresh.get("/Users").await.status, 200);
    let after = api.get(&format!("/admin/v1/tenants/{}", t.id)).await;
    assert!(after.body["token_rotated_at"].as_str().is_some());

    // Features: replaced; unknown ones refused and nothing changed.
    let f = api
        .call(
            Method::PUT,
            &format!("/admin/v1/tenants/{}/features", t.id),
            Some(json!({"features": ["listener", "LISTENER"]})),
        )
        .await;
    assert_eq!(f.body["features"], json!(["listener"]), "{}", f.body);
    api.call(
        Method::PUT,
        &format!("/admin/v1/tenants/{}/features", t.id),
        Some(json!({"features": ["video"]})),
    )
    .await
    .assert_problem(400);
    let kept = api.get(&format!("/admin/v1/tenants/{}", t.id)).await;
    assert_eq!(kept.body["features"], json!(["listener"]));
    api.call(
        Method::PUT,
        &format!("/admin/v1/tenants/{}/features", uuid::Uuid::now_v7()),
        Some(json!({"features": []})),
    )
    .await
    .assert_problem(404);

    // Suspend and resume.
    let s = api
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/suspend", t.id),
            None,
        )
        .await;
    assert_eq!(s.body["status"], "suspended", "{}", s.body);
    fresh.refused(&new_token).await;
    let r = api
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{}/resume", t.id),
            None,
        )
        .await;
    assert_eq!(r.body["tenant"]["status"], "active", "{}", r.body);
    assert_eq!(r.body["replayed"], json!([]));
    eventually("the resumed token to work", Duration::from_secs(10), || {
        let r = fresh.get("/Users");
        async move { (r.await.status == 200).then_some(()) }
    })
    .await;

    // Delete: refused without confirmation, then done.
    let path = format!("/admin/v1/tenants/{}", t.id);
    api.call(Method::DELETE, &path, None)
        .await
        .assert_problem(400);
    api.call(Method::DELETE, &path, Some(json!({"confirm": false})))
        .await
        .assert_problem(400);
    assert_eq!(api.get(&path).await.body["status"], "active");
    let d = api
        .call(Method::DELETE, &path, Some(json!({"confirm": true})))
        .await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.body["purged"]["users"], 1, "{}", d.body);
    assert!(d.body["purged"]["activity"].as_i64() >= Some(1));
    assert_eq!(api.get(&path).await.body["status"], "deleted");
    fresh.refused(&new_token).await;
    api.call(Method::DELETE, &path, Some(json!({"confirm": true})))
        .await
        .assert_problem(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_activity_log_shows_rejected_writes_with_their_scim_error() {
    let stack = Stack::start("admin_rejected").await;
    let api = AdminApi::start(&stack).await;
    let t = stack.tenant("");

    // Refused at the ingress: an invalid value.
    let bad = t
        .post(
            "/Users",
            &json!({"userName": "x@admin.example", "active": "maybe"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Refused by a rule in the processor: the email is taken.
    assert_eq!(t.post("/Users", &user("kim")).await.status, 201);
    let taken = t.post("/Users", &user("kim")).await;
    taken.assert_error(409, Some("uniqueness"));

    for refused in [&bad, &taken] {
        let status = refused.status.as_u16();
        let entry = api
            .logged(&t.id, "?status=4xx", |e| e["status"] == status)
            .await;
        assert_eq!(entry["method"], "POST", "{entry}");
        assert_eq!(entry["detail"], refused.body["detail"], "{entry}");
        assert_eq!(entry["scim_type"], refused.body["scimType"], "{entry}");
    }
    let rejected = api.activity(&t.id, "?status=4xx").await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let s = api.get(&format!("/admin/v1/tenants/{}/status", t.id)).await;
    assert_eq!(s.body["rejections_last_hour"], 2, "{}", s.body);
    assert_eq!(s.body["writes_last_hour"], 1, "{}", s.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_activity_log_keeps_the_newest_entries_per_tenant() {
    let stack = Stack::new("admin_pruned")
        .with_env("SCIMFLOW_ACTIVITY_MAX_ROWS", "3")
        .started()
        .await;
    let api = AdminApi::start(&stack).await;
    let (busy, quiet) = (stack.tenant(""), stack.tenant(""));
    for i in 1..=6 {
        let r = busy
            .http
            .get(format!("{}/Users", busy.base))
            .bearer_auth(&busy.token)
            .header("x-request-id", format!("r{i}"))
            .send()
            .await
            .expect("SCIM GET");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(quiet.get("/Users").await.status, 200);
    // Pruned by the writer every few seconds: the newest 3 are kept.
    let kept = eventually("the log to be pruned", Duration::from_secs(60), || {
        let found = api.activity(&busy.id, "");
        async move {
            let found = found.await;
            (found.len() == 3 && found[0]["request_id"] == "r6").then_some(found)
        }
    })
    .await;
    let ids: Vec<&str> = kept
        .iter()
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    assert_eq!(ids, ["r6", "r5", "r4"]);
    assert_eq!(api.activity(&quiet.id, "").await.len(), 1, "per tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_api_replays_and_discards_dead_letters() {
    let stack = Stack::new("admin_dlq")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "15000")
        .started()
        .await;
    let api = AdminApi::start(&stack).await;
    let t = stack.tenant("");
    let first = t.post("/Users", &user("first")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let second = t.post("/Users", &user("second")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The cause: a database rule these commands break, fixed later.
    stack.refuse_poison();
    for id in [&first, &second] {
        let r = t
            .patch(
                &format!("/Users/{id}"),
                &patch_op(json!([{"op": "replace", "path": "title", "value": "poison"}])),
            )
            .await;
        r.assert_error(500, None);
    }
    let letters = api
        .get(&format!("/admin/v1/dead-letters?tenant_id={}", t.id))
        .await;
    let items = letters.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "{}", letters.body);
    assert!(items.iter().all(|l| l["status"] == "open"));
    let id_of = |user: &str| {
        items
            .iter()
            .find(|l| l["kafka_key"].as_str().is_some_and(|k| k.ends_with(user)))
            .and_then(|l| l["id"].as_i64())
            .expect("a letter for the user")
    };
    let (replayed_id, discarded_id) = (id_of(&first), id_of(&second));
    let shown = api
        .get(&format!("/admin/v1/dead-letters/{replayed_id}"))
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body["dead_letter"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("poison")));
    assert_eq!(
        shown.body["payload"]["tenant_id"],
        t.id.as_str(),
        "{}",
        shown.body
    );
    let status = api.get(&format!("/admin/v1/tenants/{}/status", t.id)).await;
    assert_eq!(status.body["open_dead_letters"], 2, "{}", status.body);

    // Unknown letters and bad input: problems, nothing changed.
    api.get("/admin/v1/dead-letters/999999")
        .await
        .assert_problem(404);
    api.call(Method::POST, "/admin/v1/dead-letters/999999/replay", None)
        .await
        .assert_problem(404);
    api.call(
        Method::POST,
        &format!("/admin/v1/dead-letters/{discarded_id}/discard"),
        Some(json!({"reason": "  "})),
    )
    .await
    .assert_problem(400);
    api.call(
        Method::POST,
        "/admin/v1/dead-letters/999999/discard",
        Some(json!({"reason": "gone"})),
    )
    .await
    .assert_problem(404);
    api.get("/admin/v1/dead-letters?limit=500")
        .await
        .assert_problem(400);

    // The cause is fixed; one letter is replayed, the other discarded.
    stack.allow_poison();
    let replay = api
        .call(
            Method::POST,
            &format!("/admin/v1/dead-letters/{replayed_id}/replay"),
            None,
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.body["replayed"], json!([replayed_id]));
    eventually(
        "the replayed command to apply",
        Duration::from_secs(60),
        || {
            let (t, path) = (&t, format!("/Users/{first}"));
            async move { (t.get(&path).await.body["title"] == "poison").then_some(()) }
        },
    )
    .await;
    let again = api
        .call(
            Method::POST,
            &format!("/admin/v1/dead-letters/{replayed_id}/replay"),
            None,
        )
        .await;
    assert_eq!(again.body["replayed"], json!([]), "a replay happens once");
    assert!(again.body["skipped"][0][1]
        .as_str()
        .is_some_and(|w| w.starts_with("already")));
    let discard = api
        .call(
            Method::POST,
            &format!("/admin/v1/dead-letters/{discarded_id}/discard"),
            Some(json!({"reason": "the IdP sends it again"})),
        )
        .await;
    assert_eq!(
        discard.body["discarded"],
        json!([discarded_id]),
        "{}",
        discard.body
    );
    let actions = api
        .get(&format!("/admin/v1/dead-letters/{discarded_id}"))
        .await;
    assert_eq!(
        actions.body["actions"][0]["action"], "discard",
        "{}",
        actions.body
    );
    assert_eq!(actions.body["actions"][0]["actor"], "admin-api");
    let open = api
        .get(&format!("/admin/v1/dead-letters?tenant_id={}", t.id))
        .await;
    assert_eq!(open.body["items"], json!([]), "{}", open.body);
    let every = api
        .get(&format!(
            "/admin/v1/dead-letters?tenant_id={}&all=true",
            t.id
        ))
        .await;
    assert_eq!(every.body["items"].as_array().map(Vec::len), Some(2));
    let none_left = api
        .call(
            Method::POST,
            "/admin/v1/dead-letters/replay",
            Some(json!({"tenant_id": t.id})),
        )
        .await;
    assert_eq!(none_left.body["replayed"], json!([]), "{}", none_left.body);
}

/// The OpenAPI document validates (openapi-spec-validator), and
/// schemathesis, generating requests from it against the live API, finds
/// no 5xx and no answer the document does not describe. The tools are the
/// pinned ones `./scripts/test` installs (`SCIMFLOW_TEST_ADMIN_TOOLS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_openapi_document_validates_and_holds_against_the_live_api() {
    let tools = std::env::var("SCIMFLOW_TEST_ADMIN_TOOLS")
        .expect("SCIMFLOW_TEST_ADMIN_TOOLS: run through ./scripts/test");
    let stack = Stack::start("admin_openapi").await;
    let api = AdminApi::start(&stack).await;
    // Something for the generated requests to find.
    api.call(
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"name": "seed", "external_ref": "seed"})),
    )
    .await;
    let doc = api
        .call_as(None, Method::GET, "/admin/v1/openapi.json", None)
        .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let file = stack.logs.join(format!("{}-openapi.json", stack.name));
    std::fs::write(&file, doc.body.to_string()).expect("write the document");

    // schemathesis keeps a cache where it runs: in the test's files.
    let workdir = stack.logs.clone();
    let run = move |program: &str, args: Vec<String>| {
        let out = Command::new(format!("{tools}/{program}"))
            .args(&args)
            .current_dir(&workdir)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
        text
    };
    let path = file.display().to_string();
    tokio::task::spawn_blocking(move || {
        run("openapi-spec-validator", vec![path.clone()]);
        let report = run(
            "schemathesis",
            vec![
                "run".into(),
                path,
                "--url".into(),
                api.base.clone(),
                "--header".into(),
                format!("Authorization: Bearer {ADMIN_TOKEN}"),
                "--checks".into(),
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance".into(),
                "--max-examples".into(),
                "20".into(),
                "--seed".into(),
                "1".into(),
                // Its time budget: the run stops generating then.
                "--max-time".into(),
                "75".into(),
                "--request-timeout".into(),
                "10".into(),
                // One worker: hypothesis describes its strategies with
                // `ast.parse`, which CPython 3.11 does not guard across
                // threads (a spurious "AST constructor recursion depth
                // mismatch" with more).
                "--workers".into(),
                "1".into(),
            ],
        );
        // What it tried, for `--nocapture`.
        for line in report
            .lines()
            .filter(|l| l.contains("generated") || l.contains("Scenarios") || l.starts_with("=="))
        {
            println!("schemathesis: {}", line.trim());
        }
        drop(api);
    })
    .await
    .expect("the tools");
}
