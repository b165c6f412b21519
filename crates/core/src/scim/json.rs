//! How deeply a request body may nest, checked on its bytes before it is
//! parsed.
//!
//! The processor decodes every body inside its command envelope with
//! serde_json, which refuses input nested 128 levels deep; a body the
//! ingress accepts must decode there too, or it would be dead-lettered
//! for a reason the ingress could have seen. `MAX_JSON_DEPTH` keeps every
//! accepted body well below that limit, with the envelope's levels added
//! (`command::ENVELOPE_NESTING`, checked at compile time there).

use super::error::ScimError;

/// Deepest nesting of arrays and objects accepted in a request body:
/// `{}` is 1, `{"a": [1]}` is 2. Past it: 400 `invalidSyntax`.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting serde_json decodes: it refuses the 128th level.
pub const SERDE_JSON_MAX_DEPTH: usize = 127;

/// Refuse `bytes` when their arrays and objects nest deeper than
/// `MAX_JSON_DEPTH`. One pass, no recursion, brackets inside strings not
/// counted; whether the bytes are JSON at all is left to the parser.
pub fn check_depth(bytes: &[u8]) -> Result<(), ScimError> {
    if depth_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(ScimError::invalid_syntax(format!(
            "the request body is nested more than {MAX_JSON_DEPTH} levels deep"
        )));
    }
    Ok(())
}

/// Do `bytes` open more than `max` arrays and objects at once?
pub fn depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn counts_structure_and_not_strings() {
        let cases: &[(&str, usize)] = &[
            ("1", 0),
            ("{}", 1),
            (r#"{"a": [1, {"b": []}]}"#, 4),
            (r#"{"a": "[[[[{{{{"}"#, 1),
            (r#"{"a": "\"[[[["}"#, 1),
            (r#"{"a": "\\", "b": [[]]}"#, 3),
            (r#"["é€😀[", ["x"]]"#, 2),
        ];
        for (json, depth) in cases {
            assert!(!depth_exceeds(json.as_bytes(), *depth), "{json}");
            if *depth > 0 {
                assert!(depth_exceeds(json.as_bytes(), depth - 1), "{json}");
            }
        }
    }

    #[test]
    fn refuses_past_the_limit_and_names_it() {
        assert!(check_depth(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
        let err = check_depth(nested(MAX_JSON_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(
            (err.status, err.scim_type),
            (400, Some(super::super::ScimType::InvalidSyntax))
        );
        assert!(
            err.detail.contains(&MAX_JSON_DEPTH.to_string()),
            "{}",
            err.detail
        );
        // Far past it, and unbalanced: still one pass, still refused.
        assert!(check_depth("[".repeat(1_000_000).as_bytes()).is_err());
    }

    #[test]
    fn what_is_accepted_parses() {
        let body: serde_json::Value =
            serde_json::from_str(&nested(MAX_JSON_DEPTH)).expect("decodes");
        assert!(body.is_array());
    }
}
