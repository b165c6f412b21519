//! The Group resource (RFC 7643 §4.2): normalising writes, planning PATCH
//! as membership changes, rendering. Pure, like the rest of `scim`.
//!
//! Membership is never held in memory as a whole: a PATCH becomes a list of
//! [`MemberChange`]s that the store applies to the rows it names, so adding
//! a member to a group of 100,000 costs one row. One request may name at
//! most `MAX_MEMBERS_PER_REQUEST` members, however many operations carry
//! them.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::{ScimError, ScimType};
use super::filter::{CompValue, CompareOp, Filter};
use super::patch::{PatchOpKind, PatchOperation};
use super::schema;
use super::user::MAX_STRING_LEN;
use super::GROUP_SCHEMA;

/// Most member ids one request may list (a POST or PUT's `members`, or
/// every membership operation of a PATCH together). Past it: 400
/// `tooMany`. Bounds the work one request costs the ingress, the
/// processor and the membership rows it touches; IdPs send membership
/// changes in far smaller batches.
pub const MAX_MEMBERS_PER_REQUEST: usize = 10_000;

fn too_many_members(n: usize) -> ScimError {
    ScimError::bad_request(
        ScimType::TooMany,
        format!("a request may name at most {MAX_MEMBERS_PER_REQUEST} members; this one names {n}"),
    )
}

/// A POST or PUT body, normalised. `members: None` means "not given".
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Option<Vec<Uuid>>,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| {
            k.eq_ignore_ascii_case(name)
                || k.strip_prefix(GROUP_SCHEMA)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn string_attr(name: &str, v: &Value) -> Result<String, ScimError> {
    match v {
        Value::String(s) if s.len() > MAX_STRING_LEN => Err(ScimError::invalid_value(format!(
            "{name} is longer than {MAX_STRING_LEN} bytes"
        ))),
        Value::String(s) if s.contains('\0') => Err(ScimError::invalid_value(format!(
            "{name} contains a NUL character"
        ))),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

fn display_name(v: &Value) -> Result<String, ScimError> {
    let s = string_attr("displayName", v)?;
    if s.trim().is_empty() {
        return Err(ScimError::invalid_value("displayName must not be empty"));
    }
    Ok(s)
}

pub fn normalize_group(body: &Value) -> Result<GroupInput, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a Group must be a JSON object"))?;
    let display_name = match field(obj, "displayName") {
        Some(v) => display_name(v)?,
        None => return Err(ScimError::invalid_value("displayName is required")),
    };
    let external_id = field(obj, "externalId")
        .map(|v| string_attr("externalId", v))
        .transpose()?;
    let members = field(obj, "members").map(parse_member_ids).transpose()?;
    Ok(GroupInput {
        display_name,
        external_id,
        members,
    })
}

/// A group as a PATCH left it, held to what a PUT of it would be: its name
/// and external id pass `normalize_group`'s checks. Its members are not
/// loaded (a PATCH never reads the member list); each request's are
/// bounded when it is planned.
pub fn check_patched_group(display_name: &str, external_id: Option<&str>) -> Result<(), ScimError> {
    let body = json!({"displayName": display_name, "externalId": external_id});
    normalize_group(&body).map(|_| ()).map_err(|e| ScimError {
        detail: format!("the patched group would be invalid: {}", e.detail),
        ..e
    })
}

/// Member ids from `[{"value": id, "$ref": ..., "display": ...}]`, a single
/// such object, or plain id strings. Each must be a user id (a UUID); that
/// it belongs to the tenant is checked against the store.
pub fn parse_member_ids(v: &Value) -> Result<Vec<Uuid>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    if items.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(too_many_members(items.len()));
    }
    let mut ids = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let raw = match item {
            Value::String(s) => s.as_str(),
            Value::Object(o) => match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")) {
                Some((_, Value::String(s))) => s.as_str(),
                _ => return Err(ScimError::invalid_value("each member needs a string value")),
            },
            _ => {
                return Err(ScimError::invalid_value(
                    "each member must be an object with a value",
                ))
            }
        };
        let id = Uuid::parse_str(raw.trim()).map_err(|_| {
            ScimError::invalid_value(format!("member {raw} is not a user of this tenant"))
        })?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One change to a group's membership, applied in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<Uuid>),
    Remove(Vec<Uuid>),
    ReplaceAll(Vec<Uuid>),
    RemoveAll,
}

