//! Hostile input through the real HTTP handlers: random and mutated SCIM
//! bodies, PATCH documents, filters and bulk requests, deterministic from
//! a seed. Whatever arrives: no panic (both processes still serve), no 5xx
//! but a 503 at the reply deadline, and no partial write (nothing is
//! dead-lettered, and every stored user is internally consistent).
//! `SCIMFLOW_FUZZ_CASES` sets the number of cases (default 20,000).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::common::{patch_op, Stack, Tenant};

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn odd_value(r: &mut Rng) -> Value {
    match r.below(14) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!("False"),
        3 => json!(r.next() as i64),
        4 => json!(1.5e300),
        5 => json!("x".repeat(3000)),
        6 => json!("\"]) or not (userName pr\\"),
        7 => json!({}),
        8 => json!([]),
        9 => (0..40).fold(json!("deep"), |v, _| json!([v])),
        10 => json!((0..150)
            .map(|i| json!({"value": format!("e{i}@x.example")}))
            .collect::<Vec<_>>()),
        11 => json!({"value": "bulkId:nope", "$ref": null}),
        12 => json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
        _ => json!("ünïcödé \u{0000} \u{FFFF}"),
    }
}

/// Mutate one random node of `v`: replace it, drop a key, add an unknown
/// one, or change a key's case.
fn mutate(v: &mut Value, r: &mut Rng) {
    match v {
        Value::Object(m) if !m.is_empty() && r.below(4) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = keys[r.below(keys.len())].clone();
            match r.below(5) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("{k}X"), odd_value(r));
                }
                2 => {
                    if let Some(val) = m.remove(&k) {
                        m.insert(k.to_uppercase(), val);
                    }
                }
                _ => {
                    if let Some(child) = m.get_mut(&k) {
                        mutate(child, r);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() && r.below(4) != 0 => {
            let i = r.below(a.len());
            mutate(&mut a[i], r);
        }
        other => *other = odd_value(r),
    }
}

fn okta_user(i: usize) -> Value {
    let email = format!("fz{i}@fuzz.example");
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
           "name": {"givenName": "F", "familyName": "Z"}, "emails": [{"primary": true, "value": email, "type": "work"}],
           "active": true, "roles": [{"value": "recorder"}, "admin"],
           "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "1", "manager": {"value": "m"}}})
}

fn user_patch() -> Value {
    patch_op(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@fuzz.example"},
        {"op": "Add", "path": "roles", "value": [{"value": "manager", "primary": "True"}]},
        {"op": "replace", "value": {"name.givenName": "G", "active": "False"}},
        {"op": "remove", "path": "roles[value eq \"admin\"]"}
    ]))
}

fn group_patch(member: &str) -> Value {
    patch_op(json!([
        {"op": "add", "path": "members", "value": [{"value": member}]},
        {"op": "remove", "path": format!("members[value eq \"{member}\"]")},
        {"op": "replace", "value": {"id": "x", "displayName": "Fuzzed"}}
    ]))
}

async fn one_case(t: &Tenant, user: &str, group: &str, case: usize) -> (u16, String) {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ (case as u64).wrapping_mul(0x1000_0000_01B3));
    let mutations = 1 + r.below(3);
    let (method, path, mut body): (Method, String, Option<Value>) = match r.below(8) {
        0 | 1 => (Method::POST, "/Users".into(), Some(okta_user(case))),
        2 => (Method::PUT, format!("/Users/{user}"), Some(okta_user(case))),
        3 | 4 => (Method::PATCH, format!("/Users/{user}"), Some(user_patch())),
        5 => (
            Method::PATCH,
            format!("/Groups/{group}"),
            Some(group_patch(user)),
        ),
        6 => (
            Method::POST,
            "/Bulk".into(),
            Some(json!({"failOnErrors": 2, "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": okta_user(case)},
            {"method": "PATCH", "path": "/Users/bulkId:a", "data": user_patch()}]})),
        ),
        _ => {
            let mut filter = r#"emails[type eq "work" and value co "@fuzz"] or (name.familyName sw "Z" and not (active eq true))"#
                .as_bytes()
                .to_vec();
            for _ in 0..mutations {
                let i = r.below(filter.len());
                filter[i] = b"()[]\" .:x\\"[r.below(10)];
            }
            let f = String::from_utf8_lossy(&filter).to_string();
            let url = reqwest::Url::parse_with_params(
                &format!("{}/Users", t.base),
                &[("filter", f.as_str())],
            )
            .expect("url");
            let resp = t.send(Method::GET, url.as_str(), None, None).await;
            return (resp.status.as_u16(), resp.body.to_string());
        }
    };
    if let Some(b) = body.as_mut() {
        for _ in 0..mutations {
            mutate(b, &mut r);
        }
    }
    let resp = t.send(method, &path, body.as_ref(), None).await;
    (resp.status.as_u16(), resp.body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_and_mutated_requests_never_panic_5xx_or_write_partially() {
    let cases: usize = std::env::var("SCIMFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let stack = Stack::new("fuzz")
        .with_env("SCIMFLOW_TENANT_RATE", "1000000")
        .started()
        .await;
    let t = stack.tenant("");
    let user = t.post("/Users", &okta_user(usize::MAX)).await.body["id"]
        .as_str()
        .expect("user")
        .to_string();
    let group = t
        .post("/Groups", &json!({"displayName": "fuzz"}))
        .await
        .body["id"]
        .as_str()
        .expect("group")
        .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(std::sync::Mutex::new(Map::new()));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (t, user, group, next, counts) = (
                t.clone(),
                user.clone(),
                group.clone(),
                next.clone(),
                counts.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let case = next.fetch_add(1, Ordering::Relaxed);
                    if case >= cases {
                        return;
                    }
                    let (status, body) = one_case(&t, &user, &group, case).await;
                    assert!(
                        status < 500 || status == 503,
                        "case {case}: {status} {body}"
                    );
                    if let Ok(mut c) = counts.lock() {
                        let e = c.entry(status.to_string()).or_insert(json!(0));
                        *e = json!(e.as_u64().unwrap_or(0) + 1);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("fuzz worker");
    }
    // Both processes still serve: a fresh write goes all the way through.
    let after = t
        .patch(
            &format!("/Users/{user}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "alive"}])),
        )
        .await;
    assert_eq!(after.status, 200, "{}", after.body);
    // No partial write: nothing failed inside the processor, and every
    // stored user's columns agree with its document.
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM dead_letters"),
        0,
        "no command failed to apply"
    );
    let inconsistent = stack.count(
        "SELECT count(*) AS n FROM users WHERE user_name <> attrs->>'userName'
           OR primary_role NOT IN ('recorder','recorder_and_voice','analyst','listener')
           OR permission NOT IN ('user','manager','admin')
           OR (primary_role = 'listener' AND permission <> 'user')
           OR primary_email <> lower(primary_email)",
    );
    assert_eq!(inconsistent, 0);
    let counts = counts
        .lock()
        .map(|c| Value::Object(c.clone()))
        .unwrap_or_default();
    println!("fuzz: {cases} cases; answers by status: {counts}");
}
