//! SCIM filters translated to SQL over the `users` and `groups` tables
//! (a group's `members` through `group_members`), with bound
//! parameters (never interpolated values). Attribute names are resolved
//! against the schema tables; an unknown attribute is `invalidFilter`.
//!
//! caseExact follows RFC 7643: `id` and `externalId` compare exactly,
//! everything else case-insensitively.
//!
//! Translation recurses once per level of the filter's tree, whose height
//! the parser bounds (`scim::filter`: `and`/`or` chains are one node each,
//! nesting is at most `MAX_FILTER_DEPTH`), so it cannot exhaust the stack.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, BoxedSqlQuery, Query, QueryFragment, QueryId};
use diesel::sql_types::{self, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use uuid::Uuid;

use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{self, AttrDef, AttrType, ENTERPRISE_ATTRS, USER_ATTRS};
use crate::scim::{ScimError, ENTERPRISE_USER_SCHEMA};

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Bool(bool),
    BigInt(i64),
    Uuid(Uuid),
    Timestamp(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Sql(String),
    Bind(Bind),
}

/// SQL text with bind parameters, numbered only when the query is built,
/// so fragments compose freely.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlFragment {
    parts: Vec<Part>,
}

impl SqlFragment {
    pub fn push(&mut self, sql: &str) {
        self.parts.push(Part::Sql(sql.to_string()));
    }
    pub fn push_bind(&mut self, b: Bind) {
        self.parts.push(Part::Bind(b));
    }
    pub fn append(&mut self, other: SqlFragment) {
        self.parts.extend(other.parts);
    }
    /// The SQL text with `$n` placeholders, for tests and logs.
    pub fn text(&self) -> String {
        let mut n = 0;
        self.parts
            .iter()
            .map(|p| match p {
                Part::Sql(s) => s.clone(),
                Part::Bind(_) => {
                    n += 1;
                    format!("${n}")
                }
            })
            .collect()
    }
    /// Run as a statement the connection keeps prepared, keyed by its SQL
    /// text: PostgreSQL then parses and plans it once per connection (for
    /// a `userName eq` lookup, planning was three times the execution).
    /// Only for texts of a bounded variety: each stays prepared for the
    /// connection's life.
    pub fn into_prepared(self) -> Prepared {
        Prepared(self)
    }

    pub fn into_query(self) -> BoxedSqlQuery<'static, Pg, diesel::query_builder::SqlQuery> {
        let mut q = diesel::sql_query(self.text()).into_boxed::<Pg>();
        for part in self.parts {
            if let Part::Bind(b) = part {
                q = match b {
                    Bind::Text(s) => q.bind::<sql_types::Text, _>(s),
                    Bind::Bool(v) => q.bind::<sql_types::Bool, _>(v),
                    Bind::BigInt(v) => q.bind::<sql_types::BigInt, _>(v),
                    Bind::Uuid(v) => q.bind::<sql_types::Uuid, _>(v),
                    Bind::Timestamp(v) => q.bind::<sql_types::Timestamptz, _>(v),
                };
            }
        }
        q
    }
}

/// See [`SqlFragment::into_prepared`]. Unlike `sql_query`, it does not
/// mark itself unsafe to keep prepared, so diesel caches the statement.
pub struct Prepared(SqlFragment);

impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.0.parts {
            match part {
                Part::Sql(s) => out.push_sql(s),
                Part::Bind(Bind::Text(v)) => out.push_bind_param::<sql_types::Text, _>(v)?,
                Part::Bind(Bind::Bool(v)) => out.push_bind_param::<sql_types::Bool, _>(v)?,
                Part::Bind(Bind::BigInt(v)) => out.push_bind_param::<sql_types::BigInt, _>(v)?,
                Part::Bind(Bind::Uuid(v)) => out.push_bind_param::<sql_types::Uuid, _>(v)?,
                Part::Bind(Bind::Timestamp(v)) => {
                    out.push_bind_param::<sql_types::Timestamptz, _>(v)?
                }
            }
        }
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Prepared {}

