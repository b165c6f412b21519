//! PATCH (RFC 7644 §3.5.2) applied to a User document, purely.
//!
//! `roles` is not patched as data: the roles rules (R10) decide what a
//! roles operation means, so operations on roles come out as
//! [`RolesEffect`]s for `rules::roles::apply_role_effects`.
//!
//! A PATCH may not store what a PUT could not: every path (given or a
//! path-less key) is parsed, under the filter's limits, when the request
//! is parsed; [`check_user_patch`] is what the ingress can check of the
//! values without the stored user; and [`patched_user`] holds the result
//! to a PUT's normalisation before the processor writes it.

use serde_json::{json, Map, Value};

use super::error::{ScimError, ScimType};
use super::filter::{self, AttrPath, CompValue, CompareOp, Filter};
use super::path::{parse_path, PatchPath};
use super::schema::{self, AttrDef, AttrType, Mutability, ENTERPRISE_ATTRS, USER_ATTRS};
use super::user::{
    normalize_document, normalize_user, normalize_value, UserInput, MAX_MULTI_VALUES,
};
use super::ENTERPRISE_USER_SCHEMA;
use crate::rules::roles::{parse_role_values, RoleValue};

/// Most operations accepted in one PATCH request.
pub const MAX_PATCH_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub raw_path: Option<String>,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// What a PATCH asks of the user's roles, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RolesEffect {
    /// `add`/`replace`: apply R3–R9 to these values.
    Apply(Vec<RoleValue>),
    /// `remove` with a value filter: reset the parts it matches.
    RemoveMatching(Filter),
    /// `remove` of `roles`: reset both parts.
    RemoveAll,
}

/// Parse and validate a PatchOp request body. The ingress calls this so a
/// malformed PATCH is refused before it reaches Kafka.
pub fn parse_patch_request(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a PatchOp request must be a JSON object"))?;
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .ok_or_else(|| ScimError::invalid_syntax("a PatchOp request needs Operations"))?;
    let ops = ops
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be a list"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations must not be empty"));
    }
    if ops.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "a PATCH may carry at most {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    ops.iter().map(parse_operation).collect()
}

fn parse_operation(raw: &Value) -> Result<PatchOperation, ScimError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be an object"))?;
    let field = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let op = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => PatchOpKind::Add,
        Some("replace") => PatchOpKind::Replace,
        Some("remove") => PatchOpKind::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(
                "op must be add, replace or remove",
            ))
        }
    };
    let raw_path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let path = match &raw_path {
        Some(p) if schema::is_enterprise_urn(p) || schema::is_user_urn(p) => None,
        Some(p) => Some(parse_path(p)?),
        None => None,
    };
    let value = field("value").cloned();
    match (op, &raw_path, &value) {
        (PatchOpKind::Remove, None, _) => {
            return Err(ScimError::no_target("remove needs a path"));
        }
        (PatchOpKind::Add | PatchOpKind::Replace, None, v)
            if !v.as_ref().is_some_and(Value::is_object) =>
        {
            return Err(ScimError::invalid_value(
                "add and replace without a path need an object value",
            ));
        }
        (PatchOpKind::Add, Some(_), None) => {
            return Err(ScimError::invalid_value("add needs a value"));
        }
        _ => {}
    }
    // Every key of a path-less value is a path too: parsed here, under the
    // same limits, so none reaches the processor unread.
    match (op, &path, &raw_path, &value) {
        (PatchOpKind::Remove, _, _, _) | (_, Some(_), _, _) | (_, _, _, None) => {}
        (_, None, Some(urn), Some(v)) => {
            pathless_entry(&mut Vec::new(), op, urn, v)?;
        }
        (_, None, None, Some(v)) => {
            pathless_entries(op, v)?;
        }
    }
    Ok(PatchOperation {
        op,
        raw_path,
        path,
        value,
    })
}

