//! A filter from any text: parsed, evaluated against an element and
//! translated to SQL for both resource types. Whatever is accepted is
//! within every limit and parses into a tree of bounded height.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

use scimflow_shared::scim::filter::{
    matches, parse_filter, Filter, MAX_FILTER_DEPTH, MAX_FILTER_LEN,
};
use scimflow_shared::store::filter_sql::{group_condition, user_condition};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    match parse_filter(&input) {
        Ok(f) => {
            assert!(input.len() <= MAX_FILTER_LEN);
            assert!(Filter::height(&f) <= 3 * (MAX_FILTER_DEPTH + 1) + 1, "{f:?}");
            let element = json!({"type": "work", "value": "A@x.com", "primary": "True",
                                  "display": "é€😀", "emails": [{"value": "x"}], "n": 1});
            let _ = matches(&f, &element);
            for sql in [user_condition(&f), group_condition(&f)] {
                if let Err(e) = sql {
                    assert_eq!(e.status, 400, "{e:?}");
                }
            }
        }
        Err(e) => assert_eq!(e.status, 400, "{e:?}"),
    }
});