impl MemberChange {
    /// How many member ids the change names.
    pub fn len(&self) -> usize {
        match self {
            MemberChange::Add(ids) | MemberChange::Remove(ids) | MemberChange::ReplaceAll(ids) => {
                ids.len()
            }
            MemberChange::RemoveAll => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a PATCH does to a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPatch {
    pub display_name: Option<String>,
    /// `Some(None)` unsets it.
    pub external_id: Option<Option<String>>,
    pub members: Vec<MemberChange>,
}

impl GroupPatch {
    /// Every user id the patch adds (to check they exist in the tenant).
    pub fn added_ids(&self) -> Vec<Uuid> {
        self.members
            .iter()
            .flat_map(|c| match c {
                MemberChange::Add(ids) | MemberChange::ReplaceAll(ids) => ids.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
}

/// Turn PATCH operations into a [`GroupPatch`]. Handles Okta's path-less
/// rename (`{"id", "displayName"}`), `members[value eq "id"]` removal,
/// Entra's `path: "members"` removal with a value list, and full replace.
pub fn plan_group_patch(ops: &[PatchOperation]) -> Result<GroupPatch, ScimError> {
    let mut plan = GroupPatch::default();
    let mut named = 0;
    for op in ops {
        let before = plan.members.len();
        plan_operation(&mut plan, op)?;
        named += plan
            .members
            .iter()
            .skip(before)
            .map(MemberChange::len)
            .sum::<usize>();
        if named > MAX_MEMBERS_PER_REQUEST {
            return Err(too_many_members(named));
        }
    }
    Ok(plan)
}

fn plan_operation(plan: &mut GroupPatch, op: &PatchOperation) -> Result<(), ScimError> {
    match (&op.path, &op.raw_path) {
        (None, None) => {
            let Some(Value::Object(obj)) = &op.value else {
                return Err(ScimError::invalid_value(
                    "add and replace without a path need an object value",
                ));
            };
            for (key, v) in obj {
                plan_attribute(plan, op.op, key, None, Some(v))?;
            }
        }
        (None, Some(urn)) => {
            return Err(ScimError::invalid_path(format!(
                "{urn} is not a Group attribute"
            )));
        }
        (Some(path), _) => {
            if let Some(urn) = &path.attr.urn {
                if !urn.eq_ignore_ascii_case(GROUP_SCHEMA) {
                    return Err(ScimError::invalid_path(format!("unknown schema {urn}")));
                }
            }
            if path.sub().is_some() && !path.attr.attr.eq_ignore_ascii_case("members") {
                return Err(ScimError::invalid_path(format!(
                    "{} has no sub-attributes",
                    path.attr.attr
                )));
            }
            plan_attribute(
                plan,
                op.op,
                &path.attr.attr,
                path.filter.as_ref(),
                op.value.as_ref(),
            )?;
        }
    }
    Ok(())
}

fn plan_attribute(
    plan: &mut GroupPatch,
    op: PatchOpKind,
    attr: &str,
    filter: Option<&Filter>,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr_lower = attr.to_ascii_lowercase();
    let attr_lower = attr_lower
        .strip_prefix(&format!("{}:", GROUP_SCHEMA.to_ascii_lowercase()))
        .map(str::to_string)
        .unwrap_or(attr_lower);
    match (attr_lower.as_str(), op) {
        ("id" | "schemas" | "meta", _) if filter.is_none() => {
            // Okta's rename carries the id; read-only attributes are ignored
            // in a value object.
            Ok(())
        }
        ("displayname", PatchOpKind::Remove) => Err(ScimError::mutability(
            "displayName is required and cannot be removed",
        )),
        ("displayname", _) => {
            let v = value.ok_or_else(|| ScimError::invalid_value("displayName needs a value"))?;
            plan.display_name = Some(display_name(v)?);
            Ok(())
        }
        ("externalid", PatchOpKind::Remove) => {
            plan.external_id = Some(None);
            Ok(())
        }
        ("externalid", _) => {
            plan.external_id = Some(match value {
                None | Some(Value::Null) => None,
                Some(v) => Some(string_attr("externalId", v)?),
            });
            Ok(())
        }
        ("members", op) => {
            let change = match (op, filter) {
                (PatchOpKind::Remove, Some(f)) => MemberChange::Remove(ids_in_filter(f)?),
                (PatchOpKind::Remove, None) => match value {
                    Some(v) if !v.is_null() => MemberChange::Remove(parse_member_ids(v)?),
                    _ => MemberChange::RemoveAll,
                },
                (_, Some(_)) => {
                    return Err(ScimError::invalid_path(
                        "members with a value filter can only be removed",
                    ))
                }
                (PatchOpKind::Add, None) => {
                    MemberChange::Add(parse_member_ids(value.unwrap_or(&Value::Null))?)
                }
                (PatchOpKind::Replace, None) => {
                    MemberChange::ReplaceAll(parse_member_ids(value.unwrap_or(&Value::Null))?)
                }
            };
            plan.members.push(change);
            Ok(())
        }
        _ if schema::is_user_urn(attr) => Err(ScimError::invalid_path(format!(
            "{attr} is not a Group attribute"
        ))),
        _ => Err(ScimError::invalid_path(format!("unknown attribute {attr}"))),
    }
}

/// The member ids a `value eq "id"` filter (or an `or` of them) names.
fn ids_in_filter(f: &Filter) -> Result<Vec<Uuid>, ScimError> {
    match f {
        Filter::Compare(path, CompareOp::Eq, CompValue::String(s))
            if path.attr.eq_ignore_ascii_case("value") && path.sub.is_none() =>
        {
            // An id that is not a UUID names no member: removing it is a no-op.
            Ok(Uuid::parse_str(s.trim())
                .map(|id| vec![id])
                .unwrap_or_default())
        }
        Filter::Or(any) => {
            let mut ids = Vec::new();
            for f in any {
                ids.extend(ids_in_filter(f)?);
            }
            Ok(ids)
        }
        _ => Err(ScimError::invalid_filter(
            "members can be selected by value eq \"id\" (or several joined by or)",
        )),
    }
}

/// A member as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub id: Uuid,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
    /// `None` when members were not asked for (`excludedAttributes=members`).
    pub members: Option<Vec<MemberView>>,
}

impl GroupView {
    pub fn etag(&self) -> String {
        super::user::etag(self.version)
    }

    pub fn render(&self, base_url: &str) -> Value {
        let mut out = Map::new();
        out.insert("schemas".into(), json!([GROUP_SCHEMA]));
        out.insert("id".into(), Value::String(self.id.to_string()));
        if let Some(e) = &self.external_id {
            out.insert("externalId".into(), Value::String(e.clone()));
        }
        out.insert(
            "displayName".into(),
            Value::String(self.display_name.clone()),
        );
        if let Some(members) = &self.members {
            let rendered: Vec<Value> = members
                .iter()
                .map(|m| {
                    json!({
                        "value": m.id.to_string(),
                        "$ref": format!("{base_url}/Users/{}", m.id),
                        "type": "User",
                    })
                })
                .collect();
            out.insert("members".into(), Value::Array(rendered));
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": self.created.to_rfc3339_opts(SecondsFormat::Millis, true),
                "lastModified": self.last_modified.to_rfc3339_opts(SecondsFormat::Millis, true),
                "location": format!("{base_url}/Groups/{}", self.id),
                "version": self.etag(),
            }),
        );
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_patch_request;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn plan(ops: Value) -> Result<GroupPatch, ScimError> {
        plan_group_patch(&parse_patch_request(&json!({ "Operations": ops }))?)
    }

    #[test]
    fn normalises_group_bodies() {
        let okta = json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": []});
        assert_eq!(
            normalize_group(&okta).unwrap(),
            GroupInput {
                display_name: "Eng".into(),
                external_id: None,
                members: Some(vec![])
            }
        );
        let entra = json!({"schemas": [GROUP_SCHEMA, "urn:misspelled:Group"], "externalId": "e1", "displayName": "Ops",
                           "members": [{"value": id(1).to_string(), "$ref": null}, id(2).to_string(), {"value": id(1).to_string()}]});
        assert_eq!(
            normalize_group(&entra).unwrap().members,
            Some(vec![id(1), id(2)])
        );
        for bad in [
            json!({}),
            json!({"displayName": ""}),
            json!({"displayName": 3}),
            json!({"displayName": "x", "members": [{"value": "not-a-user"}]}),
            json!([]),
        ] {
            assert_eq!(normalize_group(&bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn plans_every_membership_form_idps_send() {
        let a = id(1).to_string();
        let b = id(2).to_string();
        let table: Vec<(&str, Value, GroupPatch)> = vec![
            (
                "okta rename, path-less with id",
                json!([{"op": "replace", "value": {"id": "g-1", "displayName": "New"}}]),
                GroupPatch {
                    display_name: Some("New".into()),
                    ..Default::default()
                },
            ),
            (
                "okta remove by filter and add in one request",
                json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")},
                       {"op": "add", "path": "members", "value": [{"value": b, "display": "B"}]}]),
                GroupPatch {
                    members: vec![
                        MemberChange::Remove(vec![id(1)]),
                        MemberChange::Add(vec![id(2)]),
                    ],
                    ..Default::default()
                },
            ),
            (
                "okta full replace",
                json!([{"op": "replace", "path": "members", "value": [{"value": a}]}]),
                GroupPatch {
                    members: vec![MemberChange::ReplaceAll(vec![id(1)])],
                    ..Default::default()
                },
            ),
            (
                "entra removal with a value list, capitalised op",
                json!([{"op": "Remove", "path": "members", "value": [{"value": a}, {"value": b}]}]),
                GroupPatch {
                    members: vec![MemberChange::Remove(vec![id(1), id(2)])],
                    ..Default::default()
                },
            ),
            (
                "entra add with $ref null",
                json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": a}]}]),
                GroupPatch {
                    members: vec![MemberChange::Add(vec![id(1)])],
                    ..Default::default()
                },
            ),
            (
                "remove all members",
                json!([{"op": "remove", "path": "members"}]),
                GroupPatch {
                    members: vec![MemberChange::RemoveAll],
                    ..Default::default()
                },
            ),
            (
                "externalId set and unset",
                json!([{"op": "replace", "path": "externalId", "value": "x"}, {"op": "remove", "path": "externalId"}]),
                GroupPatch {
                    external_id: Some(None),
                    ..Default::default()
                },
            ),
        ];
        for (name, ops, want) in table {
            assert_eq!(plan(ops).unwrap(), want, "{name}");
        }
    }

    fn ids(range: std::ops::Range<u128>) -> Vec<Value> {
        range.map(|n| json!({"value": id(n).to_string()})).collect()
    }

    /// Members per request are capped, in a POST/PUT body and across a
    /// PATCH's operations together; duplicates are dropped in order.
    #[test]
    fn members_per_request_are_capped_and_deduplicated() {
        // The cap counts what is listed, duplicates too: it bounds work.
        let max = MAX_MEMBERS_PER_REQUEST as u128;
        let mut listed = ids(0..max - 10);
        listed.extend(ids(0..10));
        let parsed = parse_member_ids(&json!(listed)).unwrap();
        assert_eq!(parsed.len(), MAX_MEMBERS_PER_REQUEST - 10);
        assert_eq!(parsed.first(), Some(&id(0)));
        assert_eq!(parsed.last(), Some(&id(max - 11)));

        let too_many = |e: ScimError| {
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::TooMany)));
            assert!(
                e.detail.contains(&MAX_MEMBERS_PER_REQUEST.to_string()),
                "{}",
                e.detail
            );
        };
        // The review's 100,000 ids, and one past the cap.
        for n in [max + 1, 100_000] {
            too_many(parse_member_ids(&json!(ids(0..n))).unwrap_err());
            too_many(
                normalize_group(&json!({"displayName": "G", "members": ids(0..n)})).unwrap_err(),
            );
        }
        let half = max / 2 + 1;
        too_many(
            plan(
                json!([{"op": "add", "path": "members", "value": ids(0..half)},
                        {"op": "remove", "path": "members", "value": ids(half..2 * half)}]),
            )
            .unwrap_err(),
        );
        assert!(plan(
            json!([{"op": "add", "path": "members", "value": ids(0..max / 2)},
                            {"op": "add", "path": "members", "value": ids(0..max / 2)}])
        )
        .is_ok());
    }

    /// A patched group passes what a PUT of it would.
    #[test]
    fn a_patched_group_is_held_to_a_put() {
        assert!(check_patched_group("Eng", Some("e-1")).is_ok());
        assert!(check_patched_group("Eng", None).is_ok());
        for (name, external) in [
            ("", None),
            ("x", Some("a\u{0}b")),
            ("y", Some("z".repeat(MAX_STRING_LEN + 1).as_str())),
        ] {
            let err = check_patched_group(name, external).unwrap_err();
            assert_eq!(
                err.scim_type,
                Some(ScimType::InvalidValue),
                "{name:?} {external:?}"
            );
            assert!(
                err.detail.starts_with("the patched group"),
                "{}",
                err.detail
            );
        }
    }

    #[test]
    fn rejects_what_cannot_apply() {
        let table: Vec<(Value, &str)> = vec![
            (
                json!([{"op": "remove", "path": "displayName"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "displayName", "value": ""}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "members", "value": [{"value": "nope"}]}]),
                "invalidValue",
            ),
            (
                json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
                "invalidFilter",
            ),
            (
                json!([{"op": "replace", "path": "members[value eq \"x\"]", "value": {}}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "owner", "value": "x"}]),
                "invalidPath",
            ),
        ];
        for (ops, scim_type) in table {
            let err = plan(ops.clone()).unwrap_err();
            assert_eq!(err.scim_type.map(|t| t.as_str()), Some(scim_type), "{ops}");
        }
    }
}
