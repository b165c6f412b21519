//! The operations on tenants, users and dead letters that both the CLI
//! and the admin API offer, each written once: validation, the rules, the
//! store calls, and the views both print. Synchronous, on a connection the
//! caller holds (the CLI its own, the API a pooled one); no SQL here.

pub mod console_sessions;
pub mod dead_letters;
pub mod tenants;
pub mod users;

use std::sync::Arc;

use diesel::PgConnection;
use scimflow_shared::config::Config;
use scimflow_shared::store::{PgPool, StoreError};

/// Why an operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The named tenant, user or dead letter does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input is wrong; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The input is right but the state forbids it.
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The task running it stopped before it answered (a panic, or the
    /// runtime shutting down); whether it wrote is unknown.
    #[error("the operation was interrupted")]
    Interrupted,
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::Store(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// Run a service function on a pooled connection, off the async threads
/// (the admin API's and the console's handlers).
pub async fn on_pool<T: Send + 'static>(
    pool: &PgPool,
    config: &Arc<Config>,
    f: impl FnOnce(&mut PgConnection, &Config) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (pool, config) = (pool.clone(), config.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(StoreError::from)?;
        f(&mut conn, &config)
    })
    .await
    .map_err(|_| ServiceError::Interrupted)?
}

/// The most entries one page holds.
pub const MAX_PAGE: i64 = 200;
/// Entries per page when none is asked.
pub const DEFAULT_PAGE: i64 = 50;

/// A page: where it starts, and how long it is at most (bounded by
/// `MAX_PAGE`).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    pub fn new(offset: Option<i64>, limit: Option<i64>) -> Result<Page> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if offset < 0 {
            return Err(ServiceError::Invalid("offset must not be negative".into()));
        }
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(Page { offset, limit })
    }

    /// Everything, for callers that walk every page themselves.
    pub const ALL: Page = Page {
        offset: 0,
        limit: i64::MAX,
    };
}

/// Text from an operator: trimmed, non-empty, at most `max` characters,
/// no control characters.
pub(crate) fn text(what: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ServiceError::Invalid(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ServiceError::Invalid(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(value.to_string())
}

/// The longest name an action is recorded with.
pub const MAX_ACTOR: usize = 100;

/// A person's name as actions record it: trimmed, 1 to `MAX_ACTOR`
/// characters, nothing invisible. Control characters, and the format
/// characters that reorder or hide text (bidi overrides, zero-width
/// joiners), could make one name read as another in the record.
pub fn actor_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    (!name.is_empty() && name.chars().count() <= MAX_ACTOR && !name.chars().any(invisible))
        .then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_is_a_visible_name_of_bounded_length() {
        let cases = [
            (" Grace Hopper ", Some("Grace Hopper")),
            ("support:ada", Some("support:ada")),
            ("Zoë Ångström 山田", Some("Zoë Ångström 山田")),
            ("", None),
            ("   ", None),
            ("ada\nbob", None),
            ("ada\u{202E}nimda", None),
            ("a\u{200B}da", None),
            ("\u{FEFF}ada", None),
        ];
        for (raw, want) in cases {
            assert_eq!(actor_name(raw).as_deref(), want, "{raw:?}");
        }
        assert!(actor_name(&"é".repeat(MAX_ACTOR)).is_some());
        assert!(actor_name(&"é".repeat(MAX_ACTOR + 1)).is_none());
    }

    #[test]
    fn pages_and_texts_are_bounded() {
        let pages = [
            ((None, None), Some((0, DEFAULT_PAGE))),
            ((Some(10), Some(MAX_PAGE)), Some((10, MAX_PAGE))),
            ((Some(-1), None), None),
            ((None, Some(0)), None),
            ((None, Some(MAX_PAGE + 1)), None),
        ];
        for ((offset, limit), want) in pages {
            let got = Page::new(offset, limit).ok().map(|p| (p.offset, p.limit));
            assert_eq!(got, want, "{offset:?} {limit:?}");
        }
        let texts = [
            (" acme ", 10, Some("acme")),
            ("", 10, None),
            ("   ", 10, None),
            ("abcdefghijk", 10, None),
            ("a\u{0}b", 10, None),
            ("ééééé", 5, Some("ééééé")),
        ];
        for (value, max, want) in texts {
            assert_eq!(text("name", value, max).ok().as_deref(), want, "{value:?}");
        }
    }
}
