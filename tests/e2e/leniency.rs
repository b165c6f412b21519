//! What real SCIM clients send beyond the letter of RFC 7644, accepted where
//! its meaning is certain and refused with a precise error where accepting
//! would be a guess (docs/conformance.md, "Leniency").

use reqwest::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{patch_op, Reply, Stack, Tenant, SCIM_JSON};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn user_body(name: &str, family: &str) -> Value {
    let email = format!("{name}@lenient.example");
    json!({"schemas": [USER], "userName": email, "name": {"givenName": name, "familyName": family},
           "emails": [{"value": email, "type": "work", "primary": true}]})
}

async fn create(t: &Tenant, name: &str, family: &str) -> String {
    let r = t.post("/Users", &user_body(name, family)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_string()
}

fn user_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u["userName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Endpoint names in another case, a trailing slash, and the doubled slash
/// of a base URL configured with a trailing `/` all reach their endpoint;
/// answers still name the canonical URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_in_any_case_and_with_extra_slashes() {
    let stack = Stack::start("lenient_paths").await;
    let t = stack.tenant("");

    let created = t.post("/users", &user_body("olga", "Employee")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        created.headers["location"],
        format!("{}/Users/{id}", t.base),
        "the Location names the canonical endpoint"
    );

    let listed = t.get("/users").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(listed.content_type(), SCIM_JSON);

    // The connection test with a trailing slash before the query.
    let url = reqwest::Url::parse_with_params(
        &format!("{}/Users/", t.base),
        &[("filter", r#"userName eq "olga@lenient.example""#)],
    )
    .expect("url");
    let found = t.get(url.as_str()).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());

    for path in [
        format!("/Users/{id}/"),
        format!("/USERS/{id}"),
        format!("//Users/{id}"),
    ] {
        let r = t.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.body["id"], id.as_str(), "{path}");
    }
    let patched = t
        .patch(
            &format!("/users/{id}/"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["title"], "Lead");

    let group = t
        .post(
            "/groups/",
            &json!({"displayName": "Lenient", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let search = t
        .post("/users/.SEARCH", &json!({"filter": "title eq \"Lead\""}))
        .await;
    assert_eq!(search.status, 200, "{}", search.body);
    assert_eq!(search.body["totalResults"], 1);

    for path in [
        "/serviceproviderconfig",
        "/ServiceProviderConfig/",
        "/resourcetypes",
        "/resourceTypes/user",
        "/schemas/",
    ] {
        let r = t.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "DELETE", "path": format!("/users/{id}")}]});
    let r = t.post("/bulk", &bulk).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bulk_statuses(), ["204"]);

    // What names no endpoint is still a SCIM 404.
    t.get("/things").await.assert_error(404, None);
    t.get("/Userz/").await.assert_error(404, None);
}

async fn filter(t: &Tenant, f: &str) -> Reply {
    t.filter_users(f).await
}

/// Unquoted values, as Microsoft's reference implementation reads them: a
/// bare word is a string; true, false, null and numbers keep their types;
/// quoted values stay exact; what would be a guess is a precise 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquoted_filter_values_are_strings_unless_that_would_guess() {
    let stack = Stack::start("lenient_filters").await;
    let t = stack.tenant("");
    let olga = create(&t, "olga", "Employee").await;
    create(&t, "oscar", "Contractor").await;
    create(&t, "bob", "Employee").await;

    let r = filter(&t, "userName sw O").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        user_names(&r.body),
        ["olga@lenient.example", "oscar@lenient.example"]
    );
    let r = filter(&t, "name.familyName eq Employee").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        user_names(&r.body),
        ["bob@lenient.example", "olga@lenient.example"]
    );
    let r = filter(&t, "meta.created gt 2015-10-10T14:38:21.8617979-07:00").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 3);
    let r = filter(&t, "meta.created gt 2999-01-01T00:00:00Z").await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let r = filter(&t, "userName eq olga@lenient.example and active eq true").await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], olga.as_str());
    // Quoted values stay exact: the same word quoted or not.
    let r = filter(&t, r#"name.familyName eq "Employee""#).await;
    assert_eq!(r.body["totalResults"], 2, "{}", r.body);
    let r = filter(&t, r#"name.familyName eq "Employee ""#).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    // Booleans as strings, as Entra sends them, are booleans.
    let r = filter(&t, r#"active eq "True""#).await;
    assert_eq!(r.body["totalResults"], 3, "{}", r.body);
    let r = filter(&t, r#"emails[primary eq "false"]"#).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    // The same in a POST search.
    let r = t
        .post(
            "/Users/.search",
            &json!({"filter": "name.familyName eq Contractor"}),
        )
        .await;
    assert_eq!(user_names(&r.body), ["oscar@lenient.example"]);

    // Typed literals keep their types: a number is not a string.
    let r = filter(&t, "externalId eq 12345").await;
    r.assert_error(400, Some("invalidFilter"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(r#"quote the value ("12345")"#),
        "{}",
        r.body
    );
    // A guess is refused, and the detail says what to do.
    for (f, why) in [
        (
            "displayName eq Sales Team",
            "quote a value that contains spaces",
        ),
        ("title eq and", "filter keyword"),
        (r#"active eq "yes""#, "compare it with true or false"),
        ("userName eq 'olga@lenient.example'", "double quotes"),
        (r#"userName eq emails[type eq "work"]"#, "quote strings"),
    ] {
        let r = filter(&t, f).await;
        r.assert_error(400, Some("invalidFilter"));
        assert!(
            r.body["detail"].as_str().unwrap_or_default().contains(why),
            "{f}: {}",
            r.body
        );
    }
}

/// `failOnErrors: 0` (RFC 7644 only says "an integer"): no error is
/// tolerated, so the request stops at the first, as with 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_fail_on_errors_zero_stops_at_the_first_error() {
    let stack = Stack::start("lenient_bulk").await;
    let t = stack.tenant("");
    create(&t, "taken", "Holder").await;
    let op = |bulk_id: &str, name: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
               "data": user_body(name, "Bulk")})
    };
    let request = |fail_on_errors: Value| {
        let mut r = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            op("u1", "first"),
            // The userName is held by another user: 409 (I4).
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"schemas": [USER],
                "userName": "taken@lenient.example",
                "emails": [{"value": "other@lenient.example", "type": "work", "primary": true}]}},
            // Needs u1's outcome, so runs after the error is known.
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"Operations": [{"op": "replace", "path": "title", "value": "Ran"}]}}
        ]});
        if !fail_on_errors.is_null() {
            r["failOnErrors"] = fail_on_errors;
        }
        r
    };

    let r = t.post("/Bulk", &request(json!(0))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.bulk_statuses(), ["201", "409"], "{}", r.body);
    let first = filter(&t, r#"userName eq "first@lenient.example""#).await;
    assert_eq!(first.body["totalResults"], 1);
    assert!(
        first.body["Resources"][0].get("title").is_none(),
        "the operation after the error did not run: {}",
        first.body
    );

    // Without failOnErrors every operation runs.
    let mut rest = request(Value::Null);
    rest["Operations"][0] = op("u1", "second");
    let r = t.post("/Bulk", &rest).await;
    assert_eq!(r.bulk_statuses(), ["201", "409", "200"], "{}", r.body);

    // A negative count has no meaning: refused.
    t.post("/Bulk", &request(json!(-1)))
        .await
        .assert_error(400, Some("invalidValue"));
}

