//! PATCH paths (RFC 7644 §3.5.2): `attrPath [ "[" valFilter "]" ] ["." subAttr]`.

use super::error::ScimError;
use super::filter::{split_attr_path, AttrPath, Filter, Parser};

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
            let rest = input.get(p_pos(&p, input)..).unwrap_or("");
            let sub = split_attr_path(rest)
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

fn p_pos(p: &Parser<'_>, input: &str) -> usize {
    // Parser hides its position; recover it from what is left.
    input.len() - p.remaining_len()
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