/// What a filter attribute is, in SQL terms.
enum Column {
    /// A scalar SQL expression.
    Scalar {
        expr: String,
        kind: Kind,
        case_exact: bool,
    },
    /// A multi-valued attribute: a JSON array expression whose elements
    /// are objects; conditions apply to some element.
    Multi {
        array: String,
        def: &'static AttrDef,
    },
    /// The user's roles, held in two columns.
    Roles,
    /// A group's members, one row each in `group_members`.
    Members,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Bool,
    Time,
}

/// The WHERE condition for `filter` over `users`.
pub fn user_condition(filter: &Filter) -> Result<SqlFragment, ScimError> {
    condition(filter, &resolve_user)
}

/// The WHERE condition for `filter` over `groups`.
pub fn group_condition(filter: &Filter) -> Result<SqlFragment, ScimError> {
    condition(filter, &resolve_group)
}

/// The ORDER BY expression for `sortBy` over users (RFC 7644 §3.4.2.3):
/// strings sort case-insensitively, a multi-valued attribute by its first
/// value.
pub fn user_sort(path: &AttrPath) -> Result<String, ScimError> {
    sort_expr(resolve_user(path)?, path)
}

pub fn group_sort(path: &AttrPath) -> Result<String, ScimError> {
    sort_expr(resolve_group(path)?, path)
}

fn sort_expr(column: Column, path: &AttrPath) -> Result<String, ScimError> {
    match column {
        Column::Scalar {
            expr,
            kind: Kind::Text,
            case_exact: false,
        } => Ok(format!("lower({expr})")),
        Column::Scalar { expr, .. } => Ok(expr),
        Column::Multi { array, def } => {
            let sub = path.sub.as_deref().unwrap_or("value");
            let sub = schema::find(def.subs, sub)
                .map(|d| d.name)
                .unwrap_or("value");
            Ok(format!("lower(({array}->0->>'{sub}'))"))
        }
        Column::Roles => Ok("users.primary_role".into()),
        Column::Members => Err(ScimError::invalid_value("members cannot be sorted on")),
    }
}

fn resolve_group(path: &AttrPath) -> Result<Column, ScimError> {
    let unknown = || ScimError::invalid_filter(format!("unknown attribute {path}"));
    if let Some(urn) = &path.urn {
        if !urn.eq_ignore_ascii_case(crate::scim::GROUP_SCHEMA) {
            return Err(unknown());
        }
    }
    let scalar = |expr: &str, kind, case_exact| {
        Ok(Column::Scalar {
            expr: expr.to_string(),
            kind,
            case_exact,
        })
    };
    match (
        path.attr.to_ascii_lowercase().as_str(),
        path.sub.as_deref().map(str::to_ascii_lowercase).as_deref(),
    ) {
        ("id", None) => scalar("groups.id::text", Kind::Text, true),
        ("displayname", None) => scalar("groups.display_name", Kind::Text, false),
        ("externalid", None) => scalar("groups.external_id", Kind::Text, true),
        ("meta", Some("created")) => scalar("groups.created_at", Kind::Time, true),
        ("meta", Some("lastmodified")) => scalar("groups.updated_at", Kind::Time, true),
        ("meta", Some("resourcetype")) => scalar("'Group'", Kind::Text, true),
        ("members", None | Some("value")) => Ok(Column::Members),
        _ => Err(unknown()),
    }
}

/// `EXISTS` a membership row for this group and (optionally) this member.
fn member_exists(value: Option<&CompValue>) -> Result<SqlFragment, ScimError> {
    let mut out = SqlFragment::default();
    out.push("EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = groups.id");
    match value {
        None => {}
        Some(CompValue::String(s)) => match Uuid::parse_str(s.trim()) {
            Ok(id) => {
                out.push(" AND gm.user_id = ");
                out.push_bind(Bind::Uuid(id));
            }
            // Not a user id: no group has it as a member.
            Err(_) => out.push(" AND false"),
        },
        Some(_) => return Err(ScimError::invalid_filter("member values are strings")),
    }
    out.push(")");
    Ok(out)
}

