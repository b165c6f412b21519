//! The SCIM filter grammar (RFC 7644 §3.4.2.2), parsed into an AST.
//!
//! The parser is total: any input gives a `Filter` or an `invalidFilter`
//! error, never a panic. Input is bounded before a tree is built: its
//! length, its number of terms and its nesting are checked as it is read,
//! and `and`/`or` chains are kept flat (one node with a list), so the
//! height of any tree is a small multiple of `MAX_FILTER_DEPTH` and
//! nothing that walks or drops one (evaluation here, SQL in
//! `store::filter_sql`, PATCH in `scim::patch`) can exhaust the stack.
//! Evaluation against a JSON element (for PATCH value filters) lives here
//! too; translation to SQL lives in `store::filter_sql`.
//!
//! Two readings go beyond the grammar because real clients rely on them,
//! each only where the meaning is certain: unquoted values (`bare_value`)
//! and a sub-attribute after a value filter (Entra's
//! `emails[type eq "work"].value eq "x"`).

use serde_json::{Number, Value};

use super::error::ScimError;
use super::schema;

/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Longest filter accepted, in bytes. Also the longest attribute path
/// (a PATCH `path`, a path-less PATCH key, `sortBy`) and the longest
/// `attributes`/`excludedAttributes` list.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most terms in one filter or PATCH path: comparisons (`attr op value`,
/// `attr pr`) and value filters (`emails[...]`) each count one. Also the
/// most names in one `attributes` or `excludedAttributes` list.
pub const MAX_FILTER_TERMS: usize = 100;

/// `[urn:]attr[.sub]`. `urn` keeps the schema URN as written, `attr` and
/// `sub` keep the case the client used (attribute names are
/// case-insensitive and are resolved against the schema later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn simple(attr: &str) -> Self {
        AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub: None,
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, CompValue),
    Present(AttrPath),
    /// Every one of two or more filters: `a and b and c` is one node.
    And(Vec<Filter>),
    /// Any of two or more filters: `a or b or c` is one node.
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `attr[inner]`: some element of the multi-valued `attr` matches
    /// `inner`, whose paths are relative to the element.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// Levels of the tree, counted without recursion (what every walk of
    /// it is bounded by; the tests and the fuzz targets check it).
    pub fn height(&self) -> usize {
        let (mut max, mut stack) = (0, vec![(self, 1)]);
        while let Some((f, level)) = stack.pop() {
            max = max.max(level);
            match f {
                Filter::And(items) | Filter::Or(items) => {
                    stack.extend(items.iter().map(|i| (i, level + 1)))
                }
                Filter::Not(inner) | Filter::ValuePath(_, inner) => stack.push((inner, level + 1)),
                Filter::Compare(..) | Filter::Present(_) => {}
            }
        }
        max
    }

    /// `items` joined by `and`: the one item itself when there is one.
    pub fn all(items: Vec<Filter>) -> Filter {
        Self::join(items, Filter::And)
    }

    /// `items` joined by `or`: the one item itself when there is one.
    pub fn any(items: Vec<Filter>) -> Filter {
        Self::join(items, Filter::Or)
    }

    fn join(mut items: Vec<Filter>, node: fn(Vec<Filter>) -> Filter) -> Filter {
        if items.len() == 1 {
            if let Some(one) = items.pop() {
                return one;
            }
        }
        node(items)
    }
}

/// Parse a complete filter expression.
pub fn parse_filter(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "the filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let mut p = Parser::new(input);
    let f = p.filter(0)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("unexpected input after the end of the filter"));
    }
    Ok(f)
}

