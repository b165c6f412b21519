//! Property tests of the parsers that read client input: filters, PATCH
//! paths, PATCH requests and their application, User and Group bodies.
//! Generators draw from the classes of hostile input (multi-byte text at
//! every offset of a name, combining marks, zero-width and right-to-left
//! characters, NUL, escaped lone surrogates, whitespace of every kind, the
//! grammar's own punctuation), at sizes around every limit and far past
//! it, and nested to the limit and past it. What must hold: no panic, an
//! answer that is a precise SCIM error or a bounded result, and work
//! bounded by the input (over-limit input is refused naming the limit;
//! in-limit input parses into a tree of bounded height).
//!
//! The generators are public under the feature `strategies`, so that the
//! store can check its translation of every filter these parse.

// Under `strategies` alone, only the generators are used.
#![cfg_attr(not(test), allow(dead_code, unused_imports))]

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Map, Value};

use super::filter::{matches, parse_filter, MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS};
use super::group::{normalize_group, plan_group_patch, MAX_MEMBERS_PER_REQUEST};
use super::json::{check_depth, MAX_JSON_DEPTH};
use super::patch::{apply_user_patch, check_user_patch, parse_patch_request, patched_user};
use super::path::parse_path;
use super::user::{normalize_user, MAX_MULTI_VALUES, MAX_STRING_LEN};
use super::{ScimError, ScimType, ENTERPRISE_USER_SCHEMA};

/// The tallest tree the parser can build: each level of nesting is at
/// most an `or` node, an `and` node and the nesting node itself.
const MAX_HEIGHT: usize = 3 * (MAX_FILTER_DEPTH + 1) + 1;

/// Characters that break parsers, and the grammar's own.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        2 => any::<char>(),
        3 => select(vec![
            'é', '€', '😀', '\u{301}', '\u{200B}', '\u{200D}', '\u{FEFF}', '\u{202E}', '\u{200F}',
            '\u{0}', '\u{FFFD}', 'ß', 'İ', 'ﬃ', '\u{3000}', '\u{A0}', '\u{85}', '\t', '\n', ' ',
        ]),
        4 => select(vec![
            '(', ')', '[', ']', '"', '\\', '.', ':', ',', 'a', 'e', 'q', 'o', 'r', 'n', 't', 'p',
            '$', '-', '_', '1', 'u',
        ]),
    ]
}

fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    vec(hostile_char(), 0..max).prop_map(|c| c.into_iter().collect())
}

/// Put `c` at character boundary `at` of `s`: with an ASCII `s`, every
/// byte offset.
fn insert_at(s: &str, at: Index, c: char) -> String {
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let i = bounds[at.index(bounds.len())];
    let (head, tail) = s.split_at(i);
    format!("{head}{c}{tail}")
}

fn multi_byte() -> impl Strategy<Value = char> {
    select(vec![
        'é', '€', '😀', '\u{301}', '\u{200B}', '\u{202E}', '\u{0}', 'İ', '\u{FFFD}',
    ])
}

const NAMES: &[&str] = &[
    "userName",
    "emails",
    "emails.value",
    "name.givenName",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "members",
    "meta.created",
    "type",
    "value",
    "primary",
    "phoneNumbers",
    "roles",
];

/// Pieces of the filter grammar, and hostile text among them.
fn filter_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(NAMES).prop_map(String::from),
        3 => select(vec![
            "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not", "EQ",
            "And", "NOT",
        ])
        .prop_map(String::from),
        3 => select(vec!["(", ")", "[", "]", " ", "  ", "\t", "\u{3000}", "", "."])
            .prop_map(String::from),
        2 => select(vec![
            r#""work""#, r#""\ud800""#, r#""\udc00\ud800""#, r#""\u0000""#, r#""a\"b""#,
            r#""\\""#, "true", "false", "null", "42", "1e400", "-0", r#""é€😀""#,
            "\"\u{301}\u{200B}\"", r#""unterminated"#,
        ])
        .prop_map(String::from),
        1 => hostile_text(12),
    ]
}

/// Filter-shaped text: grammar pieces with or without spaces between, and
/// now and then a multi-byte character somewhere inside.
fn filter_text() -> impl Strategy<Value = String> {
    (
        vec(filter_token(), 0..30),
        any::<bool>(),
        proptest::option::of((any::<Index>(), multi_byte())),
    )
        .prop_map(|(tokens, spaced, insert)| {
            let s = tokens.join(if spaced { " " } else { "" });
            match insert {
                Some((at, c)) => insert_at(&s, at, c),
                None => s,
            }
        })
}

