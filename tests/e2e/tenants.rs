//! Tenants (T1–T3): a token reaches its own tenant's data only, and a
//! rotated token stops working.

use reqwest::Method;
use serde_json::json;

use crate::common::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_t2_t3_a_second_tenants_token_gets_nothing_of_the_first() {
    let stack = Stack::start("tenants").await;
    let first = stack.tenant("");
    let second = stack.tenant("");
    assert_ne!(
        first.base, second.base,
        "T1: each tenant has its own SCIM base URL"
    );

    let user = json!({"userName": "kim@first.example", "emails": [{"value": "kim@first.example", "type": "work", "primary": true}]});
    let created = first.post("/Users", &user).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id");

    // The second tenant's token on the first tenant's URL: 401, nothing revealed.
    let url = format!("{}/Users/{id}", first.base);
    let r = second
        .send(Method::GET, &url, None, Some(&second.token))
        .await;
    r.assert_error(401, None);
    assert!(!r.body.to_string().contains("kim@"));
    let r = second
        .send(
            Method::GET,
            &format!("{}/Users", first.base),
            None,
            Some(&second.token),
        )
        .await;
    r.assert_error(401, None);
    let r = second
        .send(Method::DELETE, &url, None, Some(&second.token))
        .await;
    r.assert_error(401, None);

    // On its own URL, the first tenant's user does not exist for it.
    second
        .get(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    assert_eq!(second.get("/Users").await.body["totalResults"], 0);
    assert_eq!(
        second
            .filter_users(r#"userName eq "kim@first.example""#)
            .await
            .body["totalResults"],
        0
    );
    let r = second
        .send(Method::PUT, &format!("/Users/{id}"), Some(&user), None)
        .await;
    r.assert_error(404, None);

    // No token, a malformed header, an unknown token: 401 with the Error body.
    let no_auth = first
        .http
        .get(format!("{}/Users", first.base))
        .send()
        .await
        .expect("request");
    assert_eq!(no_auth.status(), 401);
    let body: serde_json::Value = no_auth.json().await.expect("SCIM error body");
    assert_eq!(body["status"], "401");
    let malformed = first
        .http
        .get(format!("{}/Users", first.base))
        .header("Authorization", "non-token")
        .send()
        .await
        .expect("request");
    assert_eq!(malformed.status(), 401);
    first
        .send(
            Method::GET,
            "/Users",
            None,
            Some("scimflow_not-a-real-token"),
        )
        .await
        .assert_error(401, None);

    // T2: rotation; the old token stops working (as soon as the ingress
    // hears of it: it has been serving this token from its cache).
    let rotated = stack.cli(&["tenant", "rotate-token", "--tenant", &first.id, "--json"]);
    let new_token = rotated["token"].as_str().expect("token");
    first.refused(&first.token).await;
    let ok = first
        .send(Method::GET, &format!("/Users/{id}"), None, Some(new_token))
        .await;
    assert_eq!(ok.status, 200);
    // T2: only a hash is stored.
    assert_eq!(
        stack.count(&format!(
            "SELECT count(*) AS n FROM tenants WHERE token_hash = '{new_token}'"
        )),
        0
    );
}

/// An ingress started against a database without the tenant change trigger
/// (before `scimflow migrate` added it) would hear of no change: it must not
/// serve tenants from memory, so a rotated token still stops working at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_without_the_change_trigger_the_ingress_does_not_cache_tenants() {
    use diesel::RunQueryDsl;
    let admin = crate::common::free_port();
    let stack =
        Stack::new("no_trigger").with_env("SCIMFLOW_ADMIN_ADDR", &format!("127.0.0.1:{admin}"));
    diesel::sql_query("DROP TRIGGER tenants_notify_change ON tenants")
        .execute(&mut stack.db())
        .expect("drop the trigger");
    let stack = stack.started().await;
    let t = stack.tenant("");
    for _ in 0..3 {
        assert_eq!(t.get("/Users").await.status, 200);
    }
    let metrics = stack.metrics(admin).await;
    assert!(
        metrics.contains("scimflow_tenant_cache_live 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("scimflow_tenant_cache_lookups_total{result=\"hit\"}"),
        "{metrics}"
    );
    stack.cli(&["tenant", "rotate-token", "--tenant", &t.id, "--json"]);
    t.send(Method::GET, "/Users", None, Some(&t.token))
        .await
        .assert_error(401, None);
    let log = std::fs::read_to_string(stack.logs.join(format!("{}-ingress.log", stack.name)))
        .unwrap_or_default();
    assert!(
        log.contains("tenants_notify_change trigger is missing"),
        "{log}"
    );
}