/// Apply `ops` to a User document (see `UserView::patchable_document`).
pub fn apply_user_patch(
    mut doc: Map<String, Value>,
    ops: &[PatchOperation],
) -> Result<(Map<String, Value>, Vec<RolesEffect>), ScimError> {
    let mut roles = Vec::new();
    for op in ops {
        match (&op.path, &op.raw_path) {
            (Some(path), _) => apply_path(&mut doc, op.op, path, op.value.as_ref(), &mut roles)?,
            // The whole extension (or core schema) named as the path.
            (None, Some(urn)) => {
                if op.op == PatchOpKind::Remove {
                    if schema::is_enterprise_urn(urn) {
                        doc.remove(ENTERPRISE_USER_SCHEMA);
                    }
                } else if let Some(v) = &op.value {
                    let mut entries = Vec::new();
                    pathless_entry(&mut entries, op.op, urn, v)?;
                    apply_pathless(&mut doc, op.op, entries, &mut roles)?;
                }
            }
            (None, None) => {
                if let Some(v) = &op.value {
                    let entries = pathless_entries(op.op, v)?;
                    apply_pathless(&mut doc, op.op, entries, &mut roles)?;
                }
            }
        }
    }
    Ok((doc, roles))
}

/// What the ingress can check of a user PATCH without the stored user:
/// each operation applied alone to an empty user, and what that produced
/// normalised as a PUT of it would be (types, lengths, the number of
/// values one operation sets). Only "no value matches the filter"
/// (`noTarget`) depends on what is stored; the processor answers that,
/// and checks the whole result (`patched_user`).
pub fn check_user_patch(ops: &[PatchOperation]) -> Result<(), ScimError> {
    for op in ops {
        let checked = apply_user_patch(Map::new(), std::slice::from_ref(op))
            .and_then(|(doc, _)| normalize_document(&doc));
        match checked {
            Err(e) if e.scim_type != Some(ScimType::NoTarget) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The user a PATCH produced, normalised and checked exactly as a PUT of
/// it would be (multi-valued caps, string lengths, types, the schema's
/// attributes only, `userName` present), so that no route stores what a
/// PUT would refuse. The processor writes what this returns.
pub fn patched_user(doc: Map<String, Value>) -> Result<UserInput, ScimError> {
    normalize_user(&Value::Object(doc)).map_err(|e| ScimError {
        detail: format!("the patched user would be invalid: {}", e.detail),
        ..e
    })
}

/// One attribute a path-less add/replace sets.
enum Pathless<'v> {
    Set(Box<PatchPath>, &'v Value),
    /// `"urn:...:enterprise:2.0:User": null` in a replace: drop the extension.
    DropEnterprise,
}

/// Path-less add/replace: each key is an attribute, a dotted path
/// (`name.givenName`) or a URN-qualified path, or a schema URN holding an
/// object of its attributes. Each is parsed as a PATCH path.
fn pathless_entries(op: PatchOpKind, value: &Value) -> Result<Vec<Pathless<'_>>, ScimError> {
    let Some(obj) = value.as_object() else {
        return Err(ScimError::invalid_value(
            "add and replace without a path need an object value",
        ));
    };
    let mut out = Vec::new();
    for (key, v) in obj {
        pathless_entry(&mut out, op, key, v)?;
    }
    Ok(out)
}

fn pathless_entry<'v>(
    out: &mut Vec<Pathless<'v>>,
    op: PatchOpKind,
    key: &str,
    v: &'v Value,
) -> Result<(), ScimError> {
    if ["schemas", "id", "meta", "groups", "password"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k))
    {
        return Ok(());
    }
    if schema::is_enterprise_urn(key) || schema::is_user_urn(key) {
        let Some(inner) = v.as_object() else {
            if v.is_null() && schema::is_enterprise_urn(key) && op == PatchOpKind::Replace {
                out.push(Pathless::DropEnterprise);
                return Ok(());
            }
            return Err(ScimError::invalid_value(format!(
                "{key} must hold an object"
            )));
        };
        for (sub_key, sub_v) in inner {
            if ["schemas", "id", "meta"]
                .iter()
                .any(|k| sub_key.eq_ignore_ascii_case(k))
            {
                continue;
            }
            out.push(Pathless::Set(
                Box::new(parse_path(&format!("{key}:{sub_key}"))?),
                sub_v,
            ));
        }
        return Ok(());
    }
    out.push(Pathless::Set(Box::new(parse_path(key)?), v));
    Ok(())
}

fn apply_pathless(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    entries: Vec<Pathless<'_>>,
    roles: &mut Vec<RolesEffect>,
) -> Result<(), ScimError> {
    for entry in entries {
        match entry {
            Pathless::Set(path, v) => apply_path(doc, op, &path, Some(v), roles)?,
            Pathless::DropEnterprise => {
                doc.remove(ENTERPRISE_USER_SCHEMA);
            }
        }
    }
    Ok(())
}