/// Valid filters and paths with one character put anywhere in them.
fn valid_with_insertion() -> impl Strategy<Value = String> {
    (
        select(vec![
            r#"userName eq "bjensen""#,
            r#"emails[type eq "work" and value co "@x.com"]"#,
            r#"emails[type eq "work"].value"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"#,
            r#"not (title pr) or meta.created gt "2020-01-01T00:00:00Z""#,
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            "name.familyName",
        ]),
        any::<Index>(),
        prop_oneof![multi_byte(), hostile_char()],
    )
        .prop_map(|(s, at, c)| insert_at(s, at, c))
}

/// Sizes around the limits: at one, one past it, and ten and a thousand
/// times past it.
fn size_near(limit: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        select(vec![
            0,
            1,
            limit - 1,
            limit,
            limit + 1,
            10 * limit,
            1000 * limit
        ]),
        0..2 * limit,
    ]
}

/// Chains and nestings of every kind, sized around the limits. The
/// second value is (terms, depth) as the filter grammar counts them.
fn shaped() -> impl Strategy<Value = (String, usize, usize)> {
    prop_oneof![
        size_near(MAX_FILTER_TERMS).prop_map(|n| (
            vec!["a pr"; n.max(1)].join(" or "),
            n.max(1),
            0
        )),
        size_near(MAX_FILTER_TERMS).prop_map(|n| (
            vec!["a eq 1"; n.max(1)].join(" and "),
            n.max(1),
            0
        )),
        size_near(MAX_FILTER_DEPTH).prop_map(|n| (
            format!("{}a pr{}", "(".repeat(n), ")".repeat(n)),
            1,
            n
        )),
        size_near(MAX_FILTER_DEPTH).prop_map(|n| (
            format!("{}a pr{}", "not (".repeat(n), ")".repeat(n)),
            1,
            n
        )),
        size_near(MAX_FILTER_DEPTH).prop_map(|n| (
            format!("{}a pr{}", "x[".repeat(n), "]".repeat(n)),
            n + 1,
            n
        )),
        size_near(MAX_FILTER_LEN).prop_map(|n| (format!("a eq \"{}\"", "é".repeat(n / 2)), 1, 0)),
    ]
}

/// Every string in `v`, and every multi-valued list's length.
fn strings_and_lists(v: &Value, strings: &mut Vec<String>, lists: &mut Vec<usize>) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => strings.push(s.clone()),
            Value::Array(items) => {
                lists.push(items.len());
                stack.extend(items);
            }
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
}

/// What every stored user satisfies: what a PUT of it would store is
/// itself, and no value is past a limit.
fn assert_storable(attrs: &Map<String, Value>) -> Result<(), TestCaseError> {
    let doc = Value::Object(attrs.clone());
    let again = normalize_user(&doc).map_err(|e| TestCaseError::fail(e.detail))?;
    prop_assert_eq!(&again.attrs, attrs);
    let (mut strings, mut lists) = (Vec::new(), Vec::new());
    strings_and_lists(&doc, &mut strings, &mut lists);
    prop_assert!(strings
        .iter()
        .all(|s| s.len() <= MAX_STRING_LEN && !s.contains('\0')));
    prop_assert!(lists.iter().all(|n| *n <= MAX_MULTI_VALUES));
    Ok(())
}

/// A precise SCIM error: a 4xx with a scimType (or a 404/409 status that
/// needs none) and a detail.
/// A refusal a client can act on: a 4xx naming what is wrong.
pub fn assert_precise(e: &ScimError) -> Result<(), TestCaseError> {
    prop_assert!((400..500).contains(&e.status), "{e:?}");
    prop_assert!(!e.detail.is_empty());
    prop_assert!(
        e.scim_type.is_some() || matches!(e.status, 404 | 409),
        "{e:?}"
    );
    Ok(())
}

fn check_filter(input: &str) -> Result<(), TestCaseError> {
    match parse_filter(input) {
        Ok(f) => {
            prop_assert!(input.len() <= MAX_FILTER_LEN);
            prop_assert!(f.height() <= MAX_HEIGHT, "height {}", f.height());
            let element = json!({"type": "work", "value": "a@x.com", "primary": true,
                                  "userName": "é€😀", "emails": [{"value": "x"}]});
            let _ = matches(&f, &element);
        }
        Err(e) => {
            prop_assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
            assert_precise(&e)?;
        }
    }
    Ok(())
}

