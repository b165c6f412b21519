//! PATCH requests: any bytes as a request body (after the ingress's depth
//! check), or as the `path` or a path-less key of an operation. Parsed,
//! checked as the ingress checks them, applied to a user already near a
//! list's cap and to an empty one, held to a PUT as the processor holds
//! them, and planned as a group PATCH. Whatever the processor would write
//! is what a PUT of it would write; anything else is a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

use scimflow_shared::scim::group::{plan_group_patch, MAX_MEMBERS_PER_REQUEST};
use scimflow_shared::scim::json::check_depth;
use scimflow_shared::scim::patch::{
    apply_user_patch, check_user_patch, parse_patch_request, patched_user,
};
use scimflow_shared::scim::user::normalize_user;
use scimflow_shared::scim::ENTERPRISE_USER_SCHEMA;

fn user() -> Map<String, Value> {
    let phones: Vec<Value> = (0..99)
        .map(|i| json!({"value": format!("+1 {i}"), "type": "work"}))
        .collect();
    let doc = json!({
        "userName": "u@x.com",
        "active": true,
        "name": {"givenName": "A", "familyName": "B"},
        "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
        "phoneNumbers": phones,
        "addresses": [{"type": "work", "streetAddress": "1 Main"}],
        ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m"}, "department": "D"},
    });
    doc.as_object().cloned().unwrap_or_default()
}

fn body(data: &[u8]) -> Option<Value> {
    let (mode, rest) = data.split_first()?;
    let text = String::from_utf8_lossy(rest).into_owned();
    match mode % 4 {
        0 => {
            check_depth(rest).ok()?;
            serde_json::from_slice(rest).ok()
        }
        1 => Some(json!({"Operations": [{"op": "replace", "path": text, "value": "x"}]})),
        2 => Some(
            json!({"Operations": [{"op": "add", "path": text, "value": [{"value": "v", "primary": true}]}]}),
        ),
        _ => Some(json!({"Operations": [{"op": "add", "value": {text: "x"}}]})),
    }
}

fn four_hundred(e: &scimflow_shared::ScimError) {
    assert!((400..500).contains(&e.status), "{e:?}");
    assert!(e.scim_type.is_some() || e.status == 404, "{e:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some(body) = body(data) else { return };
    let ops = match parse_patch_request(&body) {
        Ok(ops) => ops,
        Err(e) => return four_hundred(&e),
    };
    if let Err(e) = check_user_patch(&ops) {
        four_hundred(&e);
    }
    for doc in [user(), Map::new()] {
        match apply_user_patch(doc, &ops).and_then(|(doc, _)| patched_user(doc)) {
            Ok(patched) => {
                let again = normalize_user(&Value::Object(patched.attrs.clone()))
                    .expect("a patched user is a valid PUT body");
                assert_eq!(again.attrs, patched.attrs, "a PUT of it stores the same");
            }
            Err(e) => four_hundred(&e),
        }
    }
    match plan_group_patch(&ops) {
        Ok(plan) => {
            let named: usize = plan.members.iter().map(|c| c.len()).sum();
            assert!(named <= MAX_MEMBERS_PER_REQUEST);
        }
        Err(e) => four_hundred(&e),
    }
});