struct Target {
    /// `None` for core attributes, the extension URN otherwise.
    ext: Option<&'static str>,
    def: &'static AttrDef,
    sub: Option<&'static AttrDef>,
}

fn resolve(path: &PatchPath) -> Result<Target, ScimError> {
    let attr: &AttrPath = &path.attr;
    let (ext, defs): (Option<&'static str>, &'static [AttrDef]) = match &attr.urn {
        None => (None, USER_ATTRS),
        Some(u) if schema::is_user_urn(u) => (None, USER_ATTRS),
        Some(u) if schema::is_enterprise_urn(u) => (Some(ENTERPRISE_USER_SCHEMA), ENTERPRISE_ATTRS),
        Some(u) => return Err(ScimError::invalid_path(format!("unknown schema {u}"))),
    };
    if matches!(
        attr.attr.to_ascii_lowercase().as_str(),
        "id" | "meta" | "schemas"
    ) {
        return Err(ScimError::mutability(format!("{} is read-only", attr.attr)));
    }
    let def = schema::find(defs, &attr.attr)
        .ok_or_else(|| ScimError::invalid_path(format!("unknown attribute {}", attr.attr)))?;
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!("{} is read-only", def.name)));
    }
    let sub = match path.sub() {
        None => None,
        Some(name) => Some(schema::find(def.subs, name).ok_or_else(|| {
            ScimError::invalid_path(format!("unknown sub-attribute {}.{name}", def.name))
        })?),
    };
    if path.filter.is_some() && !def.multi {
        return Err(ScimError::invalid_path(format!(
            "{} is not multi-valued",
            def.name
        )));
    }
    Ok(Target { ext, def, sub })
}

fn apply_path(
    doc: &mut Map<String, Value>,
    op: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    roles: &mut Vec<RolesEffect>,
) -> Result<(), ScimError> {
    let target = resolve(path)?;
    if target.def.name == "roles" {
        roles.push(roles_effect(op, path, value)?);
        return Ok(());
    }
    if target.def.mutability == Mutability::WriteOnly {
        // password: accepted and never stored.
        return Ok(());
    }
    let container: &mut Map<String, Value> = match target.ext {
        None => doc,
        Some(urn) => {
            let entry = doc
                .entry(urn.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry.as_object_mut() {
                Some(m) => m,
                None => return Err(ScimError::internal("extension is not an object")),
            }
        }
    };
    match (&path.filter, target.sub) {
        (None, None) => whole_attribute(container, target.def, op, value)?,
        (None, Some(sub)) => sub_attribute(container, target.def, sub, op, value)?,
        (Some(f), sub) => filtered(container, target.def, f, sub, op, value)?,
    }
    if let Some(urn) = target.ext {
        if doc
            .get(urn)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            doc.remove(urn);
        }
    }
    Ok(())
}

fn whole_attribute(
    container: &mut Map<String, Value>,
    def: &AttrDef,
    op: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = def.name.to_string();
    if op == PatchOpKind::Remove && def.name == "active" {
        // A user is always active or not (L3/L4); there is no third state.
        return Err(ScimError::invalid_value(
            "active cannot be removed: replace it with true or false",
        ));
    }
    if op == PatchOpKind::Remove {
        match (
            def.multi,
            value.and_then(|v| normalize_value(def, v).transpose()),
        ) {
            // Entra removes members of a multi-valued attribute by listing
            // them as the value of a path-only remove.
            (true, Some(listed)) => {
                let listed = listed?;
                let listed = listed.as_array().cloned().unwrap_or_default();
                if let Some(Value::Array(items)) = container.get_mut(&name) {
                    items.retain(|item| !listed.iter().any(|l| same_value(item, l)));
                    if items.is_empty() {
                        container.remove(&name);
                    }
                }
            }
            _ => {
                container.remove(&name);
            }
        }
        return Ok(());
    }
    // A complex attribute is patched sub-attribute by sub-attribute, so an
    // explicit null unsets just that sub-attribute (RFC 7644 §3.5.2.3).
    if let (false, AttrType::Complex, Some(Value::Object(fields))) = (def.multi, def.ty, value) {
        for (key, v) in fields {
            if let Some(sub) = schema::find(def.subs, key) {
                if sub.mutability != Mutability::ReadOnly {
                    sub_attribute(container, def, sub, op, Some(v))?;
                }
            }
        }
        return Ok(());
    }
    let normalized = match value {
        Some(v) => normalize_value(def, v)?,
        None => None,
    };
    let Some(new) = normalized else {
        if op == PatchOpKind::Replace {
            container.remove(&name);
        }
        return Ok(());
    };
    match (def.multi, def.ty, op) {
        (true, _, PatchOpKind::Add) => {
            let new_items = new.as_array().cloned().unwrap_or_default();
            let new_primary = new_items.iter().any(is_primary);
            let entry = container
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                if new_primary {
                    items.iter_mut().for_each(clear_primary);
                }
                for item in new_items {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                check_count(def, items)?;
            }
        }
        (false, AttrType::Complex, _) => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left alone.
            let entry = container
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            match (entry.as_object_mut(), new) {
                (Some(existing), Value::Object(incoming)) => existing.extend(incoming),
                (_, other) => *entry = other,
            }
        }
        _ => {
            container.insert(name, new);
        }
    }
    Ok(())
}

