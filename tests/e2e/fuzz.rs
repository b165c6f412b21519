//! Hostile input through the real HTTP handlers, deterministic from the
//! case number (`SCIMFLOW_FUZZ_CASES` cases, default 20,000). The
//! generator draws from every class of ../shared/spec/hostile-input.md, in
//! every position the ingress reads: the path and query (`filter`,
//! `attributes`, `excludedAttributes`, `sortBy`, `startIndex`, `count`,
//! ids), the headers (`Authorization`, `Content-Type`, `If-Match`,
//! `If-None-Match`, `Prefer`, request ids), and JSON keys and values,
//! PATCH paths and path-less keys, and /Bulk operations:
//! - text: multi-byte UTF-8 (2, 3 and 4 bytes) at every byte offset of a
//!   name, around every length limit; combining marks, zero-width and
//!   right-to-left marks, NUL, the replacement character, escaped lone
//!   surrogates; case folding that changes length (ß, İ); whitespace of
//!   every kind or none;
//! - size and shape: body size at the limit and one byte over (single and
//!   /Bulk), strings, emails, members, operations and filter terms at,
//!   just over, 10x and 1000x their limits; nesting at and past the limit
//!   in JSON and in filters; /Bulk operations each small but together
//!   large;
//! - types and values: every field with the wrong type, huge and odd
//!   numbers, duplicate keys, keys differing in case, schema URNs in any
//!   case, ids that are not UUIDs, another tenant's, deleted ones;
//! - protocol: Content-Type missing, wrong, with parameters, upper case;
//!   bodies that end early and chunked bodies (on a raw connection); huge
//!   and repeated headers, `If-Match` lists.
//!
//! Every case must get an HTTP answer (no reset, no closed connection), no
//! 5xx but a deliberate 503, and nothing partial: afterwards both processes
//! still serve, nothing was dead-lettered, every stored user is
//! consistent, and a second tenant's writes succeed. Failures are
//! collected and reported together, each with its case number and class.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::{json, Map, Value};

use scimflow_shared::config::max_body_bytes;
use scimflow_shared::scim::bulk::{MAX_BULK_OPERATIONS, MAX_BULK_PAYLOAD};
use scimflow_shared::scim::filter::{MAX_FILTER_DEPTH, MAX_FILTER_LEN};
use scimflow_shared::scim::patch::MAX_PATCH_OPERATIONS;
use scimflow_shared::scim::user::{MAX_MULTI_VALUES, MAX_STRING_LEN};
use scimflow_shared::scim::MAX_PAGE_SIZE;

use crate::common::{patch_op, Stack, Tenant};

/// The body limit of every endpoint but /Bulk, at the default message size.
fn body_limit() -> usize {
    max_body_bytes(1_000_000)
}

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn for_case(case: usize) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (case as u64).wrapping_mul(0x1000_0000_01B3) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Characters that break code that assumes one byte per character, or
/// that case-folds, normalises or stores text.
const HOSTILE_CHARS: &[&str] = &[
    "é",        // 2 bytes
    "€",        // 3 bytes
    "😀",       // 4 bytes
    "e\u{301}", // a combining mark
    "\u{200B}", // zero-width space
    "\u{200D}", // zero-width joiner
    "\u{200F}", // right-to-left mark
    "\u{202E}", // right-to-left override
    "\u{0}",    // NUL: PostgreSQL refuses it in text
    "\u{FFFD}", // the replacement character
    "\u{FEFF}", // a byte order mark
    "ß",        // upper-cases to SS
    "İ",        // lower-cases to i and a combining dot
    "ﬃ",        // upper-cases to FFI
    "\u{3000}", // ideographic space
    "\t", "\r\n", "\"", "\\",
];

/// Lengths around every string limit the parsers know of.
fn lengths() -> Vec<usize> {
    let mut v = vec![0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 127, 128, 255, 256];
    for limit in [MAX_STRING_LEN, MAX_FILTER_LEN] {
        v.extend([limit - 4, limit - 3, limit - 2, limit - 1, limit, limit + 1]);
    }
    v
}

/// ASCII of `len` bytes with a hostile character at byte `offset` (the
/// case number walks the offsets, so over the run every offset of every
/// length is reached).
fn text_at(r: &mut Rng, case: usize, base: &str) -> String {
    let lens = lengths();
    let len = *r.pick(&lens);
    let offset = if len == 0 { 0 } else { (case / 7) % (len + 1) };
    let c = *r.pick(HOSTILE_CHARS);
    let filler: String = base.chars().cycle().take(len).collect();
    let mut s = String::with_capacity(len + c.len());
    s.push_str(&filler[..offset.min(filler.len())]);
    s.push_str(c);
    s.push_str(&filler[offset.min(filler.len())..]);
    s
}

/// A name-like string: mostly short, always with something hostile.
fn hostile_text(r: &mut Rng, case: usize) -> String {
    match r.below(6) {
        0 => text_at(r, case, "userName"),
        1 => {
            let n = 1 + r.below(4);
            (0..n).map(|_| *r.pick(HOSTILE_CHARS)).collect()
        }
        2 => format!(
            "{}@{}.example",
            text_at(r, case, "ad"),
            r.pick(HOSTILE_CHARS)
        ),
        3 => "x".repeat(*r.pick(&[MAX_STRING_LEN, MAX_STRING_LEN + 1, 10 * MAX_STRING_LEN])),
        4 => r
            .pick(&[
                "", " ", "  \t ", "null", "true", "0", "-0", "1e400", "[]", "{}",
            ])
            .to_string(),
        _ => format!("{}{}", r.pick(HOSTILE_CHARS), r.next()),
    }
}

