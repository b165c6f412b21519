//! PATCH paths (RFC 7644 §3.5.2): `attrPath [ "[" valFilter "]" ] ["." subAttr]`.
//!
//! A path is held to the filter's limits (`scim::filter`): at most
//! `MAX_FILTER_LEN` bytes, `MAX_FILTER_TERMS` terms in its value
//! filter, `MAX_FILTER_DEPTH` levels of nesting; past them, `invalidPath`.

use super::error::ScimError;
use super::filter::{split_attr_path, AttrPath, Filter, Parser, MAX_FILTER_LEN};

#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; `attr.sub` is set only when no value filter is used.
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `emails[...].value`.
    pub sub_after_filter: Option<String>,
}

impl PatchPath {
    /// The sub-attribute the path ends in, wherever it was written.
    pub fn sub(&self) -> Option<&str> {
        self.sub_after_filter
            .as_deref()
            .or(self.attr.sub.as_deref())
    }
}

pub fn parse_path(input: &str) -> Result<PatchPath, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_path(format!(
            "a path is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let to_path_error =
        |e: ScimError| ScimError::invalid_path(format!("invalid path '{input}': {}", e.detail));
    let mut p = Parser::new(input);
    let attr = p.attr_path().map_err(to_path_error)?;
    let mut path = PatchPath {
        attr,
        filter: None,
        sub_after_filter: None,
    };
    if p.peek() == Some('[') {
        if path.attr.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "invalid path '{input}': a value filter cannot follow a sub-attribute"
            )));
        }
        p.bump();
        path.filter = Some(p.filter(1).map_err(to_path_error)?);
        p.skip_ws();
        if p.peek() != Some(']') {
            return Err(ScimError::invalid_path(format!(
                "invalid path '{input}': expected ']'"
            )));
        }
        p.bump();
        if p.peek() == Some('.') {
            p.bump();
            let sub = split_attr_path(p.rest())
                .filter(|a| a.urn.is_none() && a.sub.is_none())
                .ok_or_else(|| {
                    ScimError::invalid_path(format!("invalid path '{input}': bad sub-attribute"))
                })?;
            path.sub_after_filter = Some(sub.attr);
            return Ok(path);
        }
    }
    p.skip_ws();
    if !p.at_end() {
        return Err(ScimError::invalid_path(format!(
            "invalid path '{input}': unexpected trailing input"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_path_form() {
        let ok = [
            ("members", "members", None, false, None),
            ("name.familyName", "name", Some("familyName"), false, None),
            (
                r#"members[value eq "2819c223"]"#,
                "members",
                None,
                true,
                None,
            ),
            (
                r#"emails[type eq "work"].value"#,
                "emails",
                None,
                true,
                Some("value"),
            ),
            (
                r#"roles[primary eq "True"].value"#,
                "roles",
                None,
                true,
                Some("value"),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "manager",
                None,
                false,
                None,
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                "manager",
                Some("value"),
                false,
                None,
            ),
            (
                r#"addresses[type eq "work" and primary eq true].streetAddress"#,
                "addresses",
                None,
                true,
                Some("streetAddress"),
            ),
        ];
        for (input, attr, sub, has_filter, sub_after) in ok {
            let p = parse_path(input).unwrap();
            assert_eq!(p.attr.attr, attr, "{input}");
            assert_eq!(p.attr.sub.as_deref(), sub, "{input}");
            assert_eq!(p.filter.is_some(), has_filter, "{input}");
            assert_eq!(p.sub_after_filter.as_deref(), sub_after, "{input}");
        }
    }

    /// A path is held to the filter's limits, and refused as `invalidPath`
    /// naming the limit; the review's 1 MB path among them.
    #[test]
    fn limits_hold_and_are_named() {
        use crate::scim::filter::{MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS};
        let terms = |n: usize| format!("emails[{}]", vec!["type pr"; n].join(" or "));
        let nested = |n: usize| format!("emails[{}a pr{}]", "(".repeat(n), ")".repeat(n));
        let cases: Vec<(String, Option<String>)> = vec![
            (terms(MAX_FILTER_TERMS), None),
            (
                terms(MAX_FILTER_TERMS + 1),
                Some(format!("more than {MAX_FILTER_TERMS} terms")),
            ),
            // The brackets are the first level.
            (nested(MAX_FILTER_DEPTH - 1), None),
            (
                nested(MAX_FILTER_DEPTH),
                Some(format!("more than {MAX_FILTER_DEPTH} levels")),
            ),
            (format!("{}.value", "a".repeat(MAX_FILTER_LEN - 6)), None),
            (
                format!("{}.value", "a".repeat(MAX_FILTER_LEN - 5)),
                Some(format!("longer than {MAX_FILTER_LEN} bytes")),
            ),
            (
                format!("emails[{}]", vec!["a pr"; 120_000].join(" or ")),
                Some(format!("longer than {MAX_FILTER_LEN} bytes")),
            ),
        ];
        for (input, refused) in cases {
            let head: String = input.chars().take(40).collect();
            match (parse_path(&input), refused) {
                (Ok(_), None) => {}
                (Err(e), Some(why)) => {
                    assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidPath));
                    assert!(e.detail.contains(&why), "{head}: {}", e.detail);
                }
                (got, want) => panic!("{head}: {got:?}, wanted {want:?}"),
            }
        }
    }

    /// Multi-byte text anywhere in a path, including right after a value
    /// filter where the sub-attribute is read, is an `invalidPath`.
    #[test]
    fn multi_byte_text_is_refused_not_split() {
        for input in [
            "emails[type eq \"work\"].abcé",
            "emails[type eq \"work\"].é",
            "emails[type eq \"work\"].urné",
            "emails[type eq \"wörk\"].välue",
            "émails",
            "urn:ietf:params:scim:schemas:core:2.0:User:namé",
            "name.givenNamé",
            "emails[typé eq \"work\"]",
        ] {
            let err = parse_path(input).unwrap_err();
            assert_eq!(
                err.scim_type,
                Some(crate::scim::ScimType::InvalidPath),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        for input in [
            "",
            "name.familyName.x",
            "emails[type eq \"work\"",
            "emails[type eq]",
            "emails[type eq \"work\"].",
            "emails[type eq \"work\"].value.x",
            "name.givenName[type eq \"x\"]",
            "emails[type eq \"work\"] trailing",
            "1emails",
        ] {
            let err = parse_path(input).unwrap_err();
            assert_eq!(err.status, 400, "{input}");
        }
    }
}