/// The parser is shared with PATCH path parsing (`scim::path`).
pub(crate) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Terms read so far (`MAX_FILTER_TERMS`).
    terms: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            terms: 0,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.bump();
        }
    }

    pub(crate) fn error(&self, what: &str) -> ScimError {
        ScimError::invalid_filter(format!("{what} at position {}", self.pos))
    }

    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        rest.get(..end).unwrap_or_default()
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let word = self.peek_word();
        if word.eq_ignore_ascii_case(kw) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// `and_expr ("or" and_expr)*`, at nesting `depth`. The depth is
    /// checked before anything nested is read, and the chain is collected
    /// into one node, so neither nesting nor length deepens the stack.
    pub(crate) fn filter(&mut self, depth: usize) -> Result<Filter, ScimError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(self.error(&format!(
                "the filter is nested more than {MAX_FILTER_DEPTH} levels deep"
            )));
        }
        let mut terms = vec![self.and_expr(depth)?];
        loop {
            self.skip_ws();
            let save = self.pos;
            if self.eat_keyword("or") {
                self.expect_ws_or_paren(save)?;
                terms.push(self.and_expr(depth)?);
            } else {
                return Ok(Filter::any(terms));
            }
        }
    }

    fn expect_ws_or_paren(&mut self, save: usize) -> Result<(), ScimError> {
        match self.peek() {
            Some(c) if c.is_whitespace() || c == '(' => Ok(()),
            _ => {
                self.pos = save;
                Err(self.error("expected a space after a logical operator"))
            }
        }
    }

    fn and_expr(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut terms = vec![self.unary(depth)?];
        loop {
            self.skip_ws();
            let save = self.pos;
            if self.eat_keyword("and") {
                self.expect_ws_or_paren(save)?;
                terms.push(self.unary(depth)?);
            } else {
                return Ok(Filter::all(terms));
            }
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        self.skip_ws();
        let save = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            if self.peek() == Some('(') {
                self.bump();
                let inner = self.filter(depth + 1)?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error("expected ')'"));
                }
                self.bump();
                return Ok(Filter::Not(Box::new(inner)));
            }
            // `not` may also be an attribute name; fall back.
            self.pos = save;
        }
        if self.peek() == Some('(') {
            self.bump();
            let inner = self.filter(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.error("expected ')'"));
            }
            self.bump();
            return Ok(inner);
        }
        self.attr_expr(depth)
    }

    fn attr_expr(&mut self, depth: usize) -> Result<Filter, ScimError> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(self.error(&format!(
                "the filter has more than {MAX_FILTER_TERMS} terms"
            )));
        }
        let path = self.attr_path()?;
        if self.peek() == Some('[') {
            if path.sub.is_some() {
                return Err(self.error("a value filter cannot follow a sub-attribute"));
            }
            self.bump();
            let inner = self.filter(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(']') {
                return Err(self.error("expected ']'"));
            }
            self.bump();
            if self.peek() == Some('.') {
                return self.sub_attr_after_value_filter(path, inner);
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.skip_ws();
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(word).ok_or_else(|| self.error("expected an operator"))?;
        self.pos += word.len();
        self.skip_ws();
        let value = self.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    /// `emails[type eq "work"].value eq "x"`: outside RFC 7644's filter
    /// grammar (only a PATCH path may end in a sub-attribute after a value
    /// filter), but Entra ID sends it when the work email is the matching
    /// attribute. It names one thing, an element that matches the value
    /// filter and whose sub-attribute compares, so it is read as
    /// `emails[type eq "work" and value eq "x"]`.
    fn sub_attr_after_value_filter(
        &mut self,
        path: AttrPath,
        inner: Filter,
    ) -> Result<Filter, ScimError> {
        self.bump();
        let word = self.peek_word();
        let sub = split_attr_path(word)
            .filter(|a| a.urn.is_none() && a.sub.is_none())
            .ok_or_else(|| self.error("expected a sub-attribute name after '].'"))?;
        self.pos += word.len();
        self.skip_ws();
        let op_word = self.peek_word();
        let condition = if op_word.eq_ignore_ascii_case("pr") {
            self.pos += op_word.len();
            Filter::Present(sub)
        } else {
            let op = CompareOp::parse(op_word).ok_or_else(|| self.error("expected an operator"))?;
            self.pos += op_word.len();
            self.skip_ws();
            Filter::Compare(sub, op, self.comp_value()?)
        };
        Ok(Filter::ValuePath(
            path,
            Box::new(Filter::all(vec![inner, condition])),
        ))
    }

    /// `[URN ":"] ATTRNAME ["." subAttr]`.
    pub(crate) fn attr_path(&mut self) -> Result<AttrPath, ScimError> {
        self.skip_ws();
        let word = self.peek_word();
        if word.is_empty() {
            return Err(self.error("expected an attribute name"));
        }
        self.pos += word.len();
        split_attr_path(word).ok_or_else(|| {
            ScimError::invalid_filter(format!("'{word}' is not a valid attribute path"))
        })
    }

    fn comp_value(&mut self) -> Result<CompValue, ScimError> {
        match self.peek() {
            Some('"') => {
                let rest = self.rest();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in rest.char_indices().skip(1) {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(i);
                        break;
                    }
                }
                let end = end.ok_or_else(|| self.error("unterminated string"))?;
                let literal = &rest[..=end];
                let s: String = serde_json::from_str(literal)
                    .map_err(|_| self.error("invalid string literal"))?;
                if s.contains('\0') {
                    return Err(self.error("a NUL character in a string"));
                }
                self.pos += literal.len();
                Ok(CompValue::String(s))
            }
            _ => {
                let rest = self.rest();
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == ')' || c == ']')
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                let value = bare_value(word).map_err(|why| self.error(&why))?;
                self.pos += word.len();
                // Only `and`, `or` or the end of a group may follow a value:
                // another word means an unquoted value with spaces, whose
                // end we would have to guess.
                let after = self.pos;
                self.skip_ws();
                let next = self.peek_word();
                let joins = ["and", "or"].iter().any(|k| next.eq_ignore_ascii_case(k));
                if self.pos > after && !next.is_empty() && !joins {
                    return Err(self.error(&format!(
                        "the value {word:?} is followed by {next:?}: quote a value that contains spaces"
                    )));
                }
                self.pos = after;
                Ok(value)
            }
        }
    }
}