fn sub_attribute(
    container: &mut Map<String, Value>,
    def: &AttrDef,
    sub: &AttrDef,
    op: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let new = match (op, value) {
        (PatchOpKind::Remove, _) | (_, None) => None,
        (_, Some(v)) => normalize_value(sub, v)?,
    };
    let name = def.name.to_string();
    if def.multi {
        let entry = container
            .entry(name.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            if items.is_empty() {
                if let Some(v) = &new {
                    items.push(json!({ sub.name: v }));
                }
            } else {
                for item in items.iter_mut() {
                    set_sub(item, sub.name, new.clone());
                }
                items.retain(|i| i.as_object().is_some_and(|o| !o.is_empty()));
            }
            if items.is_empty() {
                container.remove(&name);
            }
        }
    } else {
        let entry = container
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        set_sub(entry, sub.name, new);
        if entry.as_object().is_some_and(Map::is_empty) {
            container.remove(&name);
        }
    }
    Ok(())
}

fn filtered(
    container: &mut Map<String, Value>,
    def: &AttrDef,
    f: &Filter,
    sub: Option<&AttrDef>,
    op: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = def.name.to_string();
    let mut items = match container.remove(&name) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let matched: Vec<usize> = (0..items.len())
        .filter(|&i| filter::matches(f, &items[i]))
        .collect();
    match (op, sub) {
        (PatchOpKind::Remove, None) => {
            let mut hit = vec![false; items.len()];
            for &i in &matched {
                if let Some(h) = hit.get_mut(i) {
                    *h = true;
                }
            }
            let mut hit = hit.into_iter();
            items.retain(|_| !hit.next().unwrap_or(false));
        }
        (PatchOpKind::Remove, Some(sub)) => {
            for &i in &matched {
                set_sub(&mut items[i], sub.name, None);
            }
        }
        (_, Some(sub)) => {
            let new = match value {
                Some(v) => normalize_value(sub, v)?,
                None => None,
            };
            if matched.is_empty() {
                // Entra sets `emails[type eq "work"].value` on a user with
                // no work email: create the element the filter describes.
                let mut seed = seed_from_filter(f).ok_or_else(|| {
                    ScimError::no_target(format!("no value of {} matches the filter", def.name))
                })?;
                if let Some(v) = new {
                    seed.insert(sub.name.to_string(), v);
                    items.push(Value::Object(seed));
                    check_count(def, &items)?;
                }
            } else {
                if sub.name == "primary" && new == Some(Value::Bool(true)) {
                    items.iter_mut().for_each(clear_primary);
                }
                for &i in &matched {
                    set_sub(&mut items[i], sub.name, new.clone());
                }
            }
        }
        (_, None) => {
            let new = match value {
                Some(v) => normalize_value(def, v)?,
                None => None,
            };
            let new_item = new
                .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
                .and_then(|v| v.as_object().cloned());
            match new_item {
                Some(obj) if !matched.is_empty() => {
                    for &i in &matched {
                        if let Some(existing) = items[i].as_object_mut() {
                            existing.extend(obj.clone());
                        }
                    }
                }
                Some(obj) => {
                    let mut seed = seed_from_filter(f).ok_or_else(|| {
                        ScimError::no_target(format!("no value of {} matches the filter", def.name))
                    })?;
                    seed.extend(obj);
                    items.push(Value::Object(seed));
                    check_count(def, &items)?;
                }
                None => {}
            }
        }
    }
    items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
    if !items.is_empty() {
        container.insert(name, Value::Array(items));
    }
    Ok(())
}

