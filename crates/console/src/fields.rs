//! Forms and query strings as the browser sends them: named text fields,
//! a name possibly repeated (checkboxes), every value possibly hostile.
//! Reading a field never fails; deciding what its text means is the
//! caller's (and the service's) job.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::page::ConsoleError;

/// The most fields read from one form or query: more are ignored.
const MAX_FIELDS: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(bytes)
                .take(MAX_FIELDS)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, as sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, unless blank: an empty filter
    /// box means no filter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A whole number, or a 400 naming the field.
    pub fn number(&self, name: &str) -> Result<Option<i64>, ConsoleError> {
        self.text(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ConsoleError::BadRequest(format!("{name} must be a whole number")))
            })
            .transpose()
    }

    /// A time: what a `datetime-local` box sends (read as UTC) or RFC 3339.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
        self.text(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    ConsoleError::BadRequest(format!(
                        "{name} must be a date and time such as 2026-12-01T09:30"
                    ))
                })
            })
            .transpose()
    }
}

/// Years a filter may name: the log holds none before 1970, and
/// PostgreSQL refuses some that chrono reads (`-5000`).
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let parsed = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => [
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc()),
    };
    parsed.filter(|t| YEARS.contains(&chrono::Datelike::year(t)))
}

/// A time as a `datetime-local` box shows it (UTC).
pub fn time_box(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

impl<S: Send + Sync> FromRequestParts<S> for Fields {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ConsoleError> {
        Ok(Fields::parse(
            parts.uri.query().unwrap_or_default().as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_are_read_as_sent() {
        let f = Fields::parse(b"q=+Acme+%26+Co+&feature=voice&feature=listener&empty=&n=12&bad=x");
        assert_eq!(f.get("q"), Some(" Acme & Co "));
        assert_eq!(f.text("q"), Some("Acme & Co"));
        assert_eq!(f.text("empty"), None);
        assert_eq!(f.get("missing"), None);
        assert_eq!(f.all("feature"), ["voice", "listener"]);
        assert_eq!(f.number("n").ok().flatten(), Some(12));
        assert!(f.number("bad").is_err());
        assert_eq!(f.number("missing").ok().flatten(), None);
    }

    #[test]
    fn times_are_datetime_local_or_rfc3339() {
        let cases = [
            ("2026-12-01T09:30", Some("2026-12-01T09:30:00+00:00")),
            ("2026-12-01T09:30:15", Some("2026-12-01T09:30:15+00:00")),
            (
                "2026-12-01T09:30:00+02:00",
                Some("2026-12-01T07:30:00+00:00"),
            ),
            ("2026-12-01", None),
            ("yesterday", None),
            ("2026-13-01T09:30", None),
            ("-5000-01-01T00:00", None),
            ("+12345-01-01T00:00", None),
            ("1969-12-31T23:59", None),
            ("9999-12-31T23:59", Some("9999-12-31T23:59:00+00:00")),
        ];
        for (text, want) in cases {
            let got = parse_time(text).map(|t| t.to_rfc3339());
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_into_at_most_the_bounded_fields(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let f = Fields::parse(&bytes);
            prop_assert!(f.0.len() <= MAX_FIELDS);
            let _ = f.time("since");
            let _ = f.number("offset");
        }

        #[test]
        fn any_text_round_trips(value in "\\PC{0,300}") {
            let encoded: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &value)
                .finish();
            let parsed = Fields::parse(encoded.as_bytes());
            prop_assert_eq!(parsed.get("q"), Some(value.as_str()));
        }
    }
}