/// The request shapes idp-interop.md lists that no other test sends: every
/// content type the IdPs use (or none), Okta's headers, a form-encoded
/// query, a PatchOp without `schemas`, and Entra's manager as a list of
/// references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types_headers_and_manager_shapes_idps_send() {
    let stack = Stack::start("lenient_shapes").await;
    let t = stack.tenant("");
    let send = |method: Method, path: &str, content_type: Option<&str>, body: Option<&Value>| {
        let mut req = t
            .http
            .request(method, format!("{}{path}", t.base))
            .header("Authorization", format!("Bearer {}", t.token))
            .header(USER_AGENT, "Okta SCIM Client 1.0.0")
            .header(ACCEPT_ENCODING, "gzip,deflate")
            .header(ACCEPT, "application/scim+json, application/json");
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        async move {
            let resp = req.send().await.expect("HTTP request");
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            Reply {
                status,
                headers,
                body,
            }
        }
    };
    let mut ids = Vec::new();
    for (i, ct) in [
        Some("application/scim+json"),
        Some("application/scim+json; charset=utf-8"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let r = send(
            Method::POST,
            "/Users",
            ct,
            Some(&user_body(&format!("ct{i}"), "Type")),
        )
        .await;
        assert_eq!(r.status, 201, "{ct:?}: {}", r.body);
        assert_eq!(r.content_type(), SCIM_JSON, "{ct:?}");
        assert!(
            r.headers.get("content-encoding").is_none(),
            "answered uncompressed, which every client reads"
        );
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    let r = send(Method::GET, "/Users?startIndex=1&count=100", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), SCIM_JSON);
    assert_eq!(r.body["totalResults"], 5);

    // A query string in form encoding, parameter names in any case.
    let r = t
        .get("/Users?filter=userName+eq+%22ct0@lenient.example%22&startindex=1&COUNT=10")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["itemsPerPage"], 1, "{}", r.body);
    // A PatchOp without `schemas`, its list named in another case.
    let bare = json!({"operations": [{"op": "replace", "path": "title", "value": "Bare"}]});
    let r = t.patch(&format!("/Users/{}", ids[3]), &bare).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Bare");

    // Entra's manager: a plain id, or a list with a $ref.
    let manager = format!("{ENTERPRISE}:manager");
    let list = patch_op(json!([{"op": "Add", "path": manager,
        "value": [{"$ref": format!("{}/Users/{}", t.base, ids[1]), "value": ids[1]}]}]));
    let r = t.patch(&format!("/Users/{}", ids[0]), &list).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], ids[1].as_str());
    let plain = patch_op(json!([{"op": "Replace", "path": manager, "value": ids[2]}]));
    let r = t.patch(&format!("/Users/{}", ids[0]), &plain).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], ids[2].as_str());
}
