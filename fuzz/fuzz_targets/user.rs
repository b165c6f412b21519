//! User and Group bodies from any bytes, through the ingress's depth
//! check and serde_json: normalised or refused with a 400. A normalised
//! user is its own normalisation (what a PUT of it stores is itself),
//! and holds no value past a limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use scimflow_shared::rules::identity::identity_email;
use scimflow_shared::scim::group::{normalize_group, MAX_MEMBERS_PER_REQUEST};
use scimflow_shared::scim::json::check_depth;
use scimflow_shared::scim::user::{normalize_user, MAX_MULTI_VALUES, MAX_STRING_LEN};

fn check_limits(v: &Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => assert!(s.len() <= MAX_STRING_LEN && !s.contains('\0')),
            Value::Array(items) => {
                assert!(items.len() <= MAX_MULTI_VALUES);
                stack.extend(items);
            }
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if check_depth(data).is_err() {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match normalize_user(&body) {
        Ok(user) => {
            let doc = Value::Object(user.attrs.clone());
            check_limits(&doc);
            let again = normalize_user(&doc).expect("a normalised user normalises");
            assert_eq!(again.attrs, user.attrs);
            if let Err(e) = identity_email(&user.attrs) {
                assert_eq!(e.status, 400, "{e:?}");
            }
        }
        Err(e) => assert_eq!(e.status, 400, "{e:?}"),
    }
    match normalize_group(&body) {
        Ok(group) => assert!(group
            .members
            .is_none_or(|m| m.len() <= MAX_MEMBERS_PER_REQUEST)),
        Err(e) => assert_eq!(e.status, 400, "{e:?}"),
    }
});