fn odd_number(r: &mut Rng) -> Value {
    match r.below(8) {
        0 => json!(i64::MAX),
        1 => json!(i64::MIN),
        2 => json!(u64::MAX),
        3 => json!(-0.0),
        4 => json!(1.5e300),
        5 => json!(0.1),
        6 => json!(-1),
        _ => json!(r.next() as i64),
    }
}

/// A value of any type, often the wrong one.
fn odd_value(r: &mut Rng, case: usize) -> Value {
    match r.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!("False"),
        3 => odd_number(r),
        4 => json!(hostile_text(r, case)),
        5 => json!("\"]) or not (userName pr\\"),
        6 => json!({}),
        7 => json!([]),
        8 => {
            let depth = *r.pick(&[10, 40, 127, 128, 129]);
            (0..depth).fold(json!("deep"), |v, _| json!([v]))
        }
        9 => {
            let n = *r.pick(&[
                MAX_MULTI_VALUES,
                MAX_MULTI_VALUES + 1,
                10 * MAX_MULTI_VALUES,
            ]);
            json!((0..n)
                .map(|i| json!({"value": format!("e{i}@x.example"), "type": "work"}))
                .collect::<Vec<_>>())
        }
        10 => json!({"value": "bulkId:nope", "$ref": null}),
        11 => json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
        12 => {
            json!([{"value": hostile_text(r, case), "primary": "True", "type": hostile_text(r, case)}])
        }
        13 => json!({hostile_text(r, case): hostile_text(r, case)}),
        14 => json!([null, 1, "two", {}, []]),
        _ => json!("ünïcödé \u{0000} \u{FFFF}"),
    }
}

/// Mutate one random node of `v`: replace it, drop a key, add an unknown
/// or hostile one, or change a key's case.
fn mutate(v: &mut Value, r: &mut Rng, case: usize) {
    match v {
        Value::Object(m) if !m.is_empty() && r.below(4) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = keys[r.below(keys.len())].clone();
            match r.below(6) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("{k}X"), odd_value(r, case));
                }
                2 => {
                    if let Some(val) = m.remove(&k) {
                        m.insert(k.to_uppercase(), val);
                    }
                }
                3 => {
                    m.insert(hostile_text(r, case), odd_value(r, case));
                }
                _ => {
                    if let Some(child) = m.get_mut(&k) {
                        mutate(child, r, case);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() && r.below(4) != 0 => {
            let i = r.below(a.len());
            mutate(&mut a[i], r, case);
        }
        other => *other = odd_value(r, case),
    }
}

