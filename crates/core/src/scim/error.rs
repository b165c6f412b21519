//! The SCIM Error (RFC 7644 §3.12). Every rejection in scimflow, from a bad
//! token to a role rule, ends up as one of these; the ingress turns it into
//! an HTTP response in exactly one place.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `scimType` values defined by RFC 7644 Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

/// A SCIM error: an HTTP status, an optional `scimType` and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        // Details may quote input; a NUL cannot be stored (PostgreSQL) nor
        // safely logged.
        let detail = if detail.contains('\0') {
            detail.replace('\0', "\u{FFFD}")
        } else {
            detail
        };
        ScimError {
            status,
            scim_type,
            detail,
        }
    }
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, None, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, None, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, None, detail)
    }
    /// More than a limit allows in one request (400 `tooMany`).
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::TooMany, detail)
    }
    /// A body or a command too large to take.
    pub fn payload_too_large(scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self::new(413, scim_type, detail)
    }
    /// A tenant or a client over its rate; `Retry-After` says how long.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(429, None, detail)
    }
    /// An endpoint the service does not offer (`/Me`).
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, None, detail)
    }
    /// A /Bulk operation whose `bulkId` references cannot be resolved
    /// (RFC 7644 §3.7.2: 409 `invalidValue`).
    pub fn unresolved_reference(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::InvalidValue), detail)
    }
    /// A command held as a dead letter (or discarded from one) by an
    /// operator.
    pub fn dead_lettered(dead_letter_id: i64, discarded: bool) -> Self {
        let what = if discarded {
            "was discarded by an operator"
        } else {
            "is held for an operator"
        };
        Self::internal(format!(
            "the request could not be applied and {what} (dead letter {dead_letter_id})"
        ))
    }
    /// The same status with a shorter detail and no `scimType`.
    pub fn reduced(&self, detail: impl Into<String>) -> Self {
        Self::new(self.status, None, detail)
    }

    /// The error a stored body says (`to_body`'s form), with the status
    /// stored beside it; what cannot be read is left out.
    pub fn from_body(status: u16, body: Option<&Value>) -> Self {
        let scim_type = body
            .and_then(|b| b.get("scimType"))
            .and_then(|t| serde_json::from_value(t.clone()).ok());
        let detail = body
            .and_then(|b| b.get("detail"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Self::new(status, scim_type, detail)
    }

    /// The response body. `status` is a string, as RFC 7644 and both IdPs
    /// expect.
    pub fn to_body(&self) -> Value {
        let mut body = json!({
            "schemas": [super::ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

/// The product rule a refusal's detail cites (`R8` in "... (rule R8)"),
/// for the people reading the log. The rules end their details with the
/// citation, and a detail may quote the request, so the last citation
/// closed by `)` is the rule's own.
pub fn cited_rule(detail: &str) -> Option<&str> {
    detail
        .match_indices("rule ")
        .filter_map(|(at, marker)| {
            let rest = detail.get(at + marker.len()..)?;
            let mut chars = rest.char_indices();
            let (_, family) = chars.next()?;
            if !matches!(family, 'R' | 'I' | 'L' | 'T' | 'P') {
                return None;
            }
            let end = chars
                .find(|(_, c)| !c.is_ascii_digit())
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            let id = rest.get(..end)?;
            (id.len() > 1 && rest.get(end..)?.starts_with(')')).then_some(id)
        })
        .last()
}

#[cfg(test)]
mod cited_rule_tests {
    use super::cited_rule;
    use proptest::prelude::*;

    #[test]
    fn the_last_closed_citation_is_the_rule() {
        let cases = [
            (
                "conflicting primary roles a, b: mark exactly one with primary=true (rule R8)",
                Some("R8"),
            ),
            (
                "a user with this primary work email already exists (id 1; rule I3)",
                Some("I3"),
            ),
            (
                "userName 'rule R1)' is already taken by user x (rule I4)",
                Some("I4"),
            ),
            ("userName is required", None),
            ("see rule R", None),
            ("(rule X9)", None),
            ("(rule R12", None),
            ("(rule R12)", Some("R12")),
            ("", None),
            ("rule é)", None),
        ];
        for (detail, want) in cases {
            assert_eq!(cited_rule(detail), want, "{detail:?}");
        }
    }

    proptest! {
        #[test]
        fn any_detail_is_read_without_panicking(detail in "\\PC{0,200}(rule [RILTP][0-9]{0,3}\\)?)?\\PC{0,20}") {
            if let Some(rule) = cited_rule(&detail) {
                let citation = format!("rule {rule})");
                prop_assert!(detail.contains(&citation));
            }
        }
    }
}
