//! Entity tags (RFC 7232 §2.3, RFC 7644 §3.14). scimflow's are weak
//! (`W/"<version>"`), and `If-Match` and `If-None-Match` both compare
//! them weakly: a tag names a version whether or not the client kept the
//! `W/`.

/// Whether a header's list of entity tags (`"3", W/"4"` or `*`) names
/// `current`.
pub fn list_matches(list: &str, current: &str) -> bool {
    let opaque = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_string()
    };
    let current = opaque(current);
    list.split(',')
        .any(|tag| tag.trim() == "*" || opaque(tag) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong_forms_of_a_tag_match_and_others_do_not() {
        // (header list, current tag, matches)
        let cases = [
            (r#"W/"3""#, r#"W/"3""#, true),
            (r#""3""#, r#"W/"3""#, true),
            (r#"W/"3""#, r#""3""#, true),
            (r#" "2", W/"3" "#, r#"W/"3""#, true),
            ("*", r#"W/"9""#, true),
            (r#""2", *"#, r#"W/"9""#, true),
            (r#"W/"4""#, r#"W/"3""#, false),
            (r#""33""#, r#"W/"3""#, false),
            ("3", r#"W/"3""#, false),
            ("", r#"W/"3""#, false),
            (r#"w/"3""#, r#"W/"3""#, false),
        ];
        for (list, current, want) in cases {
            assert_eq!(list_matches(list, current), want, "{list} vs {current}");
        }
    }
}
