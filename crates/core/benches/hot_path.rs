//! The pure work on every write and read: parsing filters, applying PATCH,
//! deciding roles, and turning a typical user into and out of JSON.
//! `cargo bench -p scimflow-core`; compare runs, never assert times.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

use scimflow_core::rules::identity::identity_email;
use scimflow_core::rules::roles::{apply_roles, parse_role_values, PlanFeatures, Roles};
use scimflow_core::scim::filter::parse_filter;
use scimflow_core::scim::patch::{apply_user_patch, parse_patch_request};
use scimflow_core::scim::user::{normalize_user, UserView};

fn okta_user() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada.lovelace@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": "ada.lovelace@example.com", "type": "work"}],
        "displayName": "Ada Lovelace", "locale": "en-US", "externalId": "00u1abcd",
        "groups": [], "password": "secret", "active": true,
        "roles": [{"value": "recorder", "primary": true}, {"value": "admin"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7", "department": "R&D"}
    })
}

fn filters(c: &mut Criterion) {
    c.bench_function("filter/userName eq", |b| {
        b.iter(|| parse_filter(black_box(r#"userName eq "ada@example.com""#)))
    });
    c.bench_function("filter/complex", |b| {
        b.iter(|| {
            parse_filter(black_box(
                r#"emails[type eq "work" and value co "@example.com"] and (name.familyName sw "L" or not (active eq false))"#,
            ))
        })
    });
}

fn patches(c: &mut Criterion) {
    let doc = normalize_user(&okta_user())
        .map(|u| u.attrs)
        .unwrap_or_default();
    let entra = json!({"Operations": [
        {"op": "Replace", "path": "displayName", "value": "Ada L."},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@example.org"},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "value": {"name.givenName": "A", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "8"}}
    ]});
    c.bench_function("patch/parse and apply (Entra, 4 ops)", |b| {
        b.iter(|| {
            let ops = parse_patch_request(black_box(&entra)).unwrap_or_default();
            apply_user_patch(doc.clone(), &ops)
        })
    });
}

fn roles(c: &mut Criterion) {
    let sent = parse_role_values(
        &json!([{"value": " Recorder ", "primary": "True"}, {"value": "ADMIN"}, "pilot"]),
    )
    .unwrap_or_default();
    let plan = PlanFeatures {
        voice: true,
        listener: true,
    };
    c.bench_function("roles/apply", |b| {
        b.iter(|| apply_roles(black_box(Some(Roles::DEFAULT)), black_box(&sent), plan))
    });
}

fn json_round_trip(c: &mut Criterion) {
    let body = okta_user();
    let text = body.to_string();
    c.bench_function("user/parse, normalise, identify", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(&text)).unwrap_or_default();
            let input = normalize_user(&v).ok();
            input.map(|i| identity_email(&i.attrs))
        })
    });
    let view = UserView {
        id: uuid::Uuid::now_v7(),
        attrs: normalize_user(&body).map(|u| u.attrs).unwrap_or_default(),
        active: true,
        roles: Roles::DEFAULT,
        created: chrono::Utc::now(),
        last_modified: chrono::Utc::now(),
        version: 3,
        groups: Vec::new(),
    };
    c.bench_function("user/render and serialise", |b| {
        b.iter(|| serde_json::to_vec(&black_box(&view).render("http://127.0.0.1:8080/scim/v2/t")))
    });
}

criterion_group!(benches, filters, patches, roles, json_round_trip);
criterion_main!(benches);