fn check_path(input: &str) -> Result<(), TestCaseError> {
    match parse_path(input) {
        Ok(p) => {
            prop_assert!(input.len() <= MAX_FILTER_LEN);
            if let Some(f) = &p.filter {
                prop_assert!(f.height() <= MAX_HEIGHT);
            }
        }
        Err(e) => {
            prop_assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
            if input.len() > MAX_FILTER_LEN {
                prop_assert!(e.detail.contains("longer than 4096 bytes"), "{}", e.detail);
            }
        }
    }
    Ok(())
}

/// JSON values with hostile keys and strings, `depth` levels at most.
fn hostile_json(depth: u32) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => select(vec![
            "userName", "emails", "phoneNumbers", "name", "givenName", "value", "type", "primary",
            "active", "roles", "members", "displayName", "externalId", "manager", "title",
            "name.givenName", "emails[type eq \"work\"].value", ENTERPRISE_USER_SCHEMA,
            "urn:ietf:params:scim:schemas:core:2.0:User", "schemas", "id", "meta", "password",
            "Operations", "op", "path",
        ])
        .prop_map(String::from),
        1 => valid_with_insertion(),
        1 => hostile_text(10),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(1.5e300)),
        select(vec![
            "True",
            "false",
            "work",
            "a@x.com",
            "",
            "2819c223-7f76-453a-919d-413861904646"
        ])
        .prop_map(|s| json!(s)),
        hostile_text(16).prop_map(Value::String),
        size_near(MAX_STRING_LEN).prop_map(|n| json!("x".repeat(n.min(100_000)))),
    ];
    leaf.prop_recursive(depth, 64, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((key.clone(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn patch_op() -> impl Strategy<Value = Value> {
    let op = select(vec![
        "add", "replace", "remove", "Add", "REPLACE", "move", "",
    ]);
    let path = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        select(NAMES).prop_map(|p| Some(json!(p))),
        select(vec![
            r#"emails[type eq "work"].value"#,
            r#"phoneNumbers[type eq "fax"].value"#,
            r#"addresses[type eq "work" and primary eq true].streetAddress"#,
            r#"roles[primary eq "True"].value"#,
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            ENTERPRISE_USER_SCHEMA,
        ])
        .prop_map(|p| Some(json!(p))),
        valid_with_insertion().prop_map(|p| Some(json!(p))),
        filter_text().prop_map(|p| Some(json!(p))),
    ];
    let value = prop_oneof![
        hostile_json(3),
        size_near(MAX_MULTI_VALUES).prop_map(|n| {
            json!((0..n.min(5000))
                .map(|i| json!({"value": format!("+1 {i}")}))
                .collect::<Vec<_>>())
        }),
    ];
    (op, path, proptest::option::of(value)).prop_map(|(op, path, value)| {
        let mut m = Map::new();
        m.insert("op".into(), json!(op));
        if let Some(p) = path {
            m.insert("path".into(), p);
        }
        if let Some(v) = value {
            m.insert("value".into(), v);
        }
        Value::Object(m)
    })
}

fn base_user() -> Map<String, Value> {
    let phones: Vec<Value> = (0..99)
        .map(|i| json!({"value": format!("+1 {i}"), "type": "work"}))
        .collect();
    json!({
        "userName": "u@x.com",
        "active": true,
        "name": {"givenName": "A", "familyName": "B"},
        "emails": [{"value": "u@x.com", "type": "work", "primary": true}],
        "phoneNumbers": phones,
        ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m"}},
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// Raw JSON text with escaped lone surrogates, unbalanced and deep
/// nesting, and hostile text between.
fn raw_json() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            r#""userName""#,
            r#""u@x.com""#,
            r#""\ud800""#,
            r#""\udfff\ud800""#,
            r#""\u0000""#,
            r#""emails""#,
            r#""Operations""#,
            "null",
            "1e400",
            "-0",
            r#""op""#,
            r#""add""#,
            r#""value""#,
        ])
        .prop_map(String::from),
        hostile_text(6).prop_map(|s| format!("{s:?}")),
        size_near(MAX_JSON_DEPTH).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
    ];
    vec(token, 0..30).prop_map(|t| t.concat())
}

/// Filter text of every kind the tests draw: grammar-shaped, valid with a
/// hostile character inserted, and hostile text.
pub fn filter_input() -> impl Strategy<Value = String> {
    prop_oneof![filter_text(), valid_with_insertion(), hostile_text(64)]
}

#[cfg(test)]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn filters_parse_or_refuse_precisely(input in filter_input()) {
        check_filter(&input)?;
    }

    #[test]
    fn every_limit_is_enforced_and_named((input, terms, depth) in shaped()) {
        let result = parse_filter(&input);
        if input.len() > MAX_FILTER_LEN {
            let e = result.expect_err("over the length limit");
            prop_assert!(e.detail.contains("longer than 4096 bytes"), "{}", e.detail);
        } else if depth > MAX_FILTER_DEPTH {
            let e = result.expect_err("over the depth limit");
            prop_assert!(e.detail.contains("more than 32 levels"), "{}", e.detail);
        } else if terms > MAX_FILTER_TERMS {
            let e = result.expect_err("over the terms limit");
            prop_assert!(e.detail.contains("more than 100 terms"), "{}", e.detail);
        } else {
            let f = result.map_err(|e| TestCaseError::fail(e.detail))?;
            prop_assert!(f.height() <= MAX_HEIGHT);
        }
        // The same shapes as a PATCH path, where the brackets nest once more.
        check_path(&format!("emails[{input}].value"))?;
    }

    #[test]
    fn paths_parse_or_refuse_precisely(input in prop_oneof![filter_text(), valid_with_insertion(), hostile_text(64)]) {
        check_path(&input)?;
    }

    /// Any PATCH, applied to a user already near a list's cap: the request
    /// is refused precisely, or what it leaves is what a PUT would store.
    #[test]
    fn patches_apply_or_refuse_precisely(ops in vec(patch_op(), 1..6)) {
        let body = json!({ "Operations": ops });
        let parsed = match parse_patch_request(&body) {
            Ok(p) => p,
            Err(e) => return assert_precise(&e),
        };
        if let Err(e) = check_user_patch(&parsed) {
            assert_precise(&e)?;
        }
        match apply_user_patch(base_user(), &parsed).and_then(|(doc, _)| patched_user(doc)) {
            Ok(user) => assert_storable(&user.attrs)?,
            Err(e) => assert_precise(&e)?,
        }
        match plan_group_patch(&parsed) {
            Ok(plan) => {
                let named: usize = plan.members.iter().map(|c| c.len()).sum();
                prop_assert!(named <= MAX_MEMBERS_PER_REQUEST);
            }
            Err(e) => assert_precise(&e)?,
        }
    }

    /// Path-less PATCH values: every key is parsed with the request, so a
    /// request that parses never fails later for a key it carried.
    #[test]
    fn pathless_keys_are_read_with_the_request(value in hostile_json(3), op in select(vec!["add", "replace"])) {
        let body = json!({"Operations": [{"op": op, "value": value}]});
        if let Ok(parsed) = parse_patch_request(&body) {
            if let Err(e) = apply_user_patch(base_user(), &parsed) {
                prop_assert!(
                    !e.detail.starts_with("invalid path") && !e.detail.starts_with("a path is"),
                    "a key was read only when applied: {}", e.detail
                );
            }
        }
    }

    #[test]
    fn users_and_groups_normalise_or_refuse(body in hostile_json(4)) {
        match normalize_user(&body) {
            Ok(user) => assert_storable(&user.attrs)?,
            Err(e) => assert_precise(&e)?,
        }
        match normalize_group(&body) {
            Ok(group) => prop_assert!(group.members.is_none_or(|m| m.len() <= MAX_MEMBERS_PER_REQUEST)),
            Err(e) => assert_precise(&e)?,
        }
    }

    /// Raw bodies, lone surrogate escapes and nesting included: the depth
    /// check and the parsers answer, and what passes the check decodes.
    #[test]
    fn raw_bodies_are_checked_before_parsing(text in raw_json()) {
        if check_depth(text.as_bytes()).is_ok() {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if let Err(e) = normalize_user(&v) {
                    assert_precise(&e)?;
                }
                if let Err(e) = parse_patch_request(&v) {
                    assert_precise(&e)?;
                }
            }
        }
    }
}
