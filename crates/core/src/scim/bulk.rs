//! Bulk (RFC 7644 §3.7): parsing a BulkRequest, finding the `bulkId`
//! references between its operations, substituting resolved ids, and
//! planning the waves they run in (`BulkPlanner`). Pure; the ingress runs
//! the operations.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::error::{ScimError, ScimType};

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Advertised `maxOperations`.
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// Advertised `maxPayloadSize`, in bytes.
pub const MAX_BULK_PAYLOAD: usize = 4 * 1024 * 1024;

const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }
}

/// One operation of a BulkRequest, checked for shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: Method,
    pub kind: ResourceKind,
    /// The id in the path (`/Users/{id}`), possibly `bulkId:x`.
    pub target: Option<String>,
    pub bulk_id: Option<String>,
    /// `version`: an ETag, sent as If-Match.
    pub version: Option<String>,
    pub data: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    pub fail_on_errors: Option<usize>,
    pub operations: Vec<ParsedOperation>,
}

/// An operation as parsed: what it is, or why it cannot run (answered in
/// its place, with what could be read of its method and bulkId).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOperation {
    pub method: Option<Method>,
    pub bulk_id: Option<String>,
    pub operation: Result<Operation, ScimError>,
}

pub fn parse_bulk_request(body: &Value) -> Result<BulkRequest, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let get = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    // RFC 7644 only says "an integer": clients send 0 meaning that no
    // error is tolerated, which is the same as stopping at the first.
    let fail_on_errors = match get("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Some(usize::try_from(v).unwrap_or(usize::MAX).max(1)),
            None => {
                return Err(ScimError::invalid_value(
                    "failOnErrors must be an integer of 0 or more",
                ))
            }
        },
        Some(_) => {
            return Err(ScimError::invalid_value(
                "failOnErrors must be an integer of 0 or more",
            ))
        }
    };
    let ops = get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest needs an Operations list"))?;
    if ops.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::payload_too_large(
            Some(ScimType::TooMany),
            format!("a bulk request may carry at most {MAX_BULK_OPERATIONS} operations"),
        ));
    }
    let mut seen = BTreeSet::new();
    let operations = ops
        .iter()
        .map(|raw| {
            let op = parse_operation(raw);
            let method = op.as_ref().ok().map(|o| o.method);
            let bulk_id = raw
                .get("bulkId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let op = op.and_then(|o| match &o.bulk_id {
                Some(b) if !seen.insert(b.clone()) => Err(ScimError::uniqueness(format!(
                    "bulkId {b} is used by more than one operation"
                ))),
                _ => Ok(o),
            });
            ParsedOperation {
                method,
                bulk_id,
                operation: op,
            }
        })
        .collect();
    Ok(BulkRequest {
        fail_on_errors,
        operations,
    })
}

fn parse_operation(raw: &Value) -> Result<Operation, ScimError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each bulk operation must be an object"))?;
    let get = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let method = match get("method")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("PATCH") => Method::Patch,
        Some("DELETE") => Method::Delete,
        _ => {
            return Err(ScimError::invalid_syntax(
                "method must be POST, PUT, PATCH or DELETE",
            ))
        }
    };
    let path = get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::invalid_syntax("each bulk operation needs a path"))?;
    let mut parts = path.trim_matches('/').splitn(2, '/');
    let kind = match parts.next() {
        Some(p) if p.eq_ignore_ascii_case("Users") => ResourceKind::User,
        Some(p) if p.eq_ignore_ascii_case("Groups") => ResourceKind::Group,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "{path} is not /Users or /Groups"
            )))
        }
    };
    let target = parts.next().filter(|t| !t.is_empty()).map(str::to_string);
    let bulk_id = match get("bulkId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(ScimError::invalid_value(
                "bulkId must be a non-empty string",
            ))
        }
    };
    let version = get("version").and_then(Value::as_str).map(str::to_string);
    let data = get("data").filter(|d| !d.is_null()).cloned();
    match (method, &target) {
        (Method::Post, Some(_)) => {
            return Err(ScimError::invalid_path(
                "POST goes to /Users or /Groups, without an id",
            ))
        }
        (Method::Post, None) if bulk_id.is_none() => {
            return Err(ScimError::invalid_value("bulkId is required for POST"))
        }
        (Method::Put | Method::Patch | Method::Delete, None) => {
            return Err(ScimError::invalid_path(format!(
                "{} needs a resource id in its path",
                method.as_str()
            )))
        }
        _ => {}
    }
    if method != Method::Delete && data.is_none() {
        return Err(ScimError::invalid_syntax(format!(
            "{} needs data",
            method.as_str()
        )));
    }
    Ok(Operation {
        method,
        kind,
        target,
        bulk_id,
        version,
        data,
    })
}