/// A schema URN in any case.
fn urn(r: &mut Rng, urn: &str) -> String {
    match r.below(3) {
        0 => urn.to_string(),
        1 => urn.to_uppercase(),
        _ => urn
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

fn okta_user(r: &mut Rng, i: usize) -> Value {
    let email = format!("fz{i}@fuzz.example");
    json!({"schemas": [urn(r, "urn:ietf:params:scim:schemas:core:2.0:User")], "userName": email,
           "name": {"givenName": "F", "familyName": "Z"}, "emails": [{"primary": true, "value": email, "type": "work"}],
           "active": true, "roles": [{"value": "recorder"}, "admin"],
           urn(r, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"): {"employeeNumber": "1", "manager": {"value": "m"}}})
}

/// A user whose every string is hostile (still shaped like a user).
fn hostile_user(r: &mut Rng, case: usize) -> Value {
    let email = format!("h{case}{}@fuzz.example", r.pick(&["", "é", "ß", "İ"]));
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
           "userName": if r.chance(2) { json!(email) } else { json!(hostile_text(r, case)) },
           "displayName": hostile_text(r, case), "title": hostile_text(r, case),
           "name": {"givenName": hostile_text(r, case), "familyName": hostile_text(r, case)},
           "emails": [{"value": email, "type": "work", "primary": true}, {"value": hostile_text(r, case)}],
           "roles": [hostile_text(r, case)], "externalId": hostile_text(r, case)})
}

/// A PATCH path: valid shapes with hostile pieces, long and deep ones.
fn patch_path(r: &mut Rng, case: usize) -> String {
    match r.below(10) {
        0 => "emails[type eq \"work\"].value".into(),
        1 => format!("emails[value eq \"{}\"].type", hostile_text(r, case)),
        2 => format!("{}.{}", hostile_text(r, case), hostile_text(r, case)),
        3 => format!(
            "{}:{}",
            urn(
                r,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ),
            r.pick(&[
                "manager",
                "manager.value",
                "employeeNumber",
                "é",
                "manager.é"
            ])
        ),
        4 => text_at(r, case, "name.givenName"),
        5 => {
            let depth = *r.pick(&[2, MAX_FILTER_DEPTH, 100, 1000]);
            format!(
                "emails[{}type eq \"w\"{}].value",
                "(".repeat(depth),
                ")".repeat(depth)
            )
        }
        6 => "a.".repeat(*r.pick(&[10, 1000, 5000])),
        7 => format!("roles[value eq \"{}\"]", hostile_text(r, case)),
        8 => r
            .pick(&[
                ":",
                ".",
                "[",
                "]",
                "[]",
                "emails[",
                "emails]",
                "emails[type eq]",
                "..",
                "urn:",
                "urn:x:",
            ])
            .to_string(),
        _ => format!("members[value eq \"{}\"]", hostile_text(r, case)),
    }
}

/// A PATCH request: a few rich operations, or (when `at_limits`) plain
/// ones up to and past the operation limit.
fn patch_ops(r: &mut Rng, case: usize, member: &str, at_limits: bool) -> Value {
    if at_limits && r.chance(10) {
        let n = *r.pick(&[MAX_PATCH_OPERATIONS, MAX_PATCH_OPERATIONS + 1]);
        let op = json!({"op": "replace", "path": "title", "value": "t"});
        return patch_op(Value::Array(vec![op; n]));
    }
    let n = 1 + r.below(4);
    let ops: Vec<Value> = (0..n)
        .map(|_| {
            let op = *r.pick(&["add", "Replace", "remove", "REMOVE", "copy", "", "addd"]);
            match r.below(5) {
                0 => json!({"op": op, "value": {hostile_text(r, case): odd_value(r, case),
                             "name.givenName": hostile_text(r, case), "active": "False"}}),
                1 => json!({"op": op, "path": "members", "value": [{"value": member}, {"value": member}, {"value": hostile_text(r, case)}]}),
                _ => json!({"op": op, "path": patch_path(r, case), "value": odd_value(r, case)}),
            }
        })
        .collect();
    patch_op(Value::Array(ops))
}

/// A filter: valid grammar with hostile pieces, many terms, deep nesting,
/// or bytes of a valid one mutated.
fn filter(r: &mut Rng, case: usize) -> String {
    let attr = |r: &mut Rng| -> String {
        r.pick(&[
            "userName",
            "USERNAME",
            "emails.value",
            "name.familyName",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:employeeNumber",
            "meta.lastModified",
            "active",
            "members.value",
            "é",
            "userNamé",
            "x.y.z",
        ])
        .to_string()
    };
    let value = |r: &mut Rng, case: usize| -> String {
        match r.below(5) {
            0 => format!("{:?}", hostile_text(r, case)),
            1 => r
                .pick(&[
                    "true",
                    "null",
                    "1e400",
                    "-0",
                    "\"2026-01-01T00:00:00Z\"",
                    "9223372036854775808",
                ])
                .to_string(),
            2 => "\"\\ud800\"".into(),
            _ => "\"a\"".into(),
        }
    };
    let op = |r: &mut Rng| {
        r.pick(&[
            "eq", "EQ", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "xx",
        ])
        .to_string()
    };
    let ws = |r: &mut Rng| {
        r.pick(&[" ", "  ", "\t", "\u{A0}", "\u{3000}", ""])
            .to_string()
    };
    match r.below(9) {
        0 => {
            // Thousands of terms: far over the length limit, and at it.
            let n = *r.pick(&[2, 100, 200, 1000, 5000]);
            (0..n)
                .map(|i| format!("userName eq \"u{i}\""))
                .collect::<Vec<_>>()
                .join(*r.pick(&[" or ", " and ", " OR "]))
        }
        1 => {
            let d = *r.pick(&[
                MAX_FILTER_DEPTH - 1,
                MAX_FILTER_DEPTH,
                MAX_FILTER_DEPTH + 1,
                100,
                1000,
                2000,
            ]);
            format!("{}userName pr{}", "(".repeat(d), ")".repeat(d))
        }
        2 => {
            let d = *r.pick(&[MAX_FILTER_DEPTH, MAX_FILTER_DEPTH + 1, 500, 1000]);
            format!("{}userName pr{}", "not (".repeat(d), ")".repeat(d))
        }
        3 => {
            let d = *r.pick(&[2, MAX_FILTER_DEPTH + 1, 300]);
            format!("{}value eq \"x\"{}", "emails[".repeat(d), "]".repeat(d))
        }
        4 => format!("{}{}{}{}{}", attr(r), ws(r), op(r), ws(r), value(r, case)),
        5 => format!(
            "{} {} {} and ({} pr or not ({} {} {}))",
            attr(r),
            op(r),
            value(r, case),
            attr(r),
            attr(r),
            op(r),
            value(r, case)
        ),
        6 => text_at(r, case, "userName eq \"a\" and title pr "),
        7 => "x".repeat(*r.pick(&[MAX_FILTER_LEN, MAX_FILTER_LEN + 1, 10 * MAX_FILTER_LEN])),
        _ => {
            let mut f = r#"emails[type eq "work" and value co "@fuzz"] or (name.familyName sw "Z" and not (active eq true))"#
                .as_bytes()
                .to_vec();
            for _ in 0..1 + r.below(3) {
                let i = r.below(f.len());
                f[i] = b"()[]\" .:x\\"[r.below(10)];
            }
            String::from_utf8_lossy(&f).to_string()
        }
    }
}

/// `attributes`/`excludedAttributes`: names with hostile text, thousands.
fn attribute_list(r: &mut Rng, case: usize) -> String {
    match r.below(5) {
        0 => "abcé".into(),
        1 => {
            let n = *r.pick(&[10, 1000, 5000]);
            (0..n)
                .map(|i| format!("a{i}"))
                .collect::<Vec<_>>()
                .join(",")
        }
        2 => format!(
            "userName,{},emails.value",
            text_at(r, case, "name.givenName")
        ),
        3 => format!(
            "{}:{}",
            urn(r, "urn:ietf:params:scim:schemas:core:2.0:User"),
            hostile_text(r, case)
        ),
        _ => r
            .pick(&[
                "",
                ",",
                ",,",
                "members",
                "meta.version",
                "emails[type eq \"work\"]",
                "..",
                ":",
            ])
            .to_string(),
    }
}

/// A list's query string: every parameter from a hostile set.
fn list_query(r: &mut Rng, case: usize) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if r.chance(2) {
        q.push(("filter".into(), filter(r, case)));
    }
    if r.chance(3) {
        let name = r.pick(&["attributes", "excludedAttributes"]).to_string();
        q.push((name, attribute_list(r, case)));
    }
    if r.chance(3) {
        let v = match r.below(3) {
            0 => hostile_text(r, case),
            1 => attribute_list(r, case),
            _ => r
                .pick(&[
                    "userName",
                    "meta.created",
                    "emails",
                    "members",
                    "name.givenName",
                ])
                .to_string(),
        };
        q.push(("sortBy".into(), v));
        q.push((
            "sortOrder".into(),
            r.pick(&["ascending", "DESCENDING", "sideways", ""])
                .to_string(),
        ));
    }
    if r.chance(3) {
        let start = r.pick(&[
            "0",
            "1",
            "-1",
            "9223372036854775807",
            "9223372036854775806",
            "99999999999999999999",
            "1.5",
            "x",
            "",
        ]);
        q.push(("startIndex".into(), start.to_string()));
    }
    if r.chance(3) {
        let page = (MAX_PAGE_SIZE + 1).to_string();
        let count = r
            .pick(&[
                "0",
                "-5",
                "1",
                "1000",
                page.as_str(),
                "9223372036854775807",
                "1e3",
                "é",
            ])
            .to_string();
        q.push(("count".into(), count));
    }
    q
}

/// An id: ours, another tenant's, deleted, or not an id at all.
fn resource_id(r: &mut Rng, case: usize, ids: &Ids, group: bool) -> String {
    match r.below(7) {
        0 | 1 => {
            if group {
                ids.group.clone()
            } else {
                ids.user.clone()
            }
        }
        2 => {
            if group {
                ids.foreign_group.clone()
            } else {
                ids.foreign_user.clone()
            }
        }
        3 => ids.deleted_user.clone(),
        4 => ids.user.to_uppercase(),
        5 => format!("{{{}}}", ids.user),
        _ => urlencode(&hostile_text(r, case)),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A /Bulk request: around the operation limit, each small but together
/// large, references that chain, fail or circle.
fn bulk(r: &mut Rng, case: usize, ids: &Ids) -> Value {
    let n = match r.below(12) {
        0 => MAX_BULK_OPERATIONS,
        1 => MAX_BULK_OPERATIONS + 1,
        _ => 1 + r.below(6),
    };
    let pad = if r.chance(6) {
        (MAX_BULK_PAYLOAD / n.max(1)).saturating_sub(400)
    } else {
        0
    };
    let ops: Vec<Value> = (0..n)
        .map(|i| match r.below(6) {
            0 => {
                let mut u = okta_user(r, case * 10_000 + i);
                u["padding"] = json!("p".repeat(pad));
                json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": u})
            }
            1 => json!({"method": "PATCH", "path": format!("/Users/bulkId:b{}", r.below(n)), "data": patch_ops(r, case, &ids.user, false)}),
            2 => json!({"method": "POST", "path": "/Groups", "bulkId": format!("g{i}"),
                        "data": {"displayName": hostile_text(r, case), "members": [{"value": format!("bulkId:b{}", r.below(n))}]}}),
            3 => json!({"method": r.pick(&["DELETE", "delete", "GET", "PUT", ""]).to_string(),
                        "path": format!("/Users/{}", resource_id(r, case, ids, false))}),
            4 => json!({"method": "POST", "path": hostile_text(r, case), "bulkId": hostile_text(r, case), "data": odd_value(r, case)}),
            _ => odd_value(r, case),
        })
        .collect();
    let mut b = json!({"schemas": [urn(r, "urn:ietf:params:scim:api:messages:2.0:BulkRequest")], "Operations": ops});
    if r.chance(3) {
        b["failOnErrors"] = odd_value(r, case);
    }
    if r.chance(5) {
        mutate(&mut b, r, case);
    }
    b
}

/// A JSON document as text, with what a `Value` cannot hold: duplicate
/// keys, escaped lone surrogates, numbers out of range, nesting, BOMs,
/// and bodies cut short.
fn raw_json(r: &mut Rng, case: usize) -> String {
    match r.below(10) {
        0 => r#"{"userName":"a@x.example","userName":"b@x.example","emails":[{"value":"a@x.example"}]}"#.into(),
        1 => r#"{"userName":"\ud800@x.example","emails":[{"value":"\udc00"}]}"#.into(),
        2 => r#"{"userName":"n@x.example","emails":[{"value":"n@x.example"}],"x":1e400}"#.into(),
        3 => {
            let d = *r.pick(&[31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 100_000]);
            format!(r#"{{"userName":"d@x.example","x":{}1{}}}"#, "[".repeat(d), "]".repeat(d))
        }
        4 => {
            let d = *r.pick(&[32, 64, 128, 129, 10_000]);
            format!(r#"{{"userName":"d@x.example","x":{}1{}}}"#, "{\"a\":".repeat(d), "}".repeat(d))
        }
        5 => "\u{FEFF}{\"userName\":\"bom@x.example\"}".into(),
        6 => r#"{"userName":"cut@x.example","emails":[{"val"#.into(),
        7 => r#"{"USERNAME":"case@x.example","UserName":"case2@x.example","EMAILS":[{"VALUE":"case@x.example"}]}"#.into(),
        8 => format!("{{\"userName\":\"{}\"}}", hostile_text(r, case).replace(['"', '\\'], "")),
        _ => r.pick(&["", " ", "null", "[]", "\"str\"", "0", "{", "}", "{}{}", "\u{0}"]).to_string(),
    }
}

/// A body of exactly `len` bytes: a user padded by an attribute outside
/// the schema.
fn user_of_len(email: &str, len: usize) -> String {
    let head = format!(r#"{{"userName":"{email}","emails":[{{"value":"{email}"}}],"padding":""#);
    let pad = len.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "p".repeat(pad))
}

/// A /Bulk body of exactly `len` bytes.
fn bulk_of_len(len: usize) -> String {
    let head = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"DELETE","path":"/Users/x","padding":""#;
    let pad = len.saturating_sub(head.len() + 4);
    format!("{head}{}\"}}]}}", "p".repeat(pad))
}

/// Headers: mostly sane, often hostile.
fn headers(r: &mut Rng, case: usize, token: &str) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = Vec::new();
    let v = |s: &str| HeaderValue::from_str(s).ok();
    let bytes = |b: &[u8]| HeaderValue::from_bytes(b).ok();
    let auth = match r.below(14) {
        0 => v(&format!("bearer {token}")),
        1 => v(&format!("BEARER   {token}  ")),
        2 => v(&format!("Bearer\t{token}")),
        3 => v(&format!(
            "Bearer {}",
            "t".repeat(*r.pick(&[511, 512, 513, 10_000]))
        )),
        4 => bytes(format!("Bearer {token}\u{e9}").as_bytes()),
        5 => bytes(b"Bearer \xe9\xff\x80"),
        6 => v("Basic dXNlcjpwYXNz"),
        7 => v(""),
        8 => None,
        _ => v(&format!("Bearer {token}")),
    };
    if let Some(a) = auth {
        h.push((reqwest::header::AUTHORIZATION, a));
    }
    if r.chance(10) {
        // Repeated: which one counts must not matter for safety.
        if let Some(a) = v("Bearer wrong") {
            h.push((reqwest::header::AUTHORIZATION, a));
        }
    }
    let ct = match r.below(10) {
        0 => None,
        1 => v("application/json; charset=utf-8"),
        2 => v("APPLICATION/SCIM+JSON"),
        3 => v("text/plain"),
        4 => v("multipart/form-data; boundary=x"),
        5 => bytes(b"application/scim+json; charset=\xe9"),
        6 => v("application/json;;;"),
        _ => v("application/scim+json"),
    };
    if let Some(c) = ct {
        h.push((reqwest::header::CONTENT_TYPE, c));
    }
    if r.chance(4) {
        let etag = match r.below(8) {
            0 => "W/\"1\"".to_string(),
            1 => "\"1\"".to_string(),
            2 => "*".to_string(),
            3 => "W/\"1\", \"2\", W/\"3\"".to_string(),
            4 => "garbage".to_string(),
            5 => format!("W/\"{}\"", "9".repeat(*r.pick(&[20, 8000]))),
            6 => (0..500)
                .map(|i| format!("W/\"{i}\""))
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        let name = if r.chance(2) {
            reqwest::header::IF_MATCH
        } else {
            reqwest::header::IF_NONE_MATCH
        };
        if let Some(e) = v(&etag) {
            h.push((name, e));
        }
    }
    if r.chance(6) {
        let p = *r.pick(&[
            "respond-async",
            "return=minimal, respond-async",
            "RESPOND-ASYNC; wait=10",
            "garbage",
            "respond-asynchronously",
        ]);
        if let Some(p) = v(p) {
            h.push((HeaderName::from_static("prefer"), p));
        }
    }
    if r.chance(4) {
        const ID_HEADERS: [&str; 3] = ["x-request-id", "client-request-id", "x-okta-request-id"];
        let name = HeaderName::from_static(ID_HEADERS[r.below(ID_HEADERS.len())]);
        let id = match r.below(4) {
            0 => v(&"r".repeat(*r.pick(&[128, 129, 8000]))),
            1 => bytes(
                hostile_text(r, case)
                    .replace(['\r', '\n', '\0'], "")
                    .as_bytes(),
            ),
            2 => v(""),
            _ => v(&format!("req-{case}")),
        };
        if let Some(id) = id {
            h.push((name.clone(), id.clone()));
            if r.chance(3) {
                h.push((name, id));
            }
        }
    }
    if r.chance(30) {
        for i in 0..100 {
            if let (Ok(n), Some(val)) = (
                HeaderName::from_bytes(format!("x-junk-{i}").as_bytes()),
                v("j"),
            ) {
                h.push((n, val));
            }
        }
    }
    h
}

/// Ids the generator aims at.
#[derive(Clone)]
struct Ids {
    user: String,
    group: String,
    deleted_user: String,
    foreign_user: String,
    foreign_group: String,
}

/// One request to send.
struct Case {
    class: &'static str,
    method: Method,
    /// Relative to the tenant's base URL, query included.
    path: String,
    body: Option<Vec<u8>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A status the case must get, when the class decides it.
    expect: Option<u16>,
}

/// The longest URL sent: a client cannot send more (the `http` crate's
/// limit is 64 KiB), so longer values are cut to fit (on a character
/// boundary), still far past every limit of the server's.
const MAX_URL: usize = 60_000;

fn with_query(path: &str, q: &[(String, String)]) -> String {
    let mut url = path.to_string();
    for (i, (k, v)) in q.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&urlencode(k));
        url.push('=');
        for c in v.chars() {
            let mut buf = [0u8; 4];
            let encoded = urlencode(c.encode_utf8(&mut buf));
            if url.len() + encoded.len() > MAX_URL {
                break;
            }
            url.push_str(&encoded);
        }
    }
    url
}

fn generate(case: usize, token: &str, ids: &Ids) -> Case {
    let mut r = Rng::for_case(case);
    let json_body = |v: &Value| Some(v.to_string().into_bytes());
    let (class, method, path, body, expect): (
        &'static str,
        Method,
        String,
        Option<Vec<u8>>,
        Option<u16>,
    ) = match r.below(100) {
        0..=11 => {
            let mut u = okta_user(&mut r, case);
            for _ in 0..1 + r.below(3) {
                mutate(&mut u, &mut r, case);
            }
            let (m, p) = if r.chance(3) {
                (
                    Method::PUT,
                    format!("/Users/{}", resource_id(&mut r, case, ids, false)),
                )
            } else {
                (Method::POST, "/Users".to_string())
            };
            ("user body mutated", m, p, json_body(&u), None)
        }
        12..=19 => {
            let u = hostile_user(&mut r, case);
            (
                "user body hostile text",
                Method::POST,
                "/Users".into(),
                json_body(&u),
                None,
            )
        }
        20..=29 => {
            let id = resource_id(&mut r, case, ids, false);
            let ops = patch_ops(&mut r, case, &ids.foreign_user, true);
            (
                "user PATCH",
                Method::PATCH,
                format!("/Users/{id}"),
                json_body(&ops),
                None,
            )
        }
        30..=35 => {
            let id = resource_id(&mut r, case, ids, true);
            let member = if r.chance(2) {
                ids.foreign_user.clone()
            } else {
                ids.user.clone()
            };
            let ops = patch_ops(&mut r, case, &member, true);
            (
                "group PATCH",
                Method::PATCH,
                format!("/Groups/{id}"),
                json_body(&ops),
                None,
            )
        }
        36..=40 => {
            let n = *r.pick(&[0, 1, 2, 100, 1000, 1001, 10_000]);
            let members: Vec<Value> = (0..n)
                .map(|i| match i % 4 {
                    0 => json!({"value": ids.user}),
                    1 => json!({"value": ids.foreign_user}),
                    2 => json!({"value": uuid::Uuid::from_u64_pair(r.next(), r.next())}),
                    _ => json!({"value": hostile_text(&mut r, case)}),
                })
                .collect();
            let mut g = json!({"schemas": [urn(&mut r, "urn:ietf:params:scim:schemas:core:2.0:Group")],
                                   "displayName": hostile_text(&mut r, case), "members": members});
            if r.chance(3) {
                mutate(&mut g, &mut r, case);
            }
            let (m, p) = if r.chance(2) {
                (
                    Method::PUT,
                    format!("/Groups/{}", resource_id(&mut r, case, ids, true)),
                )
            } else {
                (Method::POST, "/Groups".to_string())
            };
            ("group body", m, p, json_body(&g), None)
        }
        41..=48 => {
            let b = bulk(&mut r, case, ids);
            ("bulk", Method::POST, "/Bulk".into(), json_body(&b), None)
        }
        49..=62 => {
            let endpoint = *r.pick(&["/Users", "/Groups", "/users", "/Users/", "/Groups/"]);
            let q = list_query(&mut r, case);
            (
                "list query",
                Method::GET,
                with_query(endpoint, &q),
                None,
                None,
            )
        }
        63..=66 => {
            let mut search = json!({"schemas": [urn(&mut r, "urn:ietf:params:scim:api:messages:2.0:SearchRequest")],
                    "filter": filter(&mut r, case), "attributes": [attribute_list(&mut r, case)],
                    "startIndex": odd_number(&mut r), "count": odd_number(&mut r), "sortBy": hostile_text(&mut r, case)});
            if r.chance(2) {
                mutate(&mut search, &mut r, case);
            }
            let endpoint = *r.pick(&["/Users/.search", "/Groups/.search", "/.search"]);
            (
                "search body",
                Method::POST,
                endpoint.into(),
                json_body(&search),
                None,
            )
        }
        67..=72 => {
            let group = r.chance(3);
            let id = resource_id(&mut r, case, ids, group);
            let kind = if group { "Groups" } else { "Users" };
            let q = if r.chance(2) {
                vec![("attributes".to_string(), attribute_list(&mut r, case))]
            } else {
                vec![]
            };
            let m = if r.chance(4) {
                Method::DELETE
            } else {
                Method::GET
            };
            let m = if m == Method::DELETE && id == ids.user {
                Method::GET
            } else {
                m
            };
            (
                "by id",
                m,
                with_query(&format!("/{kind}/{id}"), &q),
                None,
                None,
            )
        }
        73..=80 => {
            let endpoint = *r.pick(&["/Users", "/Groups", "/Bulk", "/.search", "/Users/.search"]);
            (
                "raw JSON",
                Method::POST,
                endpoint.into(),
                Some(raw_json(&mut r, case).into_bytes()),
                None,
            )
        }
        81..=83 => {
            let endpoint = *r.pick(&[
                "/ServiceProviderConfig",
                "/ResourceTypes",
                "/ResourceTypes/User",
                "/Schemas",
                "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
                "/Schemas/é",
                "/Users//x",
                "/Users/%00",
                "/Nope",
            ]);
            let m = r
                .pick(&[
                    Method::GET,
                    Method::POST,
                    Method::OPTIONS,
                    Method::HEAD,
                    Method::PUT,
                ])
                .clone();
            ("other endpoints", m, endpoint.into(), None, None)
        }
        84 => {
            let email = format!("limit{case}@x.example");
            if r.chance(2) {
                (
                    "body at the limit",
                    Method::POST,
                    "/Users".into(),
                    Some(user_of_len(&email, body_limit()).into_bytes()),
                    None,
                )
            } else {
                (
                    "body at the limit + 1",
                    Method::POST,
                    "/Users".into(),
                    Some(user_of_len(&email, body_limit() + 1).into_bytes()),
                    Some(413),
                )
            }
        }
        85 => {
            if r.chance(2) {
                (
                    "bulk at the limit",
                    Method::POST,
                    "/Bulk".into(),
                    Some(bulk_of_len(MAX_BULK_PAYLOAD).into_bytes()),
                    None,
                )
            } else {
                (
                    "bulk at the limit + 1",
                    Method::POST,
                    "/Bulk".into(),
                    Some(bulk_of_len(MAX_BULK_PAYLOAD + 1).into_bytes()),
                    Some(413),
                )
            }
        }
        86..=89 => {
            let long = "a".repeat(*r.pick(&[1000, 8000, 60_000]));
            let p = match r.below(3) {
                0 => format!("/Users/{long}"),
                1 => with_query("/Users", &[("filter".into(), long)]),
                _ => with_query("/Users", &[("attributes".into(), long)]),
            };
            ("long URL", Method::GET, p, None, None)
        }
        _ => {
            // Everything sane but the headers.
            let u = okta_user(&mut r, case);
            let (m, p, b) = match r.below(3) {
                0 => (Method::POST, "/Users".to_string(), json_body(&u)),
                1 => (Method::GET, format!("/Users/{}", ids.user), None),
                _ => (
                    Method::PATCH,
                    format!("/Users/{}", ids.user),
                    json_body(&patch_op(
                        json!([{"op": "replace", "path": "title", "value": "h"}]),
                    )),
                ),
            };
            ("hostile headers", m, p, b, None)
        }
    };
    let headers = match expect {
        // A case whose status is decided by its body gets sane headers
        // (hostile ones may be answered first: 401, 431).
        Some(_) => [
            (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
            (
                reqwest::header::CONTENT_TYPE,
                "application/scim+json".into(),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, HeaderValue::from_str(&v).ok()?)))
        .collect(),
        None => headers(&mut r, case, token),
    };
    Case {
        class,
        method,
        path,
        body,
        headers,
        expect,
    }
}

/// What went wrong with one case.
fn check(case: usize, c: &Case, answer: Result<(u16, String), String>) -> Option<String> {
    let (status, body) = match answer {
        Err(e) => return Some(format!("case {case} ({}): no answer: {e}", c.class)),
        Ok(a) => a,
    };
    let short: String = body.chars().take(300).collect();
    if status >= 500 && status != 503 {
        return Some(format!("case {case} ({}): {status} {short}", c.class));
    }
    if c.expect.is_some_and(|e| e != status) {
        return Some(format!(
            "case {case} ({}): {status}, expected {:?}: {short}",
            c.class, c.expect
        ));
    }
    None
}

async fn send(t: &Tenant, c: &Case) -> Result<(u16, String), String> {
    let url = format!("{}{}", t.base, c.path);
    let mut req = t.http.request(c.method.clone(), &url);
    for (k, v) in &c.headers {
        req = req.header(k.clone(), v.clone());
    }
    if let Some(b) = &c.body {
        req = req.body(b.clone());
    }
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading the answer: {e:?}"))?;
    Ok((status, body))
}

/// Protocol-level cases on a raw connection: a body that ends early, a
/// chunked body, a chunked body with a bad chunk size.
async fn raw_case(
    port: u16,
    path: &str,
    token: &str,
    case: usize,
) -> Result<(u16, String), String> {
    let body = r#"{"userName":"raw@x.example","emails":[{"value":"raw@x.example"}]}"#;
    let request = match case % 3 {
        0 => format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len() + 50,
            body
        ),
        1 => format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            10,
            &body[..10],
            body.len() - 10,
            &body[10..]
        ),
        _ => format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{body}\r\n0\r\n\r\n"
        ),
    };
    let ends_early = matches!(case % 3, 0);
    let response = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        if ends_early {
            // The client stops sending (and says so) before its body ends.
            stream
                .shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
        }
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| e.to_string())?;
        Ok(response)
    })
    .await
    .map_err(|e| e.to_string())??;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    Ok((status, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_and_hostile_requests_never_panic_5xx_or_write_partially() {
    let cases: usize = std::env::var("SCIMFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let stack = Stack::new("fuzz")
        .with_env("SCIMFLOW_TENANT_RATE", "1000000")
        .with_env("SCIMFLOW_TENANT_BURST", "1000000")
        // Every hostile Authorization header is to reach the token lookup,
        // not the failure throttle (tests/e2e/bounds.rs covers that).
        .with_env("SCIMFLOW_AUTH_FAILURE_LIMIT", "100000000")
        .started()
        .await;
    let t = stack.tenant("");
    let other = stack.tenant("");
    let mut r = Rng::for_case(usize::MAX);
    let created = |reply: crate::common::Reply| {
        assert!(reply.status.is_success(), "{}", reply.body);
        reply.body["id"].as_str().expect("an id").to_string()
    };
    let user = created(t.post("/Users", &okta_user(&mut r, usize::MAX)).await);
    let deleted_user = created(t.post("/Users", &okta_user(&mut r, usize::MAX - 1)).await);
    assert_eq!(
        t.delete(&format!("/Users/{deleted_user}")).await.status,
        204
    );
    let group = created(t.post("/Groups", &json!({"displayName": "fuzz"})).await);
    let foreign_user = created(
        other
            .post("/Users", &okta_user(&mut r, usize::MAX - 2))
            .await,
    );
    let foreign_group = created(
        other
            .post("/Groups", &json!({"displayName": "other"}))
            .await,
    );
    let ids = Ids {
        user,
        group,
        deleted_user,
        foreign_user,
        foreign_group,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(Mutex::new(Map::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let port = stack.http_port;
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (t, ids, next, counts, failures) = (
                t.clone(),
                ids.clone(),
                next.clone(),
                counts.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let case = next.fetch_add(1, Ordering::Relaxed);
                    if case >= cases {
                        return;
                    }
                    let c = generate(case, &t.token, &ids);
                    let answer = if case % 97 == 0 {
                        let path = format!("/scim/v2/{}/Users", t.id);
                        raw_case(port, &path, &t.token, case / 97).await
                    } else {
                        send(&t, &c).await
                    };
                    if let Ok((status, _)) = &answer {
                        if let Ok(mut counts) = counts.lock() {
                            let e = counts.entry(status.to_string()).or_insert(json!(0));
                            *e = json!(e.as_u64().unwrap_or(0) + 1);
                        }
                    }
                    let c = if case % 97 == 0 {
                        Case {
                            class: "raw protocol",
                            expect: None,
                            ..c
                        }
                    } else {
                        c
                    };
                    if let Some(f) = check(case, &c, answer) {
                        if let Ok(mut failures) = failures.lock() {
                            failures.push(f);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("fuzz worker");
    }
    let counts = counts
        .lock()
        .map(|c| Value::Object(c.clone()))
        .unwrap_or_default();
    println!("fuzz: {cases} cases; answers by status: {counts}");
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    // Failures by class and kind ("no answer" or a status), then the first.
    let mut kinds = std::collections::BTreeMap::new();
    for f in &failures {
        let kind = f
            .split_once("): ")
            .map(|(case, rest)| {
                let class = case.split_once(" (").map_or(case, |(_, c)| c);
                let what = if rest.starts_with("no answer") {
                    "no answer"
                } else {
                    rest.split([',', ' ']).next().unwrap_or_default()
                };
                format!("{class}: {what}")
            })
            .unwrap_or_default();
        *kinds.entry(kind).or_insert(0usize) += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed, by class: {kinds:?}; the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Both processes still serve: fresh writes go all the way through, for
    // the fuzzed tenant and for another one. (A fresh user: the cases may
    // have deleted the ones they aimed at.)
    let fresh = created(t.post("/Users", &okta_user(&mut r, usize::MAX - 3)).await);
    let after = t
        .patch(
            &format!("/Users/{fresh}"),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "alive"}])),
        )
        .await;
    assert_eq!(after.status, 200, "{}", after.body);
    let email = "after@other.example";
    let second = other
        .post(
            "/Users",
            &json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]}),
        )
        .await;
    assert_eq!(
        second.status, 201,
        "another tenant's write: {}",
        second.body
    );
    let patched = other
        .patch(
            &format!("/Users/{}", ids.foreign_user),
            &patch_op(json!([{"op": "replace", "path": "title", "value": "unaffected"}])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    // No partial write: nothing failed inside the processor, and every
    // stored user's columns agree with its document.
    assert_eq!(
        stack.count("SELECT count(*) AS n FROM dead_letters"),
        0,
        "no command failed to apply"
    );
    let inconsistent = stack.count(
        "SELECT count(*) AS n FROM users WHERE user_name <> attrs->>'userName'
           OR primary_role NOT IN ('recorder','recorder_and_voice','analyst','listener')
           OR permission NOT IN ('user','manager','admin')
           OR (primary_role = 'listener' AND permission <> 'user')
           OR primary_email <> lower(primary_email)",
    );
    assert_eq!(inconsistent, 0);
}

/// The generator itself: deterministic, every class drawn, the sized
/// bodies exactly their size, and a hostile character at every byte
/// offset of a name of each length. No stack needed.
#[test]
fn the_generator_reaches_every_class_and_every_offset() {
    let ids = Ids {
        user: uuid::Uuid::now_v7().to_string(),
        group: uuid::Uuid::now_v7().to_string(),
        deleted_user: uuid::Uuid::now_v7().to_string(),
        foreign_user: uuid::Uuid::now_v7().to_string(),
        foreign_group: uuid::Uuid::now_v7().to_string(),
    };
    let mut classes = std::collections::BTreeMap::new();
    for case in 0..5_000 {
        let c = generate(case, "token", &ids);
        *classes.entry(c.class).or_insert(0usize) += 1;
        let again = generate(case, "token", &ids);
        assert!(
            c.path == again.path && c.body == again.body,
            "case {case} is not reproducible"
        );
    }
    for class in [
        "user body mutated",
        "user body hostile text",
        "user PATCH",
        "group PATCH",
        "group body",
        "bulk",
        "list query",
        "search body",
        "by id",
        "raw JSON",
        "other endpoints",
        "body at the limit",
        "body at the limit + 1",
        "bulk at the limit",
        "bulk at the limit + 1",
        "long URL",
        "hostile headers",
    ] {
        assert!(
            classes.get(class).is_some_and(|n| *n > 0),
            "{class}: {classes:?}"
        );
    }
    for (len, expected) in [
        (body_limit(), body_limit()),
        (body_limit() + 1, body_limit() + 1),
    ] {
        assert_eq!(user_of_len("a@x.example", len).len(), expected);
        serde_json::from_str::<Value>(&user_of_len("a@x.example", len)).expect("JSON");
    }
    for len in [MAX_BULK_PAYLOAD, MAX_BULK_PAYLOAD + 1] {
        assert_eq!(bulk_of_len(len).len(), len);
        serde_json::from_str::<Value>(&bulk_of_len(len)).expect("JSON");
    }
    // Every offset of a 64-byte name gets the character, over the cases.
    let mut offsets = std::collections::BTreeSet::new();
    for case in 0..50_000 {
        let mut r = Rng::for_case(case);
        let s = text_at(&mut r, case, "userName");
        if s.len() > 64 && s.len() <= 68 && !s.is_ascii() {
            if let Some(at) = s.find(|c: char| !c.is_ascii_alphabetic()) {
                offsets.insert(at);
            }
        }
    }
    assert!(
        (0..=64).all(|o| offsets.contains(&o)),
        "offsets reached in a 64-byte name: {offsets:?}"
    );
}
