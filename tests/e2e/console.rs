//! The support console (`/console`, served by `scimflow admin-api`) through
//! the real stack. In headless Chromium: signing in, finding a tenant, a
//! user provisioned over SCIM appearing, a request the rules refuse found
//! in the activity log with its reason, a dead letter replayed, a token
//! rotated (and the old one refused over SCIM), a hostile tenant name shown
//! as text. Over plain HTTP: the security headers of every page, forged
//! POSTs refused without effect, sessions required.
//!
//! The browser test takes the screenshots of docs/console.md
//! (`SCIMFLOW_UPDATE_SCREENSHOTS=1 ./scripts/test console`).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    eventually, patch_op, AdminApi, Browser, Stack, Tenant, ADMIN_TOKEN, PAGE_DEADLINE, SCIM_JSON,
};

/// Who signs in: actions are recorded as `console:<name>`.
const ACTOR: &str = "Grace";
const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>";
/// How long the pipeline may take to show a write in the console: the
/// activity log is written in the background, a few seconds late.
const PIPELINE: Duration = Duration::from_secs(60);
const PAGE: Duration = PAGE_DEADLINE;

fn user(email: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
           "emails": [{"value": email, "type": "work", "primary": true}]})
}

/// A `POST /Users` as the IdP sends it, with its request id.
async fn post_user(t: &Tenant, body: &Value, request_id: &str) -> (StatusCode, Value) {
    let r = t
        .http
        .post(format!("{}/Users", t.base))
        .bearer_auth(&t.token)
        .header("content-type", SCIM_JSON)
        .header("x-request-id", request_id)
        .body(body.to_string())
        .send()
        .await
        .expect("SCIM POST");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn sign_in(browser: &Browser, actor: &str, token: &str) {
    browser.fill("form#sign-in", "actor", actor).await;
    browser.fill("form#sign-in", "token", token).await;
    browser.submit("form#sign-in").await;
}

/// The text of a cell (`td.<class>`) of a tenant's row in the tenant list.
async fn tenant_cell(browser: &Browser, tenant: &str, class: &str) -> String {
    browser.goto(&format!("/console/tenants?q={tenant}")).await;
    browser
        .text(&format!(
            "tr.tenant[data-tenant-id=\"{tenant}\"] td.{class}"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_in_a_browser_finds_tenants_users_refusals_replays_letters_and_rotates_tokens() {
    let stack = Stack::new("console_browser")
        .with_env("SCIMFLOW_REPLY_DEADLINE_MS", "15000")
        .started()
        .await;
    let api = AdminApi::start(&stack).await;
    let globex = stack.named_tenant("Globex Corporation", "voice");
    stack.named_tenant("Initech", "");
    let hostile = stack.named_tenant(HOSTILE_NAME, "");
    let browser = Browser::start(&stack.logs, &stack.name, &api.base).await;
    let tenant_page = format!("/console/tenants/{}", globex.id);

    // Sign in. Without a session every page leads to the sign-in form; a
    // wrong admin token is refused there.
    browser.goto("/console/tenants").await;
    browser.wait_for_path("/console/sign-in").await;
    browser.wait_for("form#sign-in", PAGE).await;
    assert_eq!(browser.count("p#error").await, 0);
    browser.screenshot("sign-in").await;
    sign_in(&browser, ACTOR, "not-the-admin-token").await;
    browser.wait_for("p#error", PAGE).await;
    assert!(
        browser.text("p#error").await.contains("not valid"),
        "{}",
        browser.text("p#error").await
    );
    assert_eq!(browser.path().await, "/console/sign-in");
    assert_eq!(browser.count("table#tenants").await, 0);
    sign_in(&browser, ACTOR, ADMIN_TOKEN).await;
    browser.wait_for("table#tenants", PAGE).await;
    assert_eq!(browser.path().await, "/console/tenants");
    assert!(!browser.url().await.as_str().contains(ADMIN_TOKEN));
    assert_eq!(browser.count("tr.tenant").await, 3);
    assert_eq!(browser.count("nav a#nav-tenants").await, 1);
    assert_eq!(browser.count("nav a#nav-dead-letters").await, 1);
    assert_eq!(browser.count("form#sign-out").await, 1);

    // Find a tenant by part of its name, whatever its case.
    browser.fill("form#tenant-search", "q", "LOBEX").await;
    browser.submit("form#tenant-search").await;
    browser.wait_for_path("/console/tenants?q=LOBEX").await;
    let found = browser.find_all("tr.tenant").await;
    assert_eq!(found.len(), 1, "only Globex matches");
    assert_eq!(
        found[0]
            .attr("data-tenant-id")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some(globex.id.as_str())
    );
    assert_eq!(
        browser.text("tr.tenant a.tenant-link").await,
        "Globex Corporation"
    );
    assert_eq!(browser.text("tr.tenant td.state").await, "active");
    browser.click("tr.tenant a.tenant-link").await;
    browser.wait_for_path(&tenant_page).await;
    assert_eq!(browser.count("h1").await, 1);
    assert_eq!(browser.text("h1").await, "Globex Corporation");
    assert_eq!(browser.text("code#scim-base-url").await, globex.base);
    assert_eq!(browser.text("td#tenant-state").await, "active");
    assert_eq!(tenant_cell(&browser, &globex.id, "users").await, "0");

    // A hostile name is text: no element made of it, no script run.
    browser
        .goto(&format!("/console/tenants/{}", hostile.id))
        .await;
    assert_eq!(browser.text("h1").await, HOSTILE_NAME);
    assert_eq!(browser.count("main img").await, 0);
    browser.goto("/console/tenants?q=onerror").await;
    assert_eq!(browser.text("tr.tenant a.tenant-link").await, HOSTILE_NAME);
    assert_eq!(browser.count("main img").await, 0);
    assert!(!browser.dialog_open().await, "a script of the name ran");

    // Provision a user over SCIM: the console finds them by email, with
    // their roles, groups and history, and counts them.
    let email = "ada.lovelace@globex.example";
    let (status, ada) = post_user(&globex, &user(email), "okta-req-ada").await;
    assert_eq!(status, 201, "{ada}");
    let ada_id = ada["id"].as_str().expect("id").to_string();
    let group = globex
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Analytical Engines", "members": [{"value": ada_id}]}),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    browser.goto(&tenant_page).await;
    browser.fill("form#user-search", "q", email).await;
    browser.submit("form#user-search").await;
    let user_page = format!("/console/tenants/{}/users/{ada_id}", globex.id);
    browser.wait_for_path(&user_page).await;
    assert_eq!(browser.text("h1").await, email);
    let record = browser.text("pre#user-record").await;
    let record: Value = serde_json::from_str(&record).unwrap_or(Value::String(record));
    assert_eq!(record["id"], ada_id.as_str(), "{record}");
    assert_eq!(record["userName"], email, "{record}");
    let roles = browser.text("#user-roles").await.to_lowercase();
    assert!(
        roles.contains("analyst") && roles.contains("user"),
        "{roles}"
    );
    let groups = browser.text("ul#user-groups").await;
    assert!(groups.contains("Analytical Engines"), "{groups}");
    let link = "tr.history-entry a.request-link";
    let requests = browser.texts(link).await;
    assert!(requests.iter().any(|r| r == "okta-req-ada"), "{requests:?}");
    let activity_of_ada = format!(
        "/console/tenants/{}/activity?request=okta-req-ada",
        globex.id
    );
    let hrefs = browser.attrs(link, "href").await;
    assert!(
        hrefs.iter().any(|h| h.ends_with(&activity_of_ada)),
        "{hrefs:?}"
    );
    browser.screenshot("user").await;
    assert_eq!(tenant_cell(&browser, &globex.id, "users").await, "1");
    browser.goto("/console/tenants").await;
    browser.screenshot("tenants").await;

    // Its request in the activity log, reached from the user's history.
    browser.goto(&user_page).await;
    browser
        .click(&format!("{link}[href$=\"{activity_of_ada}\"]"))
        .await;
    browser.wait_for_path(&activity_of_ada).await;
    let cells = ["td.method", "td.resource", "td.status", "td.request-id"];
    let logged = browser
        .reload_until(
            "the POST in the activity log",
            &activity_of_ada,
            PIPELINE,
            || async {
                let rows = browser.rows("tr.activity-entry", &cells).await;
                (!rows.is_empty()).then_some(rows)
            },
        )
        .await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0][0], "POST", "{logged:?}");
    assert!(logged[0][1].contains("User"), "{logged:?}");
    assert_eq!(logged[0][2], "201", "{logged:?}");
    assert_eq!(logged[0][3], "okta-req-ada", "{logged:?}");

    // A request the rules refuse (R8: two primary roles, neither marked
    // primary), found in the log with its SCIM error and its rule.
    let mut two_primaries = user("kim@globex.example");
    two_primaries["roles"] = json!(["recorder", "analyst"]);
    let (status, refusal) = post_user(&globex, &two_primaries, "okta-req-r8").await;
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["scimType"], "invalidValue", "{refusal}");
    let detail = refusal["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("R8"), "{detail}");
    browser
        .goto(&format!("/console/tenants/{}/activity", globex.id))
        .await;
    browser.fill("form#activity-filter", "status", "4xx").await;
    browser.submit("form#activity-filter").await;
    browser.wait_for("table#activity", PAGE).await;
    let filtered = browser.path().await;
    assert!(filtered.contains("status=4xx"), "{filtered}");
    let cells = [
        "td.status",
        "td.request-id",
        "td.scim-type",
        "td.detail",
        "td.rule",
        "td.method",
    ];
    let refused = browser
        .reload_until(
            "the refusal in the activity log",
            &filtered,
            PIPELINE,
            || async {
                let rows = browser.rows("tr.activity-entry", &cells).await;
                rows.iter().any(|r| r[1] == "okta-req-r8").then_some(rows)
            },
        )
        .await;
    assert!(refused.iter().all(|r| r[0].starts_with('4')), "{refused:?}");
    let entry = refused
        .iter()
        .find(|r| r[1] == "okta-req-r8")
        .expect("the refusal");
    assert_eq!(entry[0], "400", "{entry:?}");
    assert_eq!(entry[2], "invalidValue", "{entry:?}");
    assert_eq!(entry[3], detail, "{entry:?}");
    assert_eq!(entry[4], "R8", "{entry:?}");
    assert_eq!(entry[5], "POST", "{entry:?}");
    browser.screenshot("activity-refusal").await;

    // Live updates: the open log shows the next refusal without a reload
    // (a mark set on this page now would not survive one).
    browser
        .script("document.body.dataset.loaded = 'once'")
        .await;
    let (status, _) = post_user(&globex, &two_primaries, "okta-req-live").await;
    assert_eq!(status, 400);
    eventually(
        "the next refusal to appear in the open log",
        PIPELINE,
        || async {
            let rows = browser.rows("tr.activity-entry", &["td.request-id"]).await;
            rows.iter().any(|r| r[0] == "okta-req-live").then_some(())
        },
    )
    .await;
    assert_eq!(
        browser
            .script("return document.body.dataset.loaded || null")
            .await,
        json!("once"),
        "the log was refreshed in place, not reloaded"
    );
    browser.goto(&tenant_page).await;
    assert_eq!(browser.count("svg#activity-chart").await, 1);
    browser.screenshot("tenant").await;

    // A dead letter: a change the database refuses until the cause is
    // fixed, then replayed from the console.
    let (status, bob) = post_user(&globex, &user("bob@globex.example"), "okta-req-bob").await;
    assert_eq!(status, 201, "{bob}");
    let bob_id = bob["id"].as_str().expect("id").to_string();
    stack.refuse_poison();
    globex
        .patch(
            &format!("/Users/{bob_id}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "poison"}])),
        )
        .await
        .assert_error(500, None);
    stack.allow_poison();
    assert_eq!(
        tenant_cell(&browser, &globex.id, "open-dead-letters").await,
        "1"
    );
    let letters = format!("/console/dead-letters?tenant={}", globex.id);
    browser.goto(&letters).await;
    let listed = browser.find_all("tr.dead-letter").await;
    assert_eq!(listed.len(), 1);
    let letter_id = listed[0]
        .attr("data-dead-letter-id")
        .await
        .ok()
        .flatten()
        .expect("the letter's id");
    assert_eq!(browser.text("tr.dead-letter td.status").await, "open");
    browser.screenshot("dead-letters").await;
    browser.click("tr.dead-letter a.dead-letter-link").await;
    let letter_page = format!("/console/dead-letters/{letter_id}");
    browser.wait_for_path(&letter_page).await;
    assert!(browser.text("#dead-letter-reason").await.contains("poison"));
    assert_eq!(browser.text("#dead-letter-status").await, "open");
    let payload = browser.text("pre#dead-letter-payload").await;
    assert!(
        payload.contains(&globex.id) && payload.contains(&bob_id),
        "{payload}"
    );
    browser.screenshot("dead-letter").await;
    browser.click("a#replay").await;
    browser
        .wait_for_path(&format!("{letter_page}/replay"))
        .await;
    browser.wait_for("form#confirm", PAGE).await;
    browser.click("#confirm-button").await;
    browser.wait_for_path(&letter_page).await;
    browser.wait_for("p#notice", PAGE).await;
    browser
        .reload_until(
            "the letter to be replayed",
            &letter_page,
            PIPELINE,
            || async { (browser.text("#dead-letter-status").await == "replayed").then_some(()) },
        )
        .await;
    let actions = browser.texts("table#dead-letter-actions tr.action").await;
    assert!(
        actions
            .iter()
            .any(|a| a.contains("replay") && a.contains(&format!("console:{ACTOR}"))),
        "{actions:?}"
    );
    assert_eq!(
        browser.count("a#replay").await,
        0,
        "no replay once replayed"
    );
    eventually("the replayed change to apply", PIPELINE, || {
        let (t, path) = (&globex, format!("/Users/{bob_id}"));
        async move { (t.get(&path).await.body["title"] == "poison").then_some(()) }
    })
    .await;
    browser.goto(&format!("{letters}&all=1")).await;
    assert_eq!(browser.text("tr.dead-letter td.status").await, "replayed");
    assert_eq!(
        tenant_cell(&browser, &globex.id, "open-dead-letters").await,
        "0"
    );

    // Rotate the token: shown once, the old one refused over SCIM at once.
    browser.goto(&tenant_page).await;
    browser.click("a#rotate-token").await;
    browser
        .wait_for_path(&format!("{tenant_page}/rotate-token"))
        .await;
    browser.click("form#confirm #confirm-button").await;
    browser.wait_for("code#new-token", PAGE).await;
    let new_token = browser.text("code#new-token").await;
    assert!(new_token.starts_with("scimflow_"), "{new_token}");
    assert_ne!(new_token, globex.token);
    assert!(!browser.url().await.as_str().contains(&new_token));
    browser.screenshot("new-token").await;
    globex.refused(&globex.token).await;
    let rotated = Tenant {
        token: new_token.clone(),
        ..globex.clone()
    };
    assert_eq!(rotated.get("/Users").await.status, 200);
    browser.goto(&tenant_page).await;
    assert!(!browser.source().await.contains(&new_token), "shown once");

    // Signing out ends the session.
    browser.submit("form#sign-out").await;
    browser.wait_for("form#sign-in", PAGE).await;
    browser.goto(&tenant_page).await;
    browser.wait_for_path("/console/sign-in").await;
    browser.close().await;
}

/// Cookies as a browser keeps them, by name.
#[derive(Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn keep(&mut self, headers: &HeaderMap) {
        for cookie in headers.get_all(SET_COOKIE) {
            let text = cookie.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.0
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// A page of the console: 200, its headers, exactly one h1.
    fn assert_page(&self, what: &str) {
        assert_eq!(self.status, 200, "{what}: {}", self.body);
        self.assert_safe(what);
        assert_eq!(self.body.matches("<h1").count(), 1, "{what}: one h1");
    }

    /// The security headers every console response carries, and on HTML
    /// no caching.
    fn assert_safe(&self, what: &str) {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let csp = header("content-security-policy");
        for want in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(want), "{what}: CSP {csp:?} lacks {want}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: CSP {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        // No referrer to other sites. `same-origin` rather than
        // `no-referrer`, under which a browser's forms send `Origin: null`.
        let referrer = header("referrer-policy");
        assert!(
            ["same-origin", "no-referrer"].contains(&referrer.as_str()),
            "{what}: Referrer-Policy {referrer:?}"
        );
        if header("content-type").starts_with("text/html") {
            assert!(header("cache-control").contains("no-store"), "{what}");
        }
    }
}

/// The value of the hidden `csrf` field of the form with id `form`.
fn csrf_of(html: &str, form: &str) -> String {
    let start = html
        .find(&format!("id=\"{form}\""))
        .unwrap_or_else(|| panic!("no form#{form} in {html}"));
    let mut rest = &html[start..];
    while let Some(at) = rest.find("<input") {
        let tag = &rest[at..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let attrs = attributes(tag);
        if attrs.get("name").map(String::as_str) == Some("csrf") {
            return attrs.get("value").cloned().unwrap_or_default();
        }
        rest = &rest[at + 6..];
    }
    panic!("no csrf field in form#{form}");
}

/// The attributes of one tag's text, quoted either way or not at all.
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let mut rest = tag.trim_start_matches("<input");
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        if name_end == 0 {
            return attrs;
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            let (value, next) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let end = inner.find(q).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = next;
            value.to_string()
        } else {
            String::new()
        };
        attrs.insert(name, value);
    }
}

/// A client that follows no redirects and keeps cookies, like a browser.
struct Visitor {
    http: reqwest::Client,
    base: String,
    jar: Jar,
}

impl Visitor {
    fn new(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: base.to_string(),
            jar: Jar::default(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        origin: Option<&str>,
    ) -> Page {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !self.jar.0.is_empty() {
            req = req.header("cookie", self.jar.header());
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let r = req.send().await.expect("console request");
        let (status, headers) = (r.status(), r.headers().clone());
        self.jar.keep(&headers);
        let body = r.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    /// A form POST from a page of the console's own origin.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.send(Method::POST, path, Some(form), Some(&origin))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_carry_security_headers_refuse_forged_posts_and_need_a_session() {
    let stack = Stack::start("console_http").await;
    let api = AdminApi::start(&stack).await;
    let t = stack.named_tenant("Hooli", "");
    let hostile = stack.named_tenant(HOSTILE_NAME, "");
    let (status, made) = post_user(&t, &user("gavin@hooli.example"), "okta-req-1").await;
    assert_eq!(status, 201, "{made}");
    let user_id = made["id"].as_str().expect("id");
    let tenant_page = format!("/console/tenants/{}", t.id);
    let pages = [
        "/console/tenants".to_string(),
        "/console/tenants?q=hoo".to_string(),
        tenant_page.clone(),
        format!("{tenant_page}/activity"),
        format!("{tenant_page}/activity?status=4xx"),
        format!("{tenant_page}/users/{user_id}"),
        format!("{tenant_page}/rotate-token"),
        format!("{tenant_page}/suspend"),
        format!("{tenant_page}/delete"),
        "/console/dead-letters".to_string(),
        "/console/dead-letters?all=1".to_string(),
    ];
    let mut v = Visitor::new(&api.base);

    // No session: every page answers with the way to sign in.
    for page in &pages {
        let p = v.get(page).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{page}");
        assert!(
            p.location().ends_with("/console/sign-in"),
            "{page}: {}",
            p.location()
        );
        p.assert_safe(page);
    }

    // Signing in: the csrf field is required, a foreign origin and a wrong
    // token are refused, and the session cookie is guarded.
    let form = v.get("/console/sign-in").await;
    form.assert_page("sign-in");
    let csrf = csrf_of(&form.body, "sign-in");
    assert!(!csrf.is_empty());
    let no_csrf = v
        .post(
            "/console/sign-in",
            &[("actor", ACTOR), ("token", ADMIN_TOKEN)],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    no_csrf.assert_safe("sign-in without csrf");
    let foreign = v
        .send(
            Method::POST,
            "/console/sign-in",
            Some(&[("actor", ACTOR), ("token", ADMIN_TOKEN), ("csrf", &csrf)]),
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(
        !v.jar.0.contains_key("scimflow_console"),
        "no session from a forgery"
    );
    let wrong = v
        .post(
            "/console/sign-in",
            &[
                ("actor", ACTOR),
                ("token", "not-the-admin-token"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("id=\"error\""), "{}", wrong.body);
    wrong.assert_safe("a wrong token");
    assert!(!v.jar.0.contains_key("scimflow_console"));
    // The form shown again is the one to send (its csrf may be new).
    let csrf = csrf_of(&wrong.body, "sign-in");
    let signed = v
        .post(
            "/console/sign-in",
            &[("actor", ACTOR), ("token", ADMIN_TOKEN), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert!(
        signed.location().ends_with("/console/tenants"),
        "{}",
        signed.location()
    );
    assert!(!signed.location().contains(ADMIN_TOKEN));
    let cookie = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("scimflow_console="))
        .expect("the session cookie")
        .to_string();
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "samesite=strict", "path=/console"] {
        assert!(attrs.iter().any(|a| a == want), "{cookie}: {want}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN));

    // Every page, signed in: the headers, one h1. Bad input answers with
    // the same headers.
    for page in &pages {
        v.get(page).await.assert_page(page);
    }
    let css = v.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/css"));
    css.assert_safe("the stylesheet");
    let bad_filter = v.get(&format!("{tenant_page}/activity?status=6xx")).await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_filter.body.contains("id=\"error\""),
        "{}",
        bad_filter.body
    );
    bad_filter.assert_safe("a bad filter");
    let nobody = v
        .get(&format!("{tenant_page}/users?q=nobody@hooli.example"))
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    nobody.assert_safe("no such user");

    // A hostile name is escaped.
    let shown = v.get(&format!("/console/tenants/{}", hostile.id)).await;
    shown.assert_page("a hostile name");
    // No element of it, but its text, with the brackets as entities.
    assert!(!shown.body.contains("<img"), "{}", shown.body);
    assert!(
        shown.body.contains("img src=x onerror=alert(1)"),
        "{}",
        shown.body
    );

    // Forged actions change nothing: without the csrf field, with a wrong
    // one, from another origin. The real form then works.
    let suspend = format!("{tenant_page}/suspend");
    let confirm = v.get(&suspend).await;
    let csrf = csrf_of(&confirm.body, "confirm");
    let tenant_status =
        || async { api.get(&format!("/admin/v1/tenants/{}", t.id)).await.body["status"].clone() };
    let forgeries: [(&[(&str, &str)], &str); 3] = [
        (&[], "http://evil.example"),
        (&[("csrf", "forged")], api.base.as_str()),
        (&[("csrf", csrf.as_str())], "http://evil.example"),
    ];
    for (form, origin) in forgeries {
        let p = v
            .send(Method::POST, &suspend, Some(form), Some(origin))
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{form:?} from {origin}");
        p.assert_safe("a forged POST");
        assert_eq!(tenant_status().await, "active", "{form:?} from {origin}");
    }
    let no_origin_no_csrf = v.send(Method::POST, &suspend, Some(&[]), None).await;
    assert_eq!(no_origin_no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get("/Users").await.status, 200);
    let done = v.post(&suspend, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let back = done.location().to_string();
    let back_path = back.split('?').next().unwrap_or_default();
    assert!(back_path.ends_with(&tenant_page), "{back}");
    assert_eq!(tenant_status().await, "suspended");
    let after = v.get(back.trim_start_matches(&api.base)).await;
    assert!(after.body.contains("id=\"notice\""), "{}", after.body);
    t.refused(&t.token).await;
}
