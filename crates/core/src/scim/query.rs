//! List and search parameters (RFC 7644 §3.4.2, §3.4.3) and the
//! `attributes` / `excludedAttributes` projection of a rendered resource.
//!
//! Every attribute path here is held to the filter's limits: `sortBy` and
//! each list at most `MAX_FILTER_LEN` bytes, a list at most
//! `MAX_FILTER_TERMS` names; past them, `invalidValue` naming the limit.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{
    parse_filter, split_attr_path, AttrPath, Filter, MAX_FILTER_LEN, MAX_FILTER_TERMS,
};
use super::MAX_PAGE_SIZE;

/// The page size when `count` is not given.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListParams {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    pub start_index: i64,
    pub count: i64,
    pub projection: Projection,
}

/// Which attributes a read returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    pub fn from_lists(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Projection {
            attributes: attributes
                .map(|l| parse_attr_list("attributes", l))
                .transpose()?
                .unwrap_or_default(),
            excluded: excluded
                .map(|l| parse_attr_list("excludedAttributes", l))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Would this projection return `attr` (a top-level attribute)? Used to
    /// skip expensive work, such as loading a group's members.
    pub fn wants(&self, attr: &str) -> bool {
        let named = |list: &[AttrPath]| {
            list.iter()
                .any(|p| p.attr.eq_ignore_ascii_case(attr) && p.sub.is_none())
        };
        let named_at_all =
            |list: &[AttrPath]| list.iter().any(|p| p.attr.eq_ignore_ascii_case(attr));
        if !self.attributes.is_empty() {
            return named_at_all(&self.attributes);
        }
        !named(&self.excluded)
    }

    /// Apply to a rendered resource. `id` and `schemas` are always returned
    /// (RFC 7643 §7 "returned: always").
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut obj) = resource else {
            return resource;
        };
        if !self.attributes.is_empty() {
            let mut out = Map::new();
            for key in ["schemas", "id"] {
                if let Some(v) = obj.get(key) {
                    out.insert(key.to_string(), v.clone());
                }
            }
            for path in &self.attributes {
                copy_path(&obj, &mut out, path);
            }
            obj = out;
        }
        for path in &self.excluded {
            remove_path(&mut obj, path);
        }
        Value::Object(obj)
    }
}

fn key_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The object holding `path.attr`: the resource, or an extension object
/// when the path is qualified by an extension URN.
fn container<'a>(
    obj: &'a Map<String, Value>,
    path: &AttrPath,
) -> Option<(Option<String>, &'a Map<String, Value>)> {
    match &path.urn {
        Some(urn) => match key_ci(obj, urn) {
            Some(k) => obj
                .get(k)
                .and_then(Value::as_object)
                .map(|m| (Some(k.clone()), m)),
            // A core schema URN qualifies top-level attributes.
            None => Some((None, obj)),
        },
        None => Some((None, obj)),
    }
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &AttrPath) {
    // The extension URN itself (`urn:...:enterprise:2.0:User`) names the
    // whole extension.
    let whole = format!("{}:{}", path.urn.as_deref().unwrap_or(""), path.attr);
    if let Some(k) = key_ci(from, &whole) {
        to.insert(k.clone(), from[k].clone());
        return;
    }
    let Some((ext, src)) = container(from, path) else {
        return;
    };
    let Some(key) = key_ci(src, &path.attr) else {
        return;
    };
    let value = &src[key];
    let picked = match (&path.sub, value) {
        (None, v) => v.clone(),
        (Some(sub), Value::Object(o)) => match key_ci(o, sub) {
            Some(sk) => Value::Object(Map::from_iter([(sk.clone(), o[sk].clone())])),
            None => return,
        },
        (Some(sub), Value::Array(items)) => Value::Array(
            items
                .iter()
                .filter_map(|i| i.as_object())
                .filter_map(|o| {
                    key_ci(o, sub)
                        .map(|sk| Value::Object(Map::from_iter([(sk.clone(), o[sk].clone())])))
                })
                .collect(),
        ),
        _ => return,
    };
    let dest = match &ext {
        Some(ext) => match to
            .entry(ext.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            Some(m) => m,
            None => return,
        },
        None => to,
    };
    match (dest.get_mut(key), picked) {
        (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
        (_, picked) => {
            dest.insert(key.clone(), picked);
        }
    }
}

fn remove_path(obj: &mut Map<String, Value>, path: &AttrPath) {
    if ["id", "schemas"]
        .iter()
        .any(|k| path.attr.eq_ignore_ascii_case(k))
        && path.urn.is_none()
    {
        return;
    }
    let whole = format!("{}:{}", path.urn.as_deref().unwrap_or(""), path.attr);
    if let Some(k) = key_ci(obj, &whole).cloned() {
        obj.remove(&k);
        return;
    }
    let target = match &path.urn {
        Some(urn) => match key_ci(obj, urn).cloned() {
            Some(k) => match obj.get_mut(&k).and_then(Value::as_object_mut) {
                Some(m) => m,
                None => return,
            },
            None => obj,
        },
        None => obj,
    };
    let Some(key) = key_ci(target, &path.attr).cloned() else {
        return;
    };
    match &path.sub {
        None => {
            target.remove(&key);
        }
        Some(sub) => match target.get_mut(&key) {
            Some(Value::Object(o)) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            }
            _ => {}
        },
    }
}

