//! The console's pages against a database of their own, each request
//! through `tower::ServiceExt::oneshot`: what signing in needs, what every
//! action is checked for before it changes anything, and hostile input
//! answered with a page, never a crash. (Browsers driving the real stack
//! are in tests/e2e/console.rs.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use tower::ServiceExt as _;
use uuid::Uuid;

use scimflow_admin::api::ApiState;
use scimflow_shared::config::Config;
use scimflow_shared::store::tenants;
use scimflow_shared::store::test_db::{insert_tenant, TestDatabase};

const ADMIN_TOKEN: &str = "console-test-admin-token-0123456789abcdef";
const HOST: &str = "127.0.0.1:8081";

struct Console {
    app: Router,
    db: TestDatabase,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        self.body
            .split_once(marker)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(value, _)| value.to_string())
            .unwrap_or_default()
    }
}

/// A signed-in browser: its session cookie and its forms' token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The console of an admin-api process configured with `admin_token`.
fn console_app(db: &TestDatabase, admin_token: &str) -> Router {
    let config = Config::from_settings(&[
        ("DATABASE_URL", db.url()),
        ("KAFKA_BROKERS", "127.0.0.1:1"),
        ("SCIMFLOW_ADMIN_TOKEN", admin_token),
    ])
    .expect("a configuration");
    let token = config.admin_token.clone().expect("the admin token");
    scimflow_console::router(ApiState {
        pool: db.pool(4),
        config: Arc::new(config),
        token,
    })
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("an answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .expect("a body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    send(app, req.body(Body::empty()).expect("a request")).await
}

impl Console {
    fn new(test: &str) -> Console {
        let db = TestDatabase::new(test);
        Console {
            app: console_app(&db, ADMIN_TOKEN),
            db,
        }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        send(&self.app, req).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        get(&self.app, path, cookie).await
    }

    async fn post(&self, path: &str, cookie: &str, origin: Option<&str>, body: String) -> Answer {
        let mut req = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        self.send(req.body(Body::from(body)).expect("a request"))
            .await
    }

    /// The sign-in form's answer to `token`.
    async fn sign_in_with(&self, token: &str, origin: Option<&str>) -> Answer {
        let page = self.get("/console/sign-in", None).await;
        let cookie = page
            .cookies()
            .first()
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_string();
        self.post(
            "/console/sign-in",
            &cookie,
            origin,
            form(&[("csrf", &page.csrf()), ("actor", "Grace"), ("token", token)]),
        )
        .await
    }

    async fn sign_in(&self) -> Browser {
        let answer = self
            .sign_in_with(ADMIN_TOKEN, Some("http://127.0.0.1:8081"))
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let cookie = answer
            .cookies()
            .into_iter()
            .find(|c| c.starts_with("scimflow_console="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let page = self.get("/console/tenants", Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        Browser {
            cookie,
            csrf: page.csrf(),
        }
    }

    fn tenant(&self, name: &str) -> Uuid {
        insert_tenant(
            &mut self.db.connect(),
            name,
            &scimflow_shared::token::generate(),
        )
    }

    fn suspended(&self, id: Uuid) -> bool {
        tenants::find(&mut self.db.connect(), id)
            .expect("a lookup")
            .is_some_and(|t| t.suspended_at.is_some())
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_pages_need_a_session() {
    let console = Console::new("console_headers");
    for path in [
        "/console",
        "/console/tenants",
        "/console/dead-letters",
        "/console/sign-in",
        "/console/assets/console.css",
        "/console/assets/nothing.js",
        "/console/no/such/page",
    ] {
        let answer = console.get(path, None).await;
        let csp = answer.header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("form-action 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            answer.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
        assert_eq!(
            answer.header(header::REFERRER_POLICY),
            "same-origin",
            "{path}"
        );
    }
    for path in ["/console", "/console/tenants", "/console/dead-letters"] {
        let answer = console.get(path, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            answer.header(header::LOCATION),
            "/console/sign-in",
            "{path}"
        );
    }
    let forged = console
        .get("/console/tenants", Some("scimflow_console=made-up"))
        .await;
    assert_eq!(forged.header(header::LOCATION), "/console/sign-in");
    let sign_in = console.get("/console/sign-in", None).await;
    assert_eq!(sign_in.header(header::CACHE_CONTROL), "no-store");
    assert!(sign_in.body.contains("id=\"sign-in\""));
    let css = console.get("/console/assets/console.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert_eq!(
        console.get("/console/assets/nothing.js", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        console.get("/console/no/such/page", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn signing_in_takes_the_admin_token_and_the_forms_own_token() {
    let console = Console::new("console_sign_in");
    let wrong = console.sign_in_with("not-the-token", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("id=\"error\""), "{}", wrong.body);
    assert!(wrong
        .cookies()
        .iter()
        .all(|c| !c.starts_with("scimflow_console=")));
    let foreign = console
        .sign_in_with(ADMIN_TOKEN, Some("http://evil.example"))
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let no_form_token = console
        .post(
            "/console/sign-in",
            "",
            None,
            form(&[("actor", "Grace"), ("token", ADMIN_TOKEN)]),
        )
        .await;
    assert_eq!(no_form_token.status, StatusCode::FORBIDDEN);

    let right = console.sign_in_with(ADMIN_TOKEN, None).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.header(header::LOCATION), "/console/tenants");
    let session = right
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("scimflow_console="))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(
        !session.contains(ADMIN_TOKEN) && !right.header(header::LOCATION).contains(ADMIN_TOKEN)
    );

    let browser = console.sign_in().await;
    let out = console
        .post(
            "/console/sign-out",
            &browser.cookie,
            None,
            form(&[("csrf", &browser.csrf)]),
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = console.get("/console/tenants", Some(&browser.cookie)).await;
    assert_eq!(
        after.header(header::LOCATION),
        "/console/sign-in",
        "signed out"
    );
}

#[tokio::test]
async fn an_action_needs_the_sessions_token_and_this_origin() {
    let console = Console::new("console_forgery");
    let browser = console.sign_in().await;
    let id = console.tenant("Acme");
    let path = format!("/console/tenants/{id}/suspend");
    let refused = [
        (None, form(&[])),
        (None, form(&[("csrf", "guess")])),
        (
            Some("http://evil.example"),
            form(&[("csrf", &browser.csrf)]),
        ),
        (Some("null"), form(&[("csrf", &browser.csrf)])),
    ];
    for (origin, body) in refused {
        let answer = console
            .post(&path, &browser.cookie, origin, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin:?} {body}");
        assert!(!console.suspended(id), "{origin:?} {body}: nothing changed");
    }
    let other = console.sign_in().await;
    let with_another_sessions_token = console
        .post(&path, &browser.cookie, None, form(&[("csrf", &other.csrf)]))
        .await;
    assert_eq!(with_another_sessions_token.status, StatusCode::FORBIDDEN);
    assert!(!console.suspended(id));

    let confirm = console.get(&path, Some(&browser.cookie)).await;
    assert!(confirm.body.contains("id=\"confirm\""), "{}", confirm.body);
    let done = console
        .post(
            &path,
            &browser.cookie,
            Some("http://127.0.0.1:8081"),
            form(&[("csrf", &browser.csrf)]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.header(header::LOCATION),
        format!("/console/tenants/{id}?done=suspended")
    );
    assert!(console.suspended(id));
}

#[tokio::test]
async fn a_tenant_is_deleted_only_with_its_name_typed() {
    let console = Console::new("console_delete");
    let browser = console.sign_in().await;
    let id = console.tenant("Acme Zürich");
    let path = format!("/console/tenants/{id}/delete");
    let deleted = || {
        tenants::find(&mut console.db.connect(), id)
            .expect("a lookup")
            .is_some_and(|t| t.deleted_at.is_some())
    };
    for typed in ["", "acme zürich", "Acme", "Acme Zürich!"] {
        let answer = console
            .post(
                &path,
                &browser.cookie,
                None,
                form(&[("csrf", &browser.csrf), ("confirm_name", typed)]),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{typed:?}");
        assert!(answer.body.contains("id=\"error\""), "{typed:?}");
        assert!(!deleted(), "{typed:?}");
    }
    let answer = console
        .post(
            &path,
            &browser.cookie,
            None,
            form(&[("csrf", &browser.csrf), ("confirm_name", " Acme Zürich ")]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.header(header::LOCATION),
        "/console/tenants?done=deleted"
    );
    assert!(deleted());
}

#[tokio::test]
async fn hostile_names_and_filters_get_pages_not_crashes() {
    let console = Console::new("console_hostile");
    let browser = console.sign_in().await;
    let name = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    let id = console.tenant(name);
    for path in [
        "/console/tenants".to_string(),
        format!("/console/tenants/{id}"),
        format!("/console/tenants/{id}/activity"),
        format!("/console/tenants/{id}/delete"),
    ] {
        let page = console.get(&path, Some(&browser.cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("<script>alert") && !page.body.contains("<img src=x"),
            "{path}"
        );
        assert!(
            page.body
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}"
        );
    }

    let long = "é".repeat(100_000);
    // As long as a URI may be (http caps them near 64 KiB).
    let long_query = "é".repeat(5_000);
    let cases = [
        (
            format!("/console/tenants?q={}", encode(&long_query)),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants?offset={}", i64::MAX),
            StatusCode::OK,
        ),
        (
            "/console/tenants?offset=-1".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/console/tenants?offset=x".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants/{id}/activity?status=abc"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants/{id}/activity?since=yesterday"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants/{id}/activity?since=2026-12-02T00:00&until=2026-12-01T00:00"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "/console/tenants/{id}/activity?user={}",
                encode(&long_query)
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants/{id}/activity?user=nobody%40example.com"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "/console/tenants/{id}/activity?request={}",
                encode(&long_query)
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/console/tenants/{id}/activity?before={}", i64::MIN),
            StatusCode::OK,
        ),
        (
            format!("/console/tenants/{id}/users?q=nobody%40example.com"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/console/tenants/not-a-uuid".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/tenants/{}", Uuid::nil()),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/tenants/{id}/launch"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/console/dead-letters/1e99".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/dead-letters/{}", i64::MAX),
            StatusCode::NOT_FOUND,
        ),
        (
            "/console/dead-letters?tenant=x".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/dead-letters?offset={}", i64::MAX),
            StatusCode::OK,
        ),
    ];
    for (path, status) in cases {
        let page = console.get(&path, Some(&browser.cookie)).await;
        let shown: String = path.chars().take(120).collect();
        assert_eq!(
            page.status,
            status,
            "{shown}: {}",
            page.body.chars().take(400).collect::<String>()
        );
        if status != StatusCode::OK {
            assert!(page.body.contains("id=\"error\""), "{shown}");
        }
    }
    let too_big = console
        .post(
            &format!("/console/tenants/{id}/features"),
            &browser.cookie,
            None,
            form(&[("csrf", &browser.csrf), ("feature", &long)]),
        )
        .await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.body
    );
    let unknown_feature = console
        .post(
            &format!("/console/tenants/{id}/features"),
            &browser.cookie,
            None,
            form(&[("csrf", &browser.csrf), ("feature", "video")]),
        )
        .await;
    assert_eq!(unknown_feature.status, StatusCode::BAD_REQUEST);
}

/// A dead letter shows its payload with the password an IdP synced
/// redacted, and a discard's reason may span lines; a user is found by
/// email or userName whatever its case.
#[tokio::test]
async fn support_sees_letters_without_secrets_and_finds_users_by_any_name() {
    use scimflow_admin::service::users::{create_manual, ManualUser};
    use scimflow_shared::store::commands::{record_dead_letter, NewDeadLetter};

    let console = Console::new("console_letters_users");
    let browser = console.sign_in().await;
    let tenant = console.tenant("Acme");
    let payload = serde_json::json!({"command": {"body": {
        "userName": "ada@example.com", "password": "hunter2-secret",
        "Operations": [{"op": "replace", "path": "password", "value": "other-secret"}]
    }}});
    let letter = record_dead_letter(
        &mut console.db.connect(),
        NewDeadLetter {
            command_id: None,
            tenant_id: Some(tenant),
            topic: "t.commands",
            partition: 0,
            offset: 7,
            key: Some("k"),
            payload: payload.to_string().as_bytes(),
            reason: "could not be applied",
            attempts: 1,
            replay_of: None,
            replay_origin: None,
        },
    )
    .expect("a dead letter");
    let page = console
        .get(
            &format!("/console/dead-letters/{letter}"),
            Some(&browser.cookie),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("[redacted]"), "{}", page.body);
    assert!(!page.body.contains("hunter2-secret") && !page.body.contains("other-secret"));

    let discarded = console
        .post(
            &format!("/console/dead-letters/{letter}/discard"),
            &browser.cookie,
            None,
            form(&[("csrf", &browser.csrf), ("reason", "IdP sent\r\nit twice")]),
        )
        .await;
    assert_eq!(
        discarded.status,
        StatusCode::SEE_OTHER,
        "{}",
        discarded.body
    );
    let page = console
        .get(
            &format!("/console/dead-letters/{letter}"),
            Some(&browser.cookie),
        )
        .await;
    assert!(page.body.contains("IdP sent it twice"), "{}", page.body);
    assert!(page.body.contains("console:Grace"), "the actor is recorded");

    let config = Config::from_settings(&[
        ("DATABASE_URL", console.db.url()),
        ("KAFKA_BROKERS", "127.0.0.1:1"),
    ])
    .expect("a configuration");
    let made = create_manual(
        &mut console.db.connect(),
        &config,
        tenant,
        ManualUser {
            email: "Zoe.Ångström@example.com".into(),
            given_name: Some("Zoë".into()),
            family_name: None,
        },
    )
    .expect("a user");
    let id = made["id"].as_str().unwrap_or_default().to_string();
    let user_name = made["userName"].as_str().unwrap_or_default().to_string();
    for named in [
        id.as_str(),
        "zoe.ångström@EXAMPLE.com",
        &user_name.to_ascii_uppercase(),
    ] {
        let found = console
            .get(
                &format!("/console/tenants/{tenant}/users?q={}", encode(named)),
                Some(&browser.cookie),
            )
            .await;
        assert_eq!(
            found.status,
            StatusCode::SEE_OTHER,
            "{named}: {}",
            found.body
        );
        assert_eq!(
            found.header(header::LOCATION),
            format!("/console/tenants/{tenant}/users/{id}"),
            "{named}"
        );
    }
    let record = console
        .get(
            &format!("/console/tenants/{tenant}/users/{id}"),
            Some(&browser.cookie),
        )
        .await;
    assert_eq!(record.status, StatusCode::OK);
    assert!(record.body.contains("id=\"user-history\""));
}