/// The bulkIds an operation refers to, in its path and anywhere in its
/// data (`"value": "bulkId:qwerty"`).
pub fn references(op: &Operation) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::String(s) => {
                if let Some(id) = s.strip_prefix(BULK_ID_PREFIX) {
                    out.insert(id.to_string());
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => m.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    if let Some(t) = &op.target {
        walk(&Value::String(t.clone()), &mut out);
    }
    if let Some(d) = &op.data {
        walk(d, &mut out);
    }
    out
}

/// Replace every `bulkId:x` with the id the referenced POST created.
pub fn substitute(op: &mut Operation, resolved: &HashMap<String, String>) {
    fn walk(v: &mut Value, resolved: &HashMap<String, String>) {
        match v {
            Value::String(s) => {
                if let Some(id) = s.strip_prefix(BULK_ID_PREFIX).and_then(|b| resolved.get(b)) {
                    *s = id.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, resolved)),
            Value::Object(m) => m.values_mut().for_each(|i| walk(i, resolved)),
            _ => {}
        }
    }
    if let Some(t) = &mut op.target {
        let mut v = Value::String(t.clone());
        walk(&mut v, resolved);
        if let Value::String(s) = v {
            *t = s;
        }
    }
    if let Some(d) = &mut op.data {
        walk(d, resolved);
    }
}

/// Why an operation of a /Bulk request can never run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrunnable {
    /// It references a bulkId no POST of the request has, or one whose
    /// POST failed.
    Unresolved(String),
    /// What is left references itself in a circle.
    Circular,
}

impl Unrunnable {
    /// Its entry's error: 409 `invalidValue` (RFC 7644 §3.7.2).
    pub fn error(&self) -> ScimError {
        match self {
            Unrunnable::Unresolved(r) => ScimError::unresolved_reference(format!(
                "bulkId {r} does not name a successful POST of this request"
            )),
            Unrunnable::Circular => ScimError::unresolved_reference("circular bulkId references"),
        }
    }
}

/// One wave of a /Bulk request: what runs now (its references replaced
/// by the ids they resolved to), and what never will.
#[derive(Debug, Default)]
pub struct Wave {
    pub ready: Vec<(usize, Operation)>,
    pub unrunnable: Vec<(usize, Operation, Unrunnable)>,
}

/// Orders a /Bulk request's operations into waves: an operation runs once
/// every bulkId it references resolved to a created resource, so users go
/// before the groups that list them, and each wave runs all at once.
/// The request's positions (`usize`) travel with the operations so that
/// the response keeps the request's order.
#[derive(Debug)]
pub struct BulkPlanner {
    /// The bulkIds of the request's valid operations.
    producers: HashSet<String>,
    /// bulkId to the id its POST created (or linked to: a create may
    /// answer with an existing user's id, I3 and L5).
    resolved: HashMap<String, String>,
    /// bulkIds whose POST failed or could not run.
    failed: HashSet<String>,
    pending: Vec<(usize, Operation)>,
}

impl BulkPlanner {
    pub fn new(operations: Vec<(usize, Operation)>) -> Self {
        let producers = operations
            .iter()
            .filter_map(|(_, op)| op.bulk_id.clone())
            .collect();
        BulkPlanner {
            producers,
            resolved: HashMap::new(),
            failed: HashSet::new(),
            pending: operations,
        }
    }