/// A comma-separated attribute list, the value of the parameter `name`.
pub fn parse_attr_list(name: &str, list: &str) -> Result<Vec<AttrPath>, ScimError> {
    if list.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_value(format!(
            "{name} is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.len() > MAX_FILTER_TERMS {
        return Err(ScimError::invalid_value(format!(
            "{name} lists more than {MAX_FILTER_TERMS} attributes"
        )));
    }
    names
        .into_iter()
        .map(|s| {
            split_attr_path(s).ok_or_else(|| {
                ScimError::invalid_value(format!("{name}: {s:?} is not an attribute name"))
            })
        })
        .collect()
}

/// `sortBy`: one attribute path.
fn parse_sort_by(s: &str) -> Result<AttrPath, ScimError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_value(format!(
            "sortBy is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    split_attr_path(s.trim())
        .ok_or_else(|| ScimError::invalid_value(format!("sortBy {s:?} is not an attribute")))
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn int(name: &str, v: Option<&str>) -> Result<Option<i64>, ScimError> {
    v.map(|s| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
    })
    .transpose()
}

impl ListParams {
    fn build(
        filter: Option<&str>,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        projection: Projection,
    ) -> Result<Self, ScimError> {
        let descending = match sort_order.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder {other:?} is not ascending or descending"
                )))
            }
        };
        let sort_by = sort_by.map(parse_sort_by).transpose()?;
        Ok(ListParams {
            filter: filter.map(parse_filter).transpose()?,
            sort_by,
            descending,
            // RFC 7644 §3.4.2.4: below 1 means 1; a negative count means 0;
            // more than the maximum gets the maximum.
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(DEFAULT_PAGE_SIZE).clamp(0, MAX_PAGE_SIZE),
            projection,
        })
    }

    pub fn from_query(params: &HashMap<String, String>) -> Result<Self, ScimError> {
        Self::build(
            param(params, "filter"),
            param(params, "sortBy"),
            param(params, "sortOrder"),
            int("startIndex", param(params, "startIndex"))?,
            int("count", param(params, "count"))?,
            Projection::from_lists(
                param(params, "attributes"),
                param(params, "excludedAttributes"),
            )?,
        )
    }

    /// A `POST /.search` body (RFC 7644 §3.4.3).
    pub fn from_search_body(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let get = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let string = |name: &str| -> Result<Option<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let list = |name: &str| -> Result<Option<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be a list of attribute names"
                ))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
                Some(Value::String(s)) => int(name, Some(s)),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an integer"
                ))),
            }
        };
        let attributes = list("attributes")?;
        let excluded = list("excludedAttributes")?;
        Self::build(
            string("filter")?.as_deref(),
            string("sortBy")?.as_deref(),
            string("sortOrder")?.as_deref(),
            number("startIndex")?,
            number("count")?,
            Projection::from_lists(attributes.as_deref(), excluded.as_deref())?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["s"], "id": "1", "userName": "u",
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7", "department": "D"},
            "meta": {"version": "W/\"1\""}
        })
    }

    #[test]
    fn projects_attributes_and_exclusions() {
        let table: Vec<(Option<&str>, Option<&str>, Value)> = vec![
            (Some("userName"), None, json!({"schemas": ["s"], "id": "1", "userName": "u"})),
            (Some("NAME.givenName,emails.value"), None, json!({"schemas": ["s"], "id": "1", "name": {"givenName": "A"}, "emails": [{"value": "a@x"}]})),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
                None,
                json!({"schemas": ["s"], "id": "1", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}}),
            ),
            (
                Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
                None,
                json!({"schemas": ["s"], "id": "1", "userName": "u"}),
            ),
            (
                None,
                Some("name,emails,meta,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                json!({"schemas": ["s"], "id": "1", "userName": "u"}),
            ),
            (None, Some("name.familyName"), {
                let mut u = user();
                u["name"] = json!({"givenName": "A"});
                u
            }),
        ];
        for (attrs, excluded, want) in table {
            let p = Projection::from_lists(attrs, excluded).unwrap();
            assert_eq!(p.apply(user()), want, "{attrs:?} {excluded:?}");
        }
        let members = Projection::from_lists(None, Some("members")).unwrap();
        assert!(!members.wants("members"));
        assert!(Projection::default().wants("members"));
        assert!(Projection::from_lists(Some("members.value"), None)
            .unwrap()
            .wants("members"));
        assert!(!Projection::from_lists(Some("displayName"), None)
            .unwrap()
            .wants("members"));
    }

    #[test]
    fn parses_list_parameters() {
        let q = |pairs: &[(&str, &str)]| {
            ListParams::from_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let p = q(&[
            ("startIndex", "0"),
            ("count", "5000"),
            ("sortOrder", "Descending"),
            ("sortBy", "name.familyName"),
        ])
        .unwrap();
        assert_eq!(
            (p.start_index, p.count, p.descending),
            (1, MAX_PAGE_SIZE, true)
        );
        assert_eq!(p.sort_by.unwrap().sub.as_deref(), Some("familyName"));
        assert_eq!(q(&[("count", "-3")]).unwrap().count, 0);
        assert_eq!(q(&[]).unwrap().count, DEFAULT_PAGE_SIZE);
        for bad in [
            &[("count", "x")][..],
            &[("sortOrder", "up")],
            &[("filter", "a eq")],
            &[("attributes", "1bad")],
        ] {
            assert_eq!(q(bad).unwrap_err().status, 400, "{bad:?}");
        }
        // Multi-byte text where a name is read, and every limit: refused
        // as precise 400s, never a panic.
        let long_list = vec!["a"; MAX_FILTER_LEN / 2 + 1].join(",");
        let many = vec!["userName"; MAX_FILTER_TERMS + 1].join(",");
        let terms = vec!["a pr"; MAX_FILTER_TERMS + 1].join(" or ");
        let long_sort = "a".repeat(MAX_FILTER_LEN + 1);
        let table: Vec<(&str, &str, &str, &str)> = vec![
            ("attributes", "abcé", "invalidValue", "attributes"),
            (
                "excludedAttributes",
                "urn:é",
                "invalidValue",
                "excludedAttributes",
            ),
            ("sortBy", "abcé", "invalidValue", "sortBy"),
            ("sortBy", "ürn:a", "invalidValue", "sortBy"),
            ("filter", "abcé pr", "invalidFilter", "position"),
            (
                "attributes",
                &long_list,
                "invalidValue",
                "longer than 4096 bytes",
            ),
            (
                "excludedAttributes",
                &many,
                "invalidValue",
                "more than 100 attributes",
            ),
            (
                "sortBy",
                &long_sort,
                "invalidValue",
                "longer than 4096 bytes",
            ),
            ("filter", &terms, "invalidFilter", "more than 100 terms"),
        ];
        for (name, value, scim_type, detail) in table {
            let err = q(&[(name, value)]).unwrap_err();
            assert_eq!(
                err.scim_type.map(|t| t.as_str()),
                Some(scim_type),
                "{name}={value}"
            );
            assert!(err.detail.contains(detail), "{name}: {}", err.detail);
        }
        assert!(q(&[("attributes", &vec!["userName"; MAX_FILTER_TERMS].join(","))]).is_ok());

        let body = json!({"schemas": [SEARCH_REQUEST_SCHEMA], "filter": "userName sw \"a\"", "startIndex": 2, "count": 10,
                          "attributes": ["userName"], "sortBy": "userName"});
        let p = ListParams::from_search_body(&body).unwrap();
        assert!(p.filter.is_some());
        assert_eq!((p.start_index, p.count), (2, 10));
        assert_eq!(p.projection.attributes.len(), 1);
    }
}