/// Words that structure a filter: as a bare value each could as well be a
/// misplaced keyword, so it must be quoted to be compared with.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le",
];

/// An unquoted comparison value. RFC 7644 requires strings to be quoted,
/// but Microsoft's reference implementation and most SCIM servers read a
/// bare word as a string, and clients built against them send one
/// (`userName sw O`, `meta.created gt 2015-10-10T14:38:21.86-07:00`).
/// `true`, `false` and `null` (in any case: ABNF literals are
/// case-insensitive) and JSON numbers keep their types. A word whose
/// meaning would be a guess is refused with the reason.
fn bare_value(word: &str) -> Result<CompValue, String> {
    if word.is_empty() {
        return Err("expected a value".into());
    }
    if word.eq_ignore_ascii_case("true") {
        return Ok(CompValue::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(CompValue::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(CompValue::Null);
    }
    if let Ok(Value::Number(n)) = serde_json::from_str::<Value>(word) {
        return Ok(CompValue::Number(n));
    }
    if KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k)) {
        return Err(format!(
            "{word:?} is a filter keyword, not a value: quote it (\"{word}\") to compare with that word"
        ));
    }
    // OData's quotes: stripping them would guess where the value ends
    // ('Sales Team'), keeping them would match nothing, silently.
    if word.starts_with('\'') {
        return Err(format!(
            "{word:?} is quoted with single quotes: SCIM strings are in double quotes"
        ));
    }
    if word.contains(['"', '(', '[']) {
        return Err(format!(
            "{word:?} is not a value: quote strings (a filter compares an attribute with a literal, never with another expression)"
        ));
    }
    if word.contains('\0') {
        return Err("a NUL character in a value".into());
    }
    Ok(CompValue::String(word.to_string()))
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '$')
}