fn condition(
    filter: &Filter,
    resolve: &dyn Fn(&AttrPath) -> Result<Column, ScimError>,
) -> Result<SqlFragment, ScimError> {
    let mut out = SqlFragment::default();
    match filter {
        Filter::And(items) | Filter::Or(items) => {
            let op = if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            out.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(op);
                }
                out.append(condition(item, resolve)?);
            }
            out.push(")");
        }
        Filter::Not(inner) => {
            out.push("NOT COALESCE((");
            out.append(condition(inner, resolve)?);
            out.push("), false)");
        }
        Filter::Present(path) => match resolve(path)? {
            Column::Scalar { expr, kind, .. } => {
                out.push(&format!("({expr} IS NOT NULL"));
                if kind == Kind::Text {
                    out.push(&format!(" AND {expr} <> ''"));
                }
                out.push(")");
            }
            Column::Multi { array, def } => match &path.sub {
                None => out.push(&format!(
                    "(jsonb_array_length(COALESCE({array}, '[]'::jsonb)) > 0)"
                )),
                Some(sub) => out.append(exists(
                    &array,
                    def,
                    &Filter::Present(AttrPath::simple(sub)),
                )?),
            },
            Column::Roles => out.push("true"),
            Column::Members => out.append(member_exists(None)?),
        },
        Filter::Compare(path, op, value) => match resolve(path)? {
            Column::Scalar {
                expr,
                kind,
                case_exact,
            } => {
                out.append(compare(&expr, kind, case_exact, *op, value, path)?);
            }
            Column::Multi { array, def } => {
                // `emails.type eq "work"` is `emails[type eq "work"]`, and
                // `emails co "x"` means some email's value.
                let sub = path.sub.as_deref().unwrap_or("value");
                let inner = Filter::Compare(AttrPath::simple(sub), *op, value.clone());
                out.append(exists(&array, def, &inner)?);
            }
            Column::Roles => {
                if *op != CompareOp::Eq {
                    return Err(ScimError::invalid_filter(
                        "roles can only be compared with eq",
                    ));
                }
                let CompValue::String(v) = value else {
                    return Err(ScimError::invalid_filter("roles values are strings"));
                };
                let v = v.trim().to_ascii_lowercase();
                out.push("(users.primary_role = ");
                out.push_bind(Bind::Text(v.clone()));
                out.push(" OR users.permission = ");
                out.push_bind(Bind::Text(v));
                out.push(")");
            }
            Column::Members => {
                if *op != CompareOp::Eq {
                    return Err(ScimError::invalid_filter(
                        "members can only be compared with eq",
                    ));
                }
                out.append(member_exists(Some(value))?);
            }
        },
        Filter::ValuePath(path, inner) => match resolve(path)? {
            Column::Multi { array, def } => out.append(exists(&array, def, inner)?),
            Column::Members => match inner.as_ref() {
                Filter::Compare(p, CompareOp::Eq, v)
                    if p.attr.eq_ignore_ascii_case("value") && p.sub.is_none() =>
                {
                    out.append(member_exists(Some(v))?)
                }
                _ => {
                    return Err(ScimError::invalid_filter(
                        "members can be filtered by value eq \"id\"",
                    ))
                }
            },
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is not a multi-valued attribute"
                )))
            }
        },
    }
    Ok(out)
}

fn exists(array: &str, def: &'static AttrDef, inner: &Filter) -> Result<SqlFragment, ScimError> {
    let mut out = SqlFragment::default();
    out.push(&format!(
        "EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE({array}, '[]'::jsonb)) AS elem WHERE "
    ));
    out.append(condition(inner, &|p: &AttrPath| resolve_element(def, p))?);
    out.push(")");
    Ok(out)
}