    /// Whether every operation has been handed out.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next wave. An operation referencing what will never resolve is
    /// unrunnable, and so, in turn, is what references its bulkId; when
    /// nothing can run, everything left is circular and the plan ends.
    pub fn next_wave(&mut self) -> Wave {
        let mut wave = Wave::default();
        let mut waiting = Vec::new();
        for (i, mut op) in std::mem::take(&mut self.pending) {
            let refs = references(&op);
            let broken = refs
                .iter()
                .find(|r| !self.producers.contains(*r) || self.failed.contains(*r));
            if let Some(r) = broken {
                let why = Unrunnable::Unresolved(r.clone());
                if let Some(b) = &op.bulk_id {
                    self.failed.insert(b.clone());
                }
                wave.unrunnable.push((i, op, why));
            } else if refs.iter().all(|r| self.resolved.contains_key(r)) {
                substitute(&mut op, &self.resolved);
                wave.ready.push((i, op));
            } else {
                waiting.push((i, op));
            }
        }
        if wave.ready.is_empty() {
            wave.unrunnable.extend(
                waiting
                    .into_iter()
                    .map(|(i, op)| (i, op, Unrunnable::Circular)),
            );
        } else {
            self.pending = waiting;
        }
        wave
    }

    /// What an operation of a wave did: for a POST with a bulkId, the id
    /// of the resource it created, or `None` when it failed.
    pub fn record(&mut self, op: &Operation, created: Option<&str>) {
        if let (Some(b), Method::Post) = (&op.bulk_id, op.method) {
            match created {
                Some(id) => {
                    self.resolved.insert(b.clone(), id.to_string());
                }
                None => {
                    self.failed.insert(b.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_operations_and_references() {
        let body = json!({"schemas": [BULK_REQUEST_SCHEMA], "failOnErrors": 1, "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "a@x.com"}},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "G", "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:u1", "data": {"Operations": []}},
            {"method": "DELETE", "path": "/Users/abc"},
            {"method": "POST", "path": "/Users", "data": {}},
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {}},
            {"method": "PUT", "path": "/Things/1", "data": {}}
        ]});
        let req = parse_bulk_request(&body).unwrap();
        assert_eq!(req.fail_on_errors, Some(1));
        let ok: Vec<bool> = req.operations.iter().map(|p| p.operation.is_ok()).collect();
        assert_eq!(ok, vec![true, true, true, true, false, false, false, false]);
        let group = req.operations[1].operation.as_ref().unwrap();
        assert_eq!(references(group), BTreeSet::from(["u1".to_string()]));
        let patch = req.operations[2].operation.as_ref().unwrap();
        assert_eq!(references(patch), BTreeSet::from(["u1".to_string()]));

        let mut g = group.clone();
        substitute(
            &mut g,
            &HashMap::from([("u1".to_string(), "id-1".to_string())]),
        );
        assert_eq!(g.data.unwrap()["members"][0]["value"], "id-1");
        let mut p = patch.clone();
        substitute(
            &mut p,
            &HashMap::from([("u1".to_string(), "id-1".to_string())]),
        );
        assert_eq!(p.target.as_deref(), Some("id-1"));
    }

    #[test]
    fn refuses_oversized_and_malformed_requests() {
        let many = json!({"Operations": vec![json!({"method": "DELETE", "path": "/Users/x"}); MAX_BULK_OPERATIONS + 1]});
        assert_eq!(parse_bulk_request(&many).unwrap_err().status, 413);
        assert_eq!(parse_bulk_request(&json!({})).unwrap_err().status, 400);
    }

    #[test]
    fn fail_on_errors_reads_any_integer_of_zero_or_more() {
        let read = |v: Value| {
            parse_bulk_request(&json!({"Operations": [], "failOnErrors": v}))
                .map(|r| r.fail_on_errors)
                .map_err(|e| (e.status, e.scim_type))
        };
        let refused = Err((400, Some(ScimType::InvalidValue)));
        let cases = [
            (json!(null), Ok(None)),
            // 0 tolerates no error: stop at the first, as 1 does.
            (json!(0), Ok(Some(1))),
            (json!(1), Ok(Some(1))),
            (json!(7), Ok(Some(7))),
            (json!(-1), refused),
            (json!(1.5), refused),
            (json!("1"), refused),
            (json!(true), refused),
        ];
        for (v, want) in cases {
            assert_eq!(read(v.clone()), want, "failOnErrors: {v}");
        }
        assert_eq!(
            parse_bulk_request(&json!({"Operations": []})).map(|r| r.fail_on_errors),
            Ok(None)
        );
    }

    /// Waves as run: each wave's positions, then the positions that never
    /// run and why, when every POST succeeds but those listed as failing.
    #[test]
    fn the_planner_runs_operations_in_waves_of_resolved_references() {
        fn post(bulk_id: &str, refs: &[&str]) -> Operation {
            let members: Vec<Value> = refs
                .iter()
                .map(|r| json!({"value": format!("bulkId:{r}")}))
                .collect();
            Operation {
                method: Method::Post,
                kind: ResourceKind::Group,
                target: None,
                bulk_id: Some(bulk_id.into()),
                version: None,
                data: Some(json!({"displayName": bulk_id, "members": members})),
            }
        }
        fn patch(target: &str) -> Operation {
            Operation {
                method: Method::Patch,
                kind: ResourceKind::User,
                target: Some(target.into()),
                bulk_id: None,
                version: None,
                data: Some(json!({"Operations": []})),
            }
        }
        use Unrunnable::{Circular, Unresolved};
        type Case = (
            &'static str,
            Vec<Operation>,
            &'static [&'static str],
            Vec<Vec<usize>>,
            Vec<(usize, Unrunnable)>,
        );
        let cases: Vec<Case> = vec![
            (
                "independent operations run in one wave",
                vec![post("a", &[]), post("b", &[]), patch("u1")],
                &[],
                vec![vec![0, 1, 2]],
                vec![],
            ),
            (
                "a group after the users it lists",
                vec![post("g", &["a", "b"]), post("a", &[]), post("b", &[])],
                &[],
                vec![vec![1, 2], vec![0]],
                vec![],
            ),
            (
                "a chain runs one link per wave",
                vec![patch("bulkId:g"), post("g", &["a"]), post("a", &[])],
                &[],
                vec![vec![2], vec![1], vec![0]],
                vec![],
            ),
            (
                "an unknown bulkId, and what depends on it",
                vec![post("g", &["nobody"]), post("h", &["g"]), post("a", &[])],
                &[],
                vec![vec![2]],
                vec![
                    (0, Unresolved("nobody".into())),
                    (1, Unresolved("g".into())),
                ],
            ),
            (
                "a failed POST fails what references it",
                vec![post("a", &[]), post("g", &["a"]), patch("bulkId:a")],
                &["a"],
                vec![vec![0]],
                vec![(1, Unresolved("a".into())), (2, Unresolved("a".into()))],
            ),
            (
                "a circle never runs",
                vec![post("a", &["b"]), post("b", &["a"]), post("c", &[])],
                &[],
                vec![vec![2]],
                vec![(0, Circular), (1, Circular)],
            ),
            (
                "a POST referencing itself",
                vec![post("a", &["a"])],
                &[],
                vec![],
                vec![(0, Circular)],
            ),
        ];
        for (name, ops, failing, want_waves, want_unrunnable) in cases {
            let mut planner = BulkPlanner::new(ops.into_iter().enumerate().collect());
            let (mut waves, mut unrunnable) = (Vec::new(), Vec::new());
            while !planner.is_done() {
                let wave = planner.next_wave();
                unrunnable.extend(wave.unrunnable.into_iter().map(|(i, _, why)| (i, why)));
                if wave.ready.is_empty() {
                    break;
                }
                waves.push(wave.ready.iter().map(|(i, _)| *i).collect::<Vec<_>>());
                for (_, op) in &wave.ready {
                    assert!(references(op).is_empty(), "{name}: substituted");
                    let failed = op.bulk_id.as_deref().is_some_and(|b| failing.contains(&b));
                    let id = op.bulk_id.as_ref().map(|b| format!("id-{b}"));
                    planner.record(op, id.as_deref().filter(|_| !failed));
                }
            }
            assert_eq!(waves, want_waves, "{name}");
            assert_eq!(unrunnable, want_unrunnable, "{name}");
        }
        let e = Unrunnable::Circular.error();
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::InvalidValue)));
    }
}
