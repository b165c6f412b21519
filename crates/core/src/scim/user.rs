//! The User resource: normalising what an IdP sends into one canonical
//! document, and rendering what we store back into SCIM.
//!
//! Canonical means: attribute names in the schema's case, `null` and empty
//! values removed (they mean "unset"), booleans sent as strings made
//! booleans, a single value of a multi-valued attribute made a list, the
//! manager given as a plain id made an object, and attributes outside the
//! schema (I5), read-only ones and `password` (never stored) dropped.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::ScimError;
use super::schema::{self, AttrDef, AttrType, Mutability, ENTERPRISE_ATTRS, USER_ATTRS};
use super::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::rules::roles::Roles;

/// Longest string attribute value accepted.
pub const MAX_STRING_LEN: usize = 2048;
/// Most values accepted in one multi-valued attribute.
pub const MAX_MULTI_VALUES: usize = 100;

/// A User write, normalised. `attrs` holds every stored attribute except
/// `active` and `roles`, which the rules own and which live in columns.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInput {
    pub attrs: Map<String, Value>,
    pub active: Option<bool>,
    /// The raw `roles` value, for `rules::roles::parse_role_values`.
    pub roles: Option<Value>,
}

/// Normalise a POST or PUT body.
pub fn normalize_user(body: &Value) -> Result<UserInput, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a User must be a JSON object"))?;
    let mut doc = normalize_document(obj)?;
    let active = match doc.remove("active") {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    };
    let roles = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("roles"))
        .map(|(_, v)| v.clone());
    doc.remove("roles");
    // Stored as it is compared (unique per tenant, case-insensitively):
    // without surrounding white space, so the document and the indexed
    // column never disagree.
    match doc.get_mut("userName") {
        Some(Value::String(u)) if !u.trim().is_empty() => {
            if u.trim().len() != u.len() {
                *u = u.trim().to_string();
            }
        }
        _ => return Err(ScimError::invalid_value("userName is required")),
    }
    let size = encoded_len(&doc);
    if size > MAX_USER_BYTES {
        return Err(ScimError::invalid_value(format!(
            "the user would take {size} bytes stored, more than the {MAX_USER_BYTES} a user may hold"
        )));
    }
    Ok(UserInput {
        attrs: doc,
        active,
        roles,
    })
}

/// The most a stored User document may take, encoded. Every write renders
/// the resource several times over (the answer, the change event, the
/// dedup record), and a batch holds hundreds of writes: this keeps what
/// one batch can hold in memory bounded whatever its commands touch. Real
/// users take a few KiB.
pub const MAX_USER_BYTES: usize = 64 * 1024;

/// The length of `doc` as JSON, counted without building the text.
fn encoded_len(doc: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a map of JSON values always encodes.
    let _ = serde_json::to_writer(&mut count, doc);
    count.0
}

/// Normalise a whole User document (core attributes plus extensions).
/// `roles` is kept in its raw shape here: only the roles rules read it.
pub fn normalize_document(obj: &Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in obj {
        if key.len() > 4 && schema::has_urn_prefix(key) {
            if schema::is_enterprise_urn(key) {
                if let Some(ext) = value.as_object() {
                    let ext = normalize_attrs(ext, ENTERPRISE_ATTRS)?;
                    if !ext.is_empty() {
                        out.insert(ENTERPRISE_USER_SCHEMA.to_string(), Value::Object(ext));
                    }
                } else if !value.is_null() {
                    return Err(ScimError::invalid_value(
                        "the enterprise extension must be an object",
                    ));
                }
            } else if schema::is_user_urn(key) {
                if let Some(core) = value.as_object() {
                    out.extend(normalize_attrs(core, USER_ATTRS)?);
                }
            }
            // Other extensions are not part of the contract (I5).
            continue;
        }
        if key.eq_ignore_ascii_case("roles") {
            if !value.is_null() {
                out.insert("roles".into(), value.clone());
            }
            continue;
        }
        if let Some(def) = schema::find(USER_ATTRS, key) {
            if let Some(v) = normalize_top(def, value)? {
                out.insert(def.name.to_string(), v);
            }
        }
    }
    Ok(out)
}

fn normalize_top(def: &AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    match def.mutability {
        Mutability::ReadOnly | Mutability::WriteOnly => Ok(None),
        _ => normalize_value(def, value),
    }
}

