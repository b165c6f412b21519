//! Identity rules I1/I2: a user is identified by its primary work email;
//! and what a create does when that email is already held (I3, L5).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::scim::ScimError;

/// The identity email of a user document (rule I1), lower-cased (I2).
///
/// Order: type "work" and primary; else primary; else the first "work";
/// else the first email; else userName when it is an email address.
pub fn identity_email(doc: &Map<String, Value>) -> Result<String, ScimError> {
    let emails: Vec<&Map<String, Value>> = doc
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let value = |e: &Map<String, Value>| {
        e.get("value")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let is_work = |e: &&Map<String, Value>| {
        e.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("work"))
    };
    let is_primary = |e: &&Map<String, Value>| e.get("primary") == Some(&Value::Bool(true));
    let chosen = emails
        .iter()
        .filter(|e| is_work(e) && is_primary(e))
        .find_map(|e| value(e))
        .or_else(|| {
            emails
                .iter()
                .filter(|e| is_primary(e))
                .find_map(|e| value(e))
        })
        .or_else(|| emails.iter().filter(|e| is_work(e)).find_map(|e| value(e)))
        .or_else(|| emails.iter().find_map(|e| value(e)))
        .or_else(|| {
            doc.get("userName")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|u| looks_like_email(u))
                .map(str::to_string)
        });
    match chosen {
        Some(email) if looks_like_email(&email) => Ok(email.to_lowercase()),
        Some(email) => Err(ScimError::invalid_value(format!(
            "the primary work email '{email}' is not an email address (rule I1)"
        ))),
        None => Err(ScimError::invalid_value(
            "a user needs an email address (a work email, or a userName that is an email) to be identified (rule I1)",
        )),
    }
}

/// A deliberately loose check: one '@' with something on both sides and no
/// whitespace. Deliverability is the IdP's business.
pub fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The user that already holds a create's identity email, as far as the
/// decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailHolder {
    pub id: Uuid,
    /// Deleted (kept with `deleted_at`, L5).
    pub deleted: bool,
    /// Provisioned through SCIM, as opposed to by hand (the CLI).
    pub scim_managed: bool,
}

/// What a create does, given who holds its identity email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateAs {
    /// Nobody holds it: a new user with the id the ingress minted.
    New,
    /// I3: a manually provisioned user takes the IdP's data and becomes
    /// SCIM-managed, keeping its id.
    Link(Uuid),
    /// L5: a deleted user comes back, keeping its id and history.
    Return(Uuid),
}

impl CreateAs {
    /// The history row's name for the change.
    pub fn change(self) -> &'static str {
        match self {
            CreateAs::New => "created",
            CreateAs::Link(_) => "linked",
            CreateAs::Return(_) => "restored",
        }
    }
}

/// I3 and L5: a create whose email a live SCIM-managed user holds is a
/// 409 naming that user; one a deleted user holds brings it back; one a
/// live manual user holds links to it.
pub fn create_as(holder: Option<EmailHolder>) -> Result<CreateAs, ScimError> {
    match holder {
        None => Ok(CreateAs::New),
        Some(h) if h.deleted => Ok(CreateAs::Return(h.id)),
        Some(h) if h.scim_managed => Err(ScimError::uniqueness(format!(
            "a user with this primary work email already exists (id {}; rule I3)",
            h.id
        ))),
        Some(h) => Ok(CreateAs::Link(h.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn i3_and_l5_decide_a_create_by_who_holds_its_email() {
        let id = Uuid::from_u128(7);
        let holder = |deleted, scim_managed| {
            Some(EmailHolder {
                id,
                deleted,
                scim_managed,
            })
        };
        // (holder, expected decision or the 409's detail fragment)
        let cases: [(Option<EmailHolder>, Result<CreateAs, &str>); 5] = [
            (None, Ok(CreateAs::New)),
            (holder(false, false), Ok(CreateAs::Link(id))),
            (holder(true, true), Ok(CreateAs::Return(id))),
            (holder(true, false), Ok(CreateAs::Return(id))),
            (
                holder(false, true),
                Err("(id 00000000-0000-0000-0000-000000000007; rule I3)"),
            ),
        ];
        for (holder, want) in cases {
            match (create_as(holder), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{holder:?}"),
                (Err(e), Err(detail)) => {
                    assert_eq!(
                        (e.status, e.scim_type),
                        (409, Some(crate::ScimType::Uniqueness))
                    );
                    assert!(e.detail.contains(detail), "{}", e.detail);
                }
                (got, want) => panic!("{holder:?}: got {got:?}, want {want:?}"),
            }
        }
        let changes = [
            (CreateAs::New, "created"),
            (CreateAs::Link(id), "linked"),
            (CreateAs::Return(id), "restored"),
        ];
        for (decision, change) in changes {
            assert_eq!(decision.change(), change);
        }
    }

    #[test]
    fn i1_picks_the_identity_email_in_rule_order() {
        let cases: Vec<(Value, Result<&str, ()>)> = vec![
            (
                json!({"emails": [
                    {"value": "home@x.com", "type": "home", "primary": true},
                    {"value": "Work2@X.com", "type": "work"},
                    {"value": "work1@x.com", "type": "work", "primary": true}]}),
                Ok("work1@x.com"),
            ),
            (
                json!({"emails": [
                    {"value": "w@x.com", "type": "work"},
                    {"value": "p@x.com", "type": "home", "primary": true}]}),
                Ok("p@x.com"),
            ),
            (
                json!({"emails": [
                    {"value": "h@x.com", "type": "home"},
                    {"value": "w@x.com", "type": "Work"}]}),
                Ok("w@x.com"),
            ),
            (
                json!({"emails": [{"value": "only@x.com"}]}),
                Ok("only@x.com"),
            ),
            (
                json!({"userName": "User@Example.com"}),
                Ok("user@example.com"),
            ),
            (json!({"userName": "bjensen"}), Err(())),
            (json!({"userName": "bjensen", "emails": []}), Err(())),
            (
                json!({"emails": [{"value": "not-an-email", "type": "work"}]}),
                Err(()),
            ),
            (
                json!({"emails": [{"type": "work"}], "userName": "u@x.com"}),
                Ok("u@x.com"),
            ),
        ];
        for (doc, want) in cases {
            let got = identity_email(doc.as_object().unwrap());
            match want {
                Ok(e) => assert_eq!(got.as_deref(), Ok(e), "{doc}"),
                Err(()) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.status, 400, "{doc}");
                    assert!(err.detail.contains("I1"));
                }
            }
        }
    }
}