/// The element an `eq` (or `and` of `eq`s) filter describes, if it is that
/// simple.
fn seed_from_filter(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(path, CompareOp::Eq, value) if path.sub.is_none() && path.urn.is_none() => {
            let v = match value {
                CompValue::String(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => return None,
            };
            let mut m = Map::new();
            m.insert(path.attr.clone(), v);
            Some(m)
        }
        Filter::And(all) => {
            let mut m = Map::new();
            for f in all {
                m.extend(seed_from_filter(f)?);
            }
            Some(m)
        }
        _ => None,
    }
}

/// A multi-valued attribute may hold no more values after an operation
/// than a PUT may send (`MAX_MULTI_VALUES`). Checked after every
/// operation, so that many small additions in one request cannot build a
/// list whose every later addition scans it.
fn check_count(def: &AttrDef, items: &[Value]) -> Result<(), ScimError> {
    if items.len() > MAX_MULTI_VALUES {
        return Err(ScimError::invalid_value(format!(
            "{} would have more than {MAX_MULTI_VALUES} values",
            def.name
        )));
    }
    Ok(())
}

fn set_sub(item: &mut Value, sub: &str, value: Option<Value>) {
    if !item.is_object() {
        *item = Value::Object(Map::new());
    }
    if let Some(obj) = item.as_object_mut() {
        obj.retain(|k, _| !k.eq_ignore_ascii_case(sub));
        if let Some(v) = value {
            obj.insert(sub.to_string(), v);
        }
    }
}

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