fn normalize_attrs(
    obj: &Map<String, Value>,
    defs: &[AttrDef],
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in obj {
        if let Some(def) = schema::find(defs, key) {
            if let Some(v) = normalize_top(def, value)? {
                out.insert(def.name.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Normalise one attribute's value; `None` means "unset".
pub fn normalize_value(def: &AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        if items.len() > MAX_MULTI_VALUES {
            return Err(ScimError::invalid_value(format!(
                "{} has more than {MAX_MULTI_VALUES} values",
                def.name
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let item = match item {
                // A bare value of a multi-valued attribute is its `value`.
                Value::String(_) => json!({ "value": item }),
                other => other.clone(),
            };
            if let Some(v) = normalize_single(def, &item)? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    normalize_single(def, value)
}

fn normalize_single(def: &AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    match (def.ty, value) {
        (_, Value::Null) => Ok(None),
        (AttrType::Complex, Value::Object(obj)) => {
            let inner = normalize_attrs(obj, def.subs)?;
            Ok((!inner.is_empty()).then_some(Value::Object(inner)))
        }
        // The manager may come as a plain id, or as a one-element list.
        (AttrType::Complex, Value::String(s)) if def.name == "manager" => {
            if s.is_empty() {
                return Ok(None);
            }
            normalize_single(def, &json!({ "value": s }))
        }
        (AttrType::Complex, Value::Array(items)) if def.name == "manager" => match items.first() {
            Some(first) => normalize_single(def, first),
            None => Ok(None),
        },
        (AttrType::Boolean, Value::Bool(_)) => Ok(Some(value.clone())),
        (AttrType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            _ => Err(ScimError::invalid_value(format!(
                "{} must be a boolean",
                def.name
            ))),
        },
        (
            AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary,
            Value::String(s),
        ) => {
            if s.contains('\0') {
                return Err(ScimError::invalid_value(format!(
                    "{} contains a NUL character",
                    def.name
                )));
            }
            if s.len() > MAX_STRING_LEN {
                return Err(ScimError::invalid_value(format!(
                    "{} is longer than {MAX_STRING_LEN} bytes",
                    def.name
                )));
            }
            Ok(Some(value.clone()))
        }
        _ => Err(ScimError::invalid_value(format!(
            "{} has the wrong type: {}",
            def.name,
            type_name(value)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A stored user, as the renderer needs it.
#[derive(Debug, Clone)]
pub struct UserView {
    pub id: Uuid,
    pub attrs: Map<String, Value>,
    pub active: bool,
    pub roles: Roles,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
    /// The groups the user is a direct member of: (id, display name).
    pub groups: Vec<(Uuid, String)>,
}

impl UserView {
    /// The weak ETag of this version (RFC 7644 §3.14).
    pub fn etag(&self) -> String {
        etag(self.version)
    }

    /// The document PATCH operates on: every attribute, `active` and the
    /// applied roles, without server-owned `id`/`meta`/`schemas`.
    pub fn patchable_document(&self) -> Map<String, Value> {
        let mut doc = self.attrs.clone();
        doc.insert("active".into(), Value::Bool(self.active));
        doc
    }

    /// The SCIM representation (R11: roles as applied).
    pub fn render(&self, base_url: &str) -> Value {
        let mut schemas = vec![Value::String(USER_SCHEMA.into())];
        if self.attrs.contains_key(ENTERPRISE_USER_SCHEMA) {
            schemas.push(Value::String(ENTERPRISE_USER_SCHEMA.into()));
        }
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), Value::String(self.id.to_string()));
        for (k, v) in &self.attrs {
            out.insert(k.clone(), v.clone());
        }
        out.insert("active".into(), Value::Bool(self.active));
        out.insert("roles".into(), self.roles.to_scim());
        if !self.groups.is_empty() {
            let groups: Vec<Value> = self
                .groups
                .iter()
                .map(|(id, name)| {
                    json!({"value": id.to_string(), "$ref": format!("{base_url}/Groups/{id}"), "display": name, "type": "direct"})
                })
                .collect();
            out.insert("groups".into(), Value::Array(groups));
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": self.created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "lastModified": self.last_modified.to_rfc3339_opts(SecondsFormat::Millis, true),
                "location": format!("{base_url}/Users/{}", self.id),
                "version": self.etag(),
            }),
        );
        Value::Object(out)
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_what_idps_send() {
        let entra = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "externalId": "abc",
            "UserName": "Test_User@contoso.com",
            "active": "False",
            "displayName": "Test",
            "title": null,
            "password": "secret",
            "id": "client-chosen",
            "meta": {"resourceType": "User"},
            "emails": [{"primary": "True", "type": "work", "value": "t@contoso.com"}],
            "name": {"givenName": "T", "familyName": null},
            "roles": [],
            "unknownThing": 1,
            "urn:example:other": {"x": 1},
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7", "Manager": "mgr-id"}
        });
        let got = normalize_user(&entra).unwrap();
        assert_eq!(got.active, Some(false));
        assert_eq!(got.roles, Some(json!([])));
        assert_eq!(
            Value::Object(got.attrs),
            json!({
                "externalId": "abc",
                "userName": "Test_User@contoso.com",
                "displayName": "Test",
                "emails": [{"primary": true, "type": "work", "value": "t@contoso.com"}],
                "name": {"givenName": "T"},
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7", "manager": {"value": "mgr-id"}}
            })
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        let bad = [
            json!([]),
            json!({"emails": [{"value": "a@b.c"}]}),
            json!({"userName": ""}),
            json!({"userName": 5}),
            json!({"userName": "u", "active": "maybe"}),
            json!({"userName": "u", "name": "flat"}),
            json!({"userName": "u", "emails": [{"value": 3}]}),
            json!({"userName": "x".repeat(MAX_STRING_LEN + 1)}),
            json!({"userName": "nul\u{0}@x.com"}),
            json!({"userName": "m@x.com", ENTERPRISE_USER_SCHEMA: {"manager": "nul\u{0}"}}),
        ];
        for body in bad {
            let err = normalize_user(&body).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
        }
    }

    /// A stored user is bounded in size, whatever route it takes: at the
    /// bound it is accepted, one value past it refused with the sizes.
    #[test]
    fn a_user_is_bounded_in_size() {
        let with_phones = |n: usize, len: usize| {
            let phones: Vec<Value> = (0..n)
                .map(|i| json!({"value": format!("{i:04}{}", "1".repeat(len))}))
                .collect();
            json!({"userName": "big@x.example", "phoneNumbers": phones})
        };
        let fits = normalize_user(&with_phones(30, 1000)).expect("about 31 KiB");
        assert!(encoded_len(&fits.attrs) <= MAX_USER_BYTES);
        let err = normalize_user(&with_phones(100, 2000)).expect_err("about 200 KiB");
        assert_eq!(err.status, 400);
        assert!(err.detail.contains("more than the 65536"), "{}", err.detail);
        assert_eq!(
            encoded_len(&fits.attrs),
            serde_json::to_vec(&fits.attrs).expect("encodes").len()
        );
    }

    /// The stored userName is the one uniqueness compares: surrounding
    /// white space of any kind goes, inner text (marks included) stays.
    #[test]
    fn user_name_is_stored_without_surrounding_white_space() {
        let cases = [
            ("ada@x.example", "ada@x.example"),
            ("  ada@x.example\r\n", "ada@x.example"),
            ("\u{3000}\u{a0}ada\u{2003}", "ada"),
            ("a d\u{200f}a\t", "a d\u{200f}a"),
        ];
        for (sent, stored) in cases {
            let got = normalize_user(&json!({"userName": sent})).expect("valid");
            assert_eq!(got.attrs["userName"], json!(stored), "{sent:?}");
        }
        for blank in ["", " ", "\u{3000}\r\n"] {
            assert!(
                normalize_user(&json!({"userName": blank})).is_err(),
                "{blank:?}"
            );
        }
    }

    /// Keys are compared by characters: multi-byte text where a URN prefix
    /// is looked for is an unknown attribute, dropped (I5), not a panic.
    #[test]
    fn multi_byte_keys_are_unknown_attributes() {
        let body = json!({
            "userName": "u@x.com",
            "abcé": 1, "urné": 2, "ürn:x": 3, "urn\u{301}:a": 4, "😀😀": 5, "é": 6,
        });
        let got = normalize_user(&body).unwrap();
        assert_eq!(Value::Object(got.attrs), json!({"userName": "u@x.com"}));
    }
}