fn is_attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Split `urn:...:attr.sub` into its parts. The URN is everything up to the
/// last ':'; a URN only ever ends in a schema name, so dots inside it
/// (`2.0`) are not sub-attribute separators.
pub(crate) fn split_attr_path(word: &str) -> Option<AttrPath> {
    let (urn, rest) = if word.len() > 4 && schema::has_urn_prefix(word) {
        let (urn, rest) = word.rsplit_once(':')?;
        (Some(urn.to_string()), rest)
    } else {
        (None, word)
    };
    let mut parts = rest.splitn(2, '.');
    let attr = parts.next()?;
    let sub = parts.next();
    if !is_attr_name(attr) || sub.is_some_and(|s| !is_attr_name(s)) {
        return None;
    }
    Some(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Does `element` (one value of a multi-valued attribute, or a resource)
/// match `filter`? String comparison is case-insensitive unless
/// `case_exact` says otherwise for the attribute; RFC 7643 makes every
/// sub-attribute of the multi-valued User attributes caseExact=false except
/// `$ref`-like and id values, which never appear in PATCH filters.
pub fn matches(filter: &Filter, element: &Value) -> bool {
    match filter {
        Filter::And(all) => all.iter().all(|f| matches(f, element)),
        Filter::Or(any) => any.iter().any(|f| matches(f, element)),
        Filter::Not(a) => !matches(a, element),
        Filter::Present(path) => lookup(element, path).iter().any(|v| {
            !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
        }),
        Filter::Compare(path, op, value) => {
            let found = lookup(element, path);
            if *op == CompareOp::Ne {
                return !found.iter().any(|v| compare(v, CompareOp::Eq, value));
            }
            found.iter().any(|v| compare(v, *op, value))
        }
        Filter::ValuePath(path, inner) => lookup(element, path).iter().any(|v| match v {
            Value::Array(items) => items.iter().any(|i| matches(inner, i)),
            other => matches(inner, other),
        }),
    }
}

fn get_ci<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The values a path names inside `element`, flattening multi-valued
/// attributes (so `emails.value` names every email's value).
fn lookup<'v>(element: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let base = match &path.urn {
        Some(urn) => match get_ci(element, urn) {
            Some(ext) => ext,
            None => element,
        },
        None => element,
    };
    let Some(v) = get_ci(base, &path.attr) else {
        return Vec::new();
    };
    let top: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => top,
        Some(sub) => top.into_iter().filter_map(|t| get_ci(t, sub)).collect(),
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &CompValue) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (actual, expected) {
        (Value::Null, CompValue::Null) => Some(Ordering::Equal),
        (Value::Bool(a), CompValue::Bool(b)) => Some(a.cmp(b)),
        // IdPs send booleans as strings ("True"); compare them as booleans.
        (Value::String(a), CompValue::Bool(b)) => match a.to_ascii_lowercase().as_str() {
            "true" => Some(true.cmp(b)),
            "false" => Some(false.cmp(b)),
            _ => None,
        },
        (Value::Bool(a), CompValue::String(b)) => match b.to_ascii_lowercase().as_str() {
            "true" => Some(a.cmp(&true)),
            "false" => Some(a.cmp(&false)),
            _ => None,
        },
        (Value::Number(a), CompValue::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), CompValue::String(b)) => {
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match op {
                CompareOp::Co => return a.contains(&b),
                CompareOp::Sw => return a.starts_with(&b),
                CompareOp::Ew => return a.ends_with(&b),
                _ => Some(a.cmp(&b)),
            }
        }
        _ => None,
    };
    let Some(ord) = ordering else {
        return false;
    };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(attr: &str, op: CompareOp, v: CompValue) -> Filter {
        Filter::Compare(split_attr_path(attr).unwrap(), op, v)
    }
    fn s(v: &str) -> CompValue {
        CompValue::String(v.into())
    }

    #[test]
    fn parses_each_production() {
        use CompareOp::*;
        let cases: Vec<(&str, Filter)> = vec![
            (
                r#"userName eq "bjensen""#,
                cmp("userName", Eq, s("bjensen")),
            ),
            (r#"USERNAME EQ "x""#, cmp("USERNAME", Eq, s("x"))),
            (
                r#"name.familyName co "O'Malley""#,
                cmp("name.familyName", Co, s("O'Malley")),
            ),
            (r#"userName sw "J""#, cmp("userName", Sw, s("J"))),
            (r#"userName ew "n""#, cmp("userName", Ew, s("n"))),
            (r#"userName ne "n""#, cmp("userName", Ne, s("n"))),
            ("title pr", Filter::Present(AttrPath::simple("title"))),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                Filter::Compare(
                    AttrPath {
                        urn: Some("urn:ietf:params:scim:schemas:core:2.0:User".into()),
                        attr: "userName".into(),
                        sub: None,
                    },
                    Sw,
                    s("J"),
                ),
            ),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                cmp("meta.lastModified", Gt, s("2011-05-13T04:42:34Z")),
            ),
            (
                r#"meta.lastModified ge "x""#,
                cmp("meta.lastModified", Ge, s("x")),
            ),
            (
                r#"meta.lastModified lt "x""#,
                cmp("meta.lastModified", Lt, s("x")),
            ),
            (
                r#"meta.lastModified le "x""#,
                cmp("meta.lastModified", Le, s("x")),
            ),
            ("active eq true", cmp("active", Eq, CompValue::Bool(true))),
            ("active eq False", cmp("active", Eq, CompValue::Bool(false))),
            ("title eq null", cmp("title", Eq, CompValue::Null)),
            ("x eq 42", cmp("x", Eq, CompValue::Number(42.into()))),
            (
                r#"title pr and userType eq "Employee""#,
                Filter::And(vec![
                    Filter::Present(AttrPath::simple("title")),
                    cmp("userType", Eq, s("Employee")),
                ]),
            ),
            (
                r#"title pr or userType eq "Intern""#,
                Filter::Or(vec![
                    Filter::Present(AttrPath::simple("title")),
                    cmp("userType", Eq, s("Intern")),
                ]),
            ),
            (
                r#"userType eq "Employee" and not (emails co "example.com")"#,
                Filter::And(vec![
                    cmp("userType", Eq, s("Employee")),
                    Filter::Not(Box::new(cmp("emails", Co, s("example.com")))),
                ]),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                Filter::ValuePath(
                    AttrPath::simple("emails"),
                    Box::new(Filter::And(vec![
                        cmp("type", Eq, s("work")),
                        cmp("value", Co, s("@example.com")),
                    ])),
                ),
            ),
            (
                r#"a eq "1" or b eq "2" and c eq "3""#,
                Filter::Or(vec![
                    cmp("a", Eq, s("1")),
                    Filter::And(vec![cmp("b", Eq, s("2")), cmp("c", Eq, s("3"))]),
                ]),
            ),
            (
                r#"(a eq "1" or b eq "2") and c eq "3""#,
                Filter::And(vec![
                    Filter::Or(vec![cmp("a", Eq, s("1")), cmp("b", Eq, s("2"))]),
                    cmp("c", Eq, s("3")),
                ]),
            ),
            (
                r#"a pr or b pr or c pr and d pr and e pr"#,
                Filter::Or(vec![
                    Filter::Present(AttrPath::simple("a")),
                    Filter::Present(AttrPath::simple("b")),
                    Filter::And(vec![
                        Filter::Present(AttrPath::simple("c")),
                        Filter::Present(AttrPath::simple("d")),
                        Filter::Present(AttrPath::simple("e")),
                    ]),
                ]),
            ),
            (
                r#"emails[type eq "work"].value eq "a@x.com""#,
                Filter::ValuePath(
                    AttrPath::simple("emails"),
                    Box::new(Filter::And(vec![
                        cmp("type", Eq, s("work")),
                        cmp("value", Eq, s("a@x.com")),
                    ])),
                ),
            ),
            (
                r#"emails[type eq "work"].value pr"#,
                Filter::ValuePath(
                    AttrPath::simple("emails"),
                    Box::new(Filter::And(vec![
                        cmp("type", Eq, s("work")),
                        Filter::Present(AttrPath::simple("value")),
                    ])),
                ),
            ),
            (
                r#"userName eq "a \"quoted\" \u00e9""#,
                cmp("userName", Eq, s("a \"quoted\" é")),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_filter(input).unwrap(), expected, "input: {input}");
        }
    }

    #[test]
    fn rejects_malformed_filters() {
        let bad = [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "a"#,
            r#"userName eq "a" and"#,
            r#"(userName eq "a""#,
            r#"emails[type eq "work""#,
            r#"userName eq "a")"#,
            r#"1abc eq "a""#,
            r#"name.given.x eq "a""#,
            r#"not userName eq "a""#,
            r#"emails[type eq "work"]. eq "a""#,
            r#"emails[type eq "work"].value.x eq "a""#,
            r#"emails[type eq "work"].value xx "a""#,
            r#"emails[type eq "work"].value eq"#,
            r#"userName eq "a" andtitle pr"#,
        ];
        for input in bad {
            let err = parse_filter(input).unwrap_err();
            assert_eq!(err.status, 400, "input: {input}");
            assert_eq!(
                err.scim_type,
                Some(super::super::error::ScimType::InvalidFilter)
            );
        }
    }

    /// Unquoted values (Microsoft's reference implementation reads them):
    /// a bare word is a string, typed literals keep their types, quoted
    /// values stay exact, and what would be a guess is refused precisely.
    #[test]
    fn bare_values_are_read_leniently_and_never_guessed() {
        use CompareOp::*;
        let num = |n: &str| CompValue::Number(serde_json::from_str(n).unwrap());
        let read: Vec<(&str, Filter)> = vec![
            ("userName sw O", cmp("userName", Sw, s("O"))),
            (
                "name.familyName eq Employee",
                cmp("name.familyName", Eq, s("Employee")),
            ),
            (
                "meta.created gt 2015-10-10T14:38:21.8617979-07:00",
                cmp("meta.created", Gt, s("2015-10-10T14:38:21.8617979-07:00")),
            ),
            (
                "userName eq bjensen@example.com",
                cmp("userName", Eq, s("bjensen@example.com")),
            ),
            (
                "userName eq john.smith",
                cmp("userName", Eq, s("john.smith")),
            ),
            (
                "name.familyName eq O'Brien",
                cmp("name.familyName", Eq, s("O'Brien")),
            ),
            (
                "externalId eq 8c5f6b2e-entra",
                cmp("externalId", Eq, s("8c5f6b2e-entra")),
            ),
            ("title eq Émile", cmp("title", Eq, s("Émile"))),
            ("employeeNumber eq 007", cmp("employeeNumber", Eq, s("007"))),
            // Typed literals keep their types, in any case.
            ("active eq true", cmp("active", Eq, CompValue::Bool(true))),
            ("active eq TRUE", cmp("active", Eq, CompValue::Bool(true))),
            ("active eq False", cmp("active", Eq, CompValue::Bool(false))),
            ("title eq null", cmp("title", Eq, CompValue::Null)),
            ("title eq NULL", cmp("title", Eq, CompValue::Null)),
            ("x eq 42", cmp("x", Eq, num("42"))),
            ("x eq -1.5", cmp("x", Eq, num("-1.5"))),
            ("x eq 1e3", cmp("x", Eq, num("1e3"))),
            // Quoted values stay exact, even when they look typed.
            (r#"title eq "true""#, cmp("title", Eq, s("true"))),
            (r#"title eq "null""#, cmp("title", Eq, s("null"))),
            (r#"x eq "42""#, cmp("x", Eq, s("42"))),
            (r#"title eq "and""#, cmp("title", Eq, s("and"))),
            (
                r#"title eq " Sales Team ""#,
                cmp("title", Eq, s(" Sales Team ")),
            ),
            // A bare value ends where the grammar says: before and/or, a
            // closing parenthesis or bracket.
            (
                "userName sw O and active eq true",
                Filter::And(vec![
                    cmp("userName", Sw, s("O")),
                    cmp("active", Eq, CompValue::Bool(true)),
                ]),
            ),
            (
                "(userName eq a OR userName eq b)",
                Filter::Or(vec![
                    cmp("userName", Eq, s("a")),
                    cmp("userName", Eq, s("b")),
                ]),
            ),
            (
                "emails[type eq work]",
                Filter::ValuePath(
                    AttrPath::simple("emails"),
                    Box::new(cmp("type", Eq, s("work"))),
                ),
            ),
        ];
        for (input, expected) in read {
            assert_eq!(parse_filter(input).unwrap(), expected, "input: {input}");
        }
        // Refused, each with the reason in its detail.
        let refused = [
            (
                "displayName eq Sales Team",
                "quote a value that contains spaces",
            ),
            ("title eq pr", "is a filter keyword"),
            ("title eq and", "is a filter keyword"),
            ("title eq AND active eq true", "is a filter keyword"),
            ("title eq Not", "is a filter keyword"),
            ("userName eq eq", "is a filter keyword"),
            (r#"userName eq bjensen""#, "quote strings"),
            (r#"userName eq emails[type eq "work"]"#, "quote strings"),
            ("userName eq f(x)", "quote strings"),
            ("userName eq 'bjensen'", "SCIM strings are in double quotes"),
            (
                "displayName eq 'Sales Team'",
                "SCIM strings are in double quotes",
            ),
            ("userName eq", "expected a value"),
            ("(userName eq )", "expected a value"),
            ("userName eq a\u{0}b", "NUL"),
        ];
        for (input, why) in refused {
            let err = parse_filter(input).unwrap_err();
            assert_eq!(err.status, 400, "input: {input}");
            assert_eq!(
                err.scim_type,
                Some(super::super::error::ScimType::InvalidFilter),
                "input: {input}"
            );
            assert!(err.detail.contains(why), "input: {input}: {}", err.detail);
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_filter(&deep).is_err());
        let nots = format!("{}a pr{}", "not (".repeat(1000), ")".repeat(1000));
        assert!(parse_filter(&nots).is_err());
    }

    fn chain(n: usize, op: &str) -> String {
        vec!["a pr"; n].join(op)
    }

    /// Each limit at its value and one past it, in every position that
    /// nests, and the review's 1 MB chain: refused by its length before
    /// any tree is built.
    #[test]
    fn limits_hold_at_and_past_each_bound() {
        let nest = |open: &str, close: &str, n: usize| {
            format!("{}a pr{}", open.repeat(n), close.repeat(n))
        };
        let sized = |n: usize| format!("a eq \"{}\"", "x".repeat(n - 7));
        let d = MAX_FILTER_DEPTH;
        let cases: Vec<(String, Option<String>)> = vec![
            (chain(MAX_FILTER_TERMS, " or "), None),
            (
                chain(MAX_FILTER_TERMS + 1, " or "),
                Some(format!("more than {MAX_FILTER_TERMS} terms")),
            ),
            (chain(MAX_FILTER_TERMS, " and "), None),
            (
                chain(MAX_FILTER_TERMS + 1, " and "),
                Some(format!("more than {MAX_FILTER_TERMS} terms")),
            ),
            (
                format!("x[{}]", chain(MAX_FILTER_TERMS, " or ")),
                Some(format!("more than {MAX_FILTER_TERMS} terms")),
            ),
            (nest("(", ")", d), None),
            (nest("(", ")", d + 1), Some(format!("more than {d} levels"))),
            (nest("not (", ")", d), None),
            (
                nest("not (", ")", d + 1),
                Some(format!("more than {d} levels")),
            ),
            (nest("x[", "]", d), None),
            (
                nest("x[", "]", d + 1),
                Some(format!("more than {d} levels")),
            ),
            (sized(MAX_FILTER_LEN), None),
            (
                sized(MAX_FILTER_LEN + 1),
                Some(format!("longer than {MAX_FILTER_LEN} bytes")),
            ),
            (
                format!("emails[{}]", chain(120_000, " or ")),
                Some(format!("longer than {MAX_FILTER_LEN} bytes")),
            ),
        ];
        for (input, refused) in cases {
            let head: String = input.chars().take(40).collect();
            match (parse_filter(&input), refused) {
                (Ok(f), None) => assert!(f.height() <= 2 * MAX_FILTER_DEPTH + 3, "{head}"),
                (Err(e), Some(why)) => {
                    assert_eq!(e.scim_type, Some(super::super::ScimType::InvalidFilter));
                    assert!(e.detail.contains(&why), "{head}: {}", e.detail);
                }
                (got, want) => panic!("{head} ({} bytes): {got:?}, wanted {want:?}", input.len()),
            }
        }
    }

    /// `and`/`or` chains are one node each: a chain's length never adds
    /// to the height that evaluation, translation and drop recurse over.
    #[test]
    fn chains_are_flat() {
        for op in [" or ", " and "] {
            let f = parse_filter(&chain(MAX_FILTER_TERMS, op)).unwrap();
            assert_eq!(f.height(), 2, "{op}");
            let (Filter::Or(items) | Filter::And(items)) = &f else {
                panic!("{f:?}");
            };
            assert_eq!(items.len(), MAX_FILTER_TERMS);
            assert!(matches(&f, &json!({"a": "x"})));
        }
    }

    /// A name is read by characters: multi-byte text at any byte offset of
    /// a name, or where a URN prefix is looked for, is refused, not split.
    #[test]
    fn multi_byte_names_are_never_split() {
        for name in [
            "abcé",
            "abé",
            "é",
            "urné",
            "urn:é",
            "ürn:x:y",
            "urn\u{301}:a:b",
            "urn:a:bé",
            "urn:a:b.cé",
            "emails.valuë",
            "😀",
            "a\u{200B}b",
            "\u{202E}abc",
            "abc\u{0}",
        ] {
            assert_eq!(split_attr_path(name), None, "{name}");
            let err = parse_filter(&format!("{name} pr")).unwrap_err();
            assert_eq!(err.status, 400, "{name}");
        }
        assert_eq!(
            split_attr_path("urn:a:b:userName.x"),
            Some(AttrPath {
                urn: Some("urn:a:b".into()),
                attr: "userName".into(),
                sub: Some("x".into()),
            })
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and every single-byte
        // mutation of a rich filter.
        let seed = r#"emails[type eq "work" and (value co "@x.com" or primary eq true)] and not (userName sw "A\"b") or meta.created gt "2020""#;
        for i in 0..=seed.len() {
            if seed.is_char_boundary(i) {
                let _ = parse_filter(&seed[..i]);
            }
        }
        let bytes = seed.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'(', b')', b'[', b']', b'"', b' ', b'\\', b'.', b':', 0xff] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = parse_filter(&String::from_utf8_lossy(&m));
            }
        }
    }

    #[test]
    fn evaluates_against_elements() {
        let email = json!({"type": "work", "value": "A@X.com", "primary": "True"});
        let cases = [
            (r#"type eq "work""#, true),
            (r#"type eq "WORK""#, true),
            (r#"value ew "@x.com""#, true),
            (r#"value sw "b""#, false),
            ("primary eq true", true),
            (r#"type eq "work" and primary eq false"#, false),
            (r#"not (type eq "home")"#, true),
            ("display pr", false),
            (r#"type ne "home""#, true),
        ];
        for (f, want) in cases {
            assert_eq!(matches(&parse_filter(f).unwrap(), &email), want, "{f}");
        }
    }
}