fn clear_primary(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("primary");
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn roles_effect(
    op: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<RolesEffect, ScimError> {
    match (op, &path.filter) {
        (PatchOpKind::Remove, Some(f)) => Ok(RolesEffect::RemoveMatching(f.clone())),
        (PatchOpKind::Remove, None) => match value
            .map(parse_role_values)
            .transpose()
            .map_err(ScimError::from)?
        {
            Some(values) if !values.is_empty() => {
                let filter = values
                    .into_iter()
                    .map(|rv| {
                        Filter::Compare(
                            AttrPath::simple("value"),
                            CompareOp::Eq,
                            CompValue::String(rv.value),
                        )
                    })
                    .collect();
                Ok(RolesEffect::RemoveMatching(Filter::any(filter)))
            }
            _ => Ok(RolesEffect::RemoveAll),
        },
        (_, filter) => {
            let mut values = match value {
                Some(v) => parse_role_values(v).map_err(ScimError::from)?,
                None => Vec::new(),
            };
            // `roles[primary eq "True"].value` = "x" sends x as the primary.
            if let Some(f) = filter {
                let marked = |primary: bool| {
                    values.iter().all(|rv| {
                        filter::matches(f, &json!({"value": rv.value, "primary": primary}))
                    })
                };
                if marked(true) && !marked(false) {
                    values.iter_mut().for_each(|rv| rv.primary = true);
                }
            }
            Ok(RolesEffect::Apply(values))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(doc: Value, ops: Value) -> Result<(Value, Vec<RolesEffect>), ScimError> {
        let ops = parse_patch_request(&json!({ "Operations": ops }))?;
        let (doc, roles) = apply_user_patch(doc.as_object().cloned().unwrap_or_default(), &ops)?;
        Ok((Value::Object(doc), roles))
    }

    fn base() -> Value {
        json!({
            "userName": "u@x.com",
            "active": true,
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
        })
    }

    #[test]
    fn applies_each_path_form() {
        let ent = ENTERPRISE_USER_SCHEMA;
        let table: Vec<(&str, Value, Value)> = vec![
            (
                "okta deactivate, no path",
                json!([{"op": "replace", "value": {"active": false}}]),
                json!({"userName": "u@x.com", "active": false, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}]}),
            ),
            (
                "entra string boolean, capitalised op",
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
                json!({"userName": "u@x.com", "active": false, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}]}),
            ),
            (
                "sub-attribute of a complex attribute",
                json!([{"op": "replace", "path": "name.familyName", "value": "C"}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "C"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}]}),
            ),
            (
                "value filter with sub-attribute",
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x.com"}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "new@x.com", "type": "work", "primary": true}]}),
            ),
            (
                "value filter matching nothing creates the element (Entra)",
                json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
                       "phoneNumbers": [{"type": "mobile", "value": "+1 555"}]}),
            ),
            (
                "dotted and URN keys without a path (aadOptscim062020)",
                json!([{"op": "replace", "value": {"name.givenName": "Z",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "Z", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
                       ent: {"employeeNumber": "7"}}),
            ),
            (
                "manager as a plain id via URN path",
                json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m-1"}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
                       ent: {"manager": {"value": "m-1"}}}),
            ),
            (
                "manager as a list with $ref",
                json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                        "value": [{"$ref": null, "value": "m-2"}]}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
                       ent: {"manager": {"value": "m-2"}}}),
            ),
            (
                "explicit null unsets",
                json!([{"op": "replace", "value": {"name": {"givenName": null}}}, {"op": "replace", "path": "title", "value": null}]),
                json!({"userName": "u@x.com", "active": true, "name": {"familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work", "primary": true}]}),
            ),
            (
                "remove with value filter",
                json!([{"op": "remove", "path": "emails[value eq \"U@X.COM\"]"}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"}}),
            ),
            (
                "add to a multi-valued attribute appends, primary moves",
                json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.com", "type": "home", "primary": "true"}]}]),
                json!({"userName": "u@x.com", "active": true, "name": {"givenName": "A", "familyName": "B"},
                       "emails": [{"value": "u@x.com", "type": "work"}, {"value": "b@x.com", "type": "home", "primary": true}]}),
            ),
            (
                "password is accepted and never stored",
                json!([{"op": "replace", "path": "password", "value": "s3cret"}]),
                base(),
            ),
        ];
        for (name, ops, want) in table {
            let (got, _) = patch(base(), ops).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn roles_operations_become_effects() {
        let cases: Vec<(Value, RolesEffect)> = vec![
            (
                json!({"op": "Add", "path": "roles", "value": [{"value": "admin", "primary": "True"}]}),
                RolesEffect::Apply(vec![RoleValue::new("admin", true)]),
            ),
            (
                json!({"op": "replace", "path": "roles[primary eq \"True\"].value", "value": "recorder"}),
                RolesEffect::Apply(vec![RoleValue::new("recorder", true)]),
            ),
            (
                json!({"op": "replace", "value": {"roles": ["listener"]}}),
                RolesEffect::Apply(vec![RoleValue::new("listener", false)]),
            ),
            (
                json!({"op": "remove", "path": "roles[value eq \"admin\"]"}),
                RolesEffect::RemoveMatching(filter::parse_filter("value eq \"admin\"").unwrap()),
            ),
            (
                json!({"op": "remove", "path": "roles"}),
                RolesEffect::RemoveAll,
            ),
        ];
        for (op, want) in cases {
            let (doc, effects) = patch(base(), json!([op])).unwrap();
            assert_eq!(doc, base(), "roles never touch the document: {op}");
            assert_eq!(effects, vec![want], "{op}");
        }
    }

    #[test]
    fn rejects_bad_requests() {
        let bad: Vec<(Value, &str)> = vec![
            (json!({"Operations": []}), "invalidSyntax"),
            (json!({}), "invalidSyntax"),
            (
                json!({"Operations": [{"op": "move", "path": "title"}]}),
                "invalidSyntax",
            ),
            (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
            (
                json!({"Operations": [{"op": "add", "value": "x"}]}),
                "invalidValue",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "title"}]}),
                "invalidValue",
            ),
            (
                json!({"Operations": [{"op": "add", "path": "emails[type eq"}]}),
                "invalidPath",
            ),
        ];
        for (body, scim_type) in bad {
            let err = parse_patch_request(&body).unwrap_err();
            assert_eq!(err.scim_type.map(|t| t.as_str()), Some(scim_type), "{body}");
        }
        let apply_bad: Vec<(Value, &str)> = vec![
            (
                json!([{"op": "replace", "path": "nope", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "groups", "value": []}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "name[givenName eq \"A\"]", "value": {}}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "emails[type co \"w\"].value", "value": "x"}])
                    .clone(),
                "ok",
            ),
            (
                json!([{"op": "replace", "path": "addresses[type co \"w\"].region", "value": "x"}]),
                "noTarget",
            ),
        ];
        for (ops, scim_type) in apply_bad {
            match patch(base(), ops.clone()) {
                Ok(_) => assert_eq!(scim_type, "ok", "{ops}"),
                Err(e) => assert_eq!(e.scim_type.map(|t| t.as_str()), Some(scim_type), "{ops}"),
            }
        }
    }

    fn phones(range: std::ops::Range<usize>) -> Value {
        json!(range
            .map(|i| json!({"value": format!("+1 555 {i:04}")}))
            .collect::<Vec<_>>())
    }

    fn kind(e: &ScimError) -> &'static str {
        e.scim_type.map(|t| t.as_str()).unwrap_or("none")
    }

    /// Path-less keys are paths: the request parser reads each of them,
    /// so none reaches the processor unread (the review's multi-byte key
    /// panicked it there).
    #[test]
    fn pathless_keys_are_parsed_with_the_request() {
        let long_key = format!("emails[{}].value", vec!["type pr"; 2000].join(" or "));
        let table: Vec<(Value, &str)> = vec![
            (
                json!({"op": "add", "value": {"emails[type eq \"work\"].abcé": "x"}}),
                "invalidPath",
            ),
            (json!({"op": "add", "value": {"namé": "x"}}), "invalidPath"),
            (
                json!({"op": "replace", "value": {long_key.as_str(): "x"}}),
                "invalidPath",
            ),
            (
                json!({"op": "replace", "value": {ENTERPRISE_USER_SCHEMA: {"départment": "x"}}}),
                "invalidPath",
            ),
            (
                json!({"op": "replace", "path": ENTERPRISE_USER_SCHEMA, "value": {"a]b": "x"}}),
                "invalidPath",
            ),
            (
                json!({"op": "replace", "value": {ENTERPRISE_USER_SCHEMA: "flat"}}),
                "invalidValue",
            ),
        ];
        for (op, want) in table {
            let err = parse_patch_request(&json!({ "Operations": [op] })).unwrap_err();
            assert_eq!(kind(&err), want, "{op}");
        }
        // What IdPs send still parses.
        for op in [
            json!({"op": "replace", "value": {"id": "x", "displayName": "N", "members": []}}),
            json!({"op": "replace", "value": {"name.givenName": "Z", "schemas": 1, "password": "p"}}),
            json!({"op": "add", "value": {ENTERPRISE_USER_SCHEMA: {"department": "D", "id": 1}}}),
            json!({"op": "replace", "value": {ENTERPRISE_USER_SCHEMA: null}}),
        ] {
            assert!(
                parse_patch_request(&json!({ "Operations": [op] })).is_ok(),
                "{op}"
            );
        }
    }

    /// What the ingress refuses without the stored user: each operation's
    /// values held to a PUT's checks, and only `noTarget` left to the
    /// processor.
    #[test]
    fn the_ingress_checks_each_operation_as_a_put_would() {
        let long = "x".repeat(crate::scim::user::MAX_STRING_LEN + 1);
        let filler = "y".repeat(3000);
        let table: Vec<(Value, &str)> = vec![
            (
                json!([{"op": "replace", "path": "phoneNumbers", "value": phones(0..101)}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "value": {"phoneNumbers": phones(0..101)}}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "title", "value": long}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "title", "value": {"a": 1}}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
                "invalidValue",
            ),
            (json!([{"op": "remove", "path": "active"}]), "invalidValue"),
            (
                json!([{"op": "replace", "path": "nope", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            // A filter value no stored element can hold seeds a new element:
            // refused wherever it is sent.
            (
                json!([{"op": "add", "path": format!("emails[type eq \"{filler}\"].value"), "value": "v"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "add", "path": "emails[primary eq \"maybe\"].value", "value": "v"}]),
                "invalidValue",
            ),
            // Left to the processor: depends on what is stored.
            (
                json!([{"op": "replace", "path": "addresses[type co \"w\"].region", "value": "x"}]),
                "ok",
            ),
            (
                json!([{"op": "replace", "path": "phoneNumbers", "value": phones(0..100)}]),
                "ok",
            ),
            (
                json!([{"op": "add", "path": "phoneNumbers", "value": phones(0..100)},
                    {"op": "add", "path": "phoneNumbers", "value": phones(100..200)}]),
                "ok",
            ),
        ];
        for (ops, want) in table {
            let parsed = parse_patch_request(&json!({ "Operations": ops })).unwrap();
            match check_user_patch(&parsed) {
                Ok(()) => assert_eq!(want, "ok", "{ops}"),
                Err(e) => assert_eq!(kind(&e), want, "{ops}: {}", e.detail),
            }
        }
    }

    /// The result of a PATCH is what a PUT of it would store, or a 400:
    /// the review's 200 phone numbers and the 3,000-byte unknown
    /// sub-attribute among them.
    #[test]
    fn a_patched_user_is_held_to_a_put() {
        let filler = "z".repeat(3000);
        let mut full = base();
        full["phoneNumbers"] = phones(0..100);
        let table: Vec<(&str, Value, Value, Result<Value, &str>)> = vec![
            (
                "a second request of 100 phone numbers",
                full.clone(),
                json!([{"op": "add", "path": "phoneNumbers", "value": phones(100..200)}]),
                Err("invalidValue"),
            ),
            (
                "one request, two operations of 100",
                base(),
                json!([{"op": "add", "path": "phoneNumbers", "value": phones(0..100)},
                       {"op": "add", "path": "phoneNumbers", "value": phones(100..200)}]),
                Err("invalidValue"),
            ),
            (
                "the 101st through a filter that creates its element",
                full.clone(),
                json!([{"op": "add", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1"}]),
                Err("invalidValue"),
            ),
            (
                "an unknown sub-attribute in a created element is dropped, as a PUT drops it",
                base(),
                json!([{"op": "add", "path": format!("phoneNumbers[type eq \"fax\" and note eq \"{filler}\"].value"), "value": "+1"}]),
                Ok(json!([{"type": "fax", "value": "+1"}])),
            ),
            (
                "userName removed",
                base(),
                json!([{"op": "remove", "path": "userName"}]),
                Err("invalidValue"),
            ),
        ];
        for (name, doc, ops, want) in table {
            let result = patch(doc, ops)
                .and_then(|(doc, _)| patched_user(doc.as_object().cloned().unwrap_or_default()));
            match (result, want) {
                (Ok(input), Ok(phones)) => {
                    assert_eq!(input.attrs.get("phoneNumbers"), Some(&phones), "{name}");
                    let again = normalize_user(&Value::Object(input.attrs.clone())).unwrap();
                    assert_eq!(again.attrs, input.attrs, "{name}: a PUT stores the same");
                }
                (Err(e), Err(want)) => assert_eq!(kind(&e), want, "{name}: {}", e.detail),
                (got, want) => panic!("{name}: {got:?}, wanted {want:?}"),
            }
        }
    }

    /// A deterministic fuzz: every PATCH path form, mutated byte by byte,
    /// with values of every JSON shape, applied to a full user. Whatever
    /// happens must be an answer, never a panic.
    #[test]
    fn mutated_patches_never_panic() {
        let paths = [
            "emails[type eq \"work\"].value",
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "roles[primary eq \"True\"].value",
            "addresses[type eq \"work\" and primary eq true].streetAddress",
            "members[value eq \"x\"]",
        ];
        let values = [
            json!(null),
            json!("s"),
            json!(1),
            json!(true),
            json!([]),
            json!([{"value": "v", "primary": "True"}, "x", 3]),
            json!({"givenName": null, "value": "x", "sub": {"deep": [1]}}),
        ];
        let mut doc = base();
        doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
            json!({"manager": {"value": "m"}});
        let mut cases = 0;
        for path in paths {
            let bytes = path.as_bytes();
            for i in 0..bytes.len() {
                for b in [b'[', b']', b'.', b':', b'"', b' ', b'x'] {
                    let mut m = bytes.to_vec();
                    m[i] = b;
                    let mutated = String::from_utf8_lossy(&m).to_string();
                    for op in ["add", "Replace", "remove"] {
                        for v in &values {
                            cases += 1;
                            let _ = patch(
                                doc.clone(),
                                json!([{"op": op, "path": mutated, "value": v}]),
                            );
                        }
                    }
                }
            }
        }
        for v in &values {
            for op in ["add", "replace"] {
                cases += 1;
                let _ = patch(
                    doc.clone(),
                    json!([{"op": op, "value": {"name.givenName": v, "emails": v, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": v}}]),
                );
            }
        }
        assert!(cases > 5000, "{cases} cases");
    }
}