fn resolve_element(def: &'static AttrDef, path: &AttrPath) -> Result<Column, ScimError> {
    if path.urn.is_some() || path.sub.is_some() {
        return Err(ScimError::invalid_filter(format!(
            "{path} is not a sub-attribute of {}",
            def.name
        )));
    }
    let sub = schema::find(def.subs, &path.attr).ok_or_else(|| {
        ScimError::invalid_filter(format!("unknown attribute {}.{}", def.name, path.attr))
    })?;
    Ok(Column::Scalar {
        expr: format!("(elem->>'{}')", sub.name),
        kind: kind_of(sub),
        case_exact: sub.case_exact,
    })
}

fn kind_of(def: &AttrDef) -> Kind {
    match def.ty {
        AttrType::Boolean => Kind::Bool,
        AttrType::DateTime => Kind::Time,
        _ => Kind::Text,
    }
}

fn resolve_user(path: &AttrPath) -> Result<Column, ScimError> {
    let unknown = || ScimError::invalid_filter(format!("unknown attribute {path}"));
    let (defs, json_base): (&'static [AttrDef], String) = match &path.urn {
        None => (USER_ATTRS, "users.attrs".to_string()),
        Some(u) if schema::is_user_urn(u) => (USER_ATTRS, "users.attrs".to_string()),
        Some(u) if schema::is_enterprise_urn(u) => (
            ENTERPRISE_ATTRS,
            format!("(users.attrs->'{ENTERPRISE_USER_SCHEMA}')"),
        ),
        Some(_) => return Err(unknown()),
    };
    let attr = path.attr.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    if path.urn.as_deref().is_none_or(schema::is_user_urn) {
        let scalar = |expr: &str, kind, case_exact| {
            Ok(Column::Scalar {
                expr: expr.to_string(),
                kind,
                case_exact,
            })
        };
        match (attr.as_str(), sub.as_deref()) {
            ("id", None) => return scalar("users.id::text", Kind::Text, true),
            ("username", None) => return scalar("users.user_name", Kind::Text, false),
            ("externalid", None) => return scalar("users.external_id", Kind::Text, true),
            ("active", None) => return scalar("users.active", Kind::Bool, true),
            ("meta", Some("created")) => return scalar("users.created_at", Kind::Time, true),
            ("meta", Some("lastmodified")) => return scalar("users.updated_at", Kind::Time, true),
            ("meta", Some("resourcetype")) => return scalar("'User'", Kind::Text, true),
            ("roles", None | Some("value")) => return Ok(Column::Roles),
            _ => {}
        }
    }
    let def = schema::find(defs, &path.attr).ok_or_else(unknown)?;
    if def.name == "password" || def.name == "groups" {
        return Err(ScimError::invalid_filter(format!(
            "{} cannot be filtered on",
            def.name
        )));
    }
    let attr_json = format!("({json_base}->'{}')", def.name);
    if def.multi {
        if let Some(sub) = &path.sub {
            schema::find(def.subs, sub).ok_or_else(unknown)?;
        }
        return Ok(Column::Multi {
            array: attr_json,
            def,
        });
    }
    match (&path.sub, def.ty) {
        (None, AttrType::Complex) => Err(ScimError::invalid_filter(format!(
            "{} needs a sub-attribute",
            def.name
        ))),
        (None, _) => Ok(Column::Scalar {
            expr: format!("({json_base}->>'{}')", def.name),
            kind: kind_of(def),
            case_exact: def.case_exact,
        }),
        (Some(sub), AttrType::Complex) => {
            let sub_def = schema::find(def.subs, sub).ok_or_else(unknown)?;
            Ok(Column::Scalar {
                expr: format!("({attr_json}->>'{}')", sub_def.name),
                kind: kind_of(sub_def),
                case_exact: sub_def.case_exact,
            })
        }
        (Some(_), _) => Err(unknown()),
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn compare(
    expr: &str,
    kind: Kind,
    case_exact: bool,
    op: CompareOp,
    value: &CompValue,
    path: &AttrPath,
) -> Result<SqlFragment, ScimError> {
    let mut out = SqlFragment::default();
    if *value == CompValue::Null {
        match op {
            CompareOp::Eq => out.push(&format!("({expr} IS NULL)")),
            CompareOp::Ne => out.push(&format!("({expr} IS NOT NULL)")),
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "null can only be compared with eq or ne ({path})"
                )))
            }
        }
        return Ok(out);
    }
    let sql_op = match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "LIKE",
    };
    let is_json = expr.contains("->>");
    // Entra sends booleans as strings ("True"): compare them as booleans,
    // as PATCH value filters do (`filter::matches`).
    let as_bool;
    let value = match (kind, value) {
        (Kind::Bool, CompValue::String(s))
            if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
        {
            as_bool = CompValue::Bool(s.eq_ignore_ascii_case("true"));
            &as_bool
        }
        _ => value,
    };
    // The left side and how the bound value is wrapped, per kind.
    let (lhs, bind, wrap): (String, Bind, (&str, &str)) = match (kind, value) {
        (Kind::Bool, CompValue::Bool(b)) => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is a boolean: use eq or ne"
                )));
            }
            let lhs = if is_json {
                format!("({expr})::boolean")
            } else {
                expr.to_string()
            };
            (lhs, Bind::Bool(*b), ("", ""))
        }
        (Kind::Time, CompValue::String(s)) => {
            if sql_op == "LIKE" {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is a dateTime: co/sw/ew do not apply"
                )));
            }
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ScimError::invalid_filter(format!("{s:?} is not an RFC 3339 dateTime"))
                })?
                .with_timezone(&Utc);
            (expr.to_string(), Bind::Timestamp(t), ("", ""))
        }
        (Kind::Text, CompValue::String(s)) => {
            let pattern = match op {
                CompareOp::Co => format!("%{}%", like_escape(s)),
                CompareOp::Sw => format!("{}%", like_escape(s)),
                CompareOp::Ew => format!("%{}", like_escape(s)),
                _ => s.clone(),
            };
            if case_exact {
                (expr.to_string(), Bind::Text(pattern), ("", ""))
            } else {
                (
                    format!("lower({expr})"),
                    Bind::Text(pattern),
                    ("lower(", ")"),
                )
            }
        }
        // Literals keep their types (an unquoted number is a number), so
        // say how to write the value the attribute takes.
        (Kind::Text, CompValue::Number(n)) => {
            return Err(ScimError::invalid_filter(format!(
                "{path} is a string: quote the value (\"{n}\")"
            )))
        }
        (Kind::Time, _) => {
            return Err(ScimError::invalid_filter(format!(
                "{path} is a dateTime: compare it with an RFC 3339 timestamp"
            )))
        }
        (Kind::Bool, _) => {
            return Err(ScimError::invalid_filter(format!(
                "{path} is a boolean: compare it with true or false"
            )))
        }
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "{path} cannot be compared with that value"
            )))
        }
    };
    // ne also matches users who lack the attribute.
    if op == CompareOp::Ne {
        out.push(&format!("({expr} IS NULL OR {lhs} {sql_op} {}", wrap.0));
    } else {
        out.push(&format!("({lhs} {sql_op} {}", wrap.0));
    }
    out.push_bind(bind);
    out.push(&format!("{})", wrap.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;

    fn sql(f: &str) -> Result<String, ScimError> {
        user_condition(&parse_filter(f).unwrap()).map(|s| s.text())
    }

    #[test]
    fn translates_to_parameterised_sql() {
        let table = [
            (r#"userName eq "A""#, "(lower(users.user_name) = lower($1))"),
            (r#"externalId eq "A""#, "(users.external_id = $1)"),
            (r#"id eq "A""#, "(users.id::text = $1)"),
            ("active eq false", "(users.active = $1)"),
            (
                r#"emails[type eq "work" and value co "@x"]"#,
                "EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE((users.attrs->'emails'), '[]'::jsonb)) AS elem WHERE ((lower((elem->>'type')) = lower($1)) AND (lower((elem->>'value')) LIKE lower($2))))",
            ),
            (
                r#"name.familyName sw "O'""#,
                "(lower(((users.attrs->'name')->>'familyName')) LIKE lower($1))",
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#,
                "(lower(((users.attrs->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User')->>'employeeNumber')) = lower($1))",
            ),
            ("title pr", "((users.attrs->>'title') IS NOT NULL AND (users.attrs->>'title') <> '')"),
            (r#"not (title eq "x")"#, "NOT COALESCE(((lower((users.attrs->>'title')) = lower($1))), false)"),
        ];
        for (f, want) in table {
            assert_eq!(sql(f).unwrap(), want, "{f}");
        }
    }

    #[test]
    fn refuses_unknown_attributes_and_bad_comparisons() {
        for f in [
            r#"nope eq "x""#,
            r#"name eq "x""#,
            r#"emails[nope eq "x"]"#,
            r#"urn:example:x:attr eq "x""#,
            r#"active co "t""#,
            r#"meta.created gt "yesterday""#,
            "userName eq true",
            r#"password eq "x""#,
            r#"title[value eq "x"]"#,
        ] {
            let err = sql(f).unwrap_err();
            assert_eq!(
                err.scim_type,
                Some(crate::scim::ScimType::InvalidFilter),
                "{f}"
            );
        }
        // A literal of the wrong type: the detail says what to send.
        for (f, why) in [
            (
                "externalId eq 12345",
                r#"externalId is a string: quote the value ("12345")"#,
            ),
            ("userName eq true", "userName cannot be compared"),
            ("meta.created gt 2015", "meta.created is a dateTime"),
            (
                r#"active eq "yes""#,
                "active is a boolean: compare it with true or false",
            ),
        ] {
            let err = sql(f).unwrap_err();
            assert!(err.detail.contains(why), "{f}: {}", err.detail);
        }
        // Booleans as strings, as Entra sends them, are booleans.
        for (quoted, bare) in [
            (r#"active eq "True""#, "active eq true"),
            (r#"emails[primary eq "FALSE"]"#, "emails[primary eq false]"),
        ] {
            assert_eq!(sql(quoted).unwrap(), sql(bare).unwrap(), "{quoted}");
        }
    }

    /// Every filter the parser accepts translates or is refused; none
    /// panics. Mutations of a rich filter, against both resource types.
    #[test]
    fn mutated_filters_translate_or_refuse_without_panicking() {
        let seed = r#"emails[type eq "work" and value co "@x"] or (name.familyName sw "a" and not (active eq true)) or members eq "1" or meta.created gt "2020-01-01T00:00:00Z""#;
        let bytes = seed.as_bytes();
        let mut translated = 0;
        for i in 0..bytes.len() {
            for b in [b'(', b')', b'[', b']', b'"', b' ', b'.', b'x'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                if let Ok(f) = crate::scim::filter::parse_filter(&String::from_utf8_lossy(&m)) {
                    let _ = user_condition(&f);
                    let _ = group_condition(&f);
                    translated += 1;
                }
            }
        }
        assert!(translated > 100, "{translated}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Every filter the parser accepts translates to SQL for both
        /// resource types or is refused precisely (the parsers' own
        /// property tests draw the same inputs).
        #[test]
        fn parsed_filters_translate_or_refuse_precisely(input in scimflow_core::scim::proptests::filter_input()) {
            use scimflow_core::scim::proptests::assert_precise;
            if let Ok(f) = parse_filter(&input) {
                if let Err(e) = user_condition(&f) {
                    assert_precise(&e)?;
                }
                if let Err(e) = group_condition(&f) {
                    assert_precise(&e)?;
                }
            }
        }
    }
}
