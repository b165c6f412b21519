//! Attribute paths from any text, in every position a client sends one:
//! a PATCH `path`, `sortBy` and `attributes` / `excludedAttributes`
//! lists. Each is parsed or refused with a 400; none panics.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

use scimflow_shared::scim::path::parse_path;
use scimflow_shared::scim::query::ListParams;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Err(e) = parse_path(&input) {
        assert_eq!(e.status, 400, "{e:?}");
    }
    for name in ["sortBy", "attributes", "excludedAttributes", "filter"] {
        let params = HashMap::from([(name.to_string(), input.to_string())]);
        if let Err(e) = ListParams::from_query(&params) {
            assert_eq!(e.status, 400, "{e:?}");
        }
    }
});
