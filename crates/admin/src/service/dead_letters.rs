//! Dead letters (P4) for operators: list, show, replay, discard. The
//! rules (what may be replayed, in which order, what a discard releases)
//! are the store's (`store::dead_letters`); every action is recorded with
//! its actor.

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use scimflow_shared::store::dead_letters::{self, ActionRow, DeadLetterRow, Resolution};

use super::{text, Page, Result, ServiceError};

/// The most letters one replay may name.
pub const MAX_REPLAY_IDS: usize = 1000;
/// The longest reason for a discard.
pub const MAX_REASON: usize = 1000;

/// A dead letter without its payload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    pub command_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_key: Option<String>,
    /// Why it could not be applied.
    pub reason: String,
    pub attempts: i32,
    /// `open`, `replaying`, `replayed` or `discarded`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    /// The letter this one was replayed from, when its replay failed again.
    pub replay_of: Option<i64>,
    /// The first letter of that chain of replays.
    pub replay_origin: Option<i64>,
}

impl From<DeadLetterRow> for DeadLetterView {
    fn from(r: DeadLetterRow) -> Self {
        DeadLetterView {
            id: r.id,
            command_id: r.command_id,
            tenant_id: r.tenant_id,
            topic: r.topic,
            kafka_partition: r.kafka_partition,
            kafka_offset: r.kafka_offset,
            kafka_key: r.kafka_key,
            reason: r.reason,
            attempts: r.attempts,
            status: r.status,
            created_at: r.created_at,
            resolved_at: r.resolved_at,
            resolution: r.resolution,
            replay_of: r.replay_of,
            replay_origin: r.replay_origin,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    pub action: String,
    pub reason: Option<String>,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
}

impl From<ActionRow> for ActionView {
    fn from(a: ActionRow) -> Self {
        ActionView {
            action: a.action,
            reason: a.reason,
            actor: a.actor,
            occurred_at: a.occurred_at,
        }
    }
}

/// One letter: reason, origin, payload and every action taken.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterDetail {
    pub dead_letter: DeadLetterView,
    /// The command as it was queued (JSON), or its bytes as text.
    pub payload: Value,
    pub actions: Vec<ActionView>,
    pub replay_of: Option<i64>,
    /// The letters its own replays became.
    pub replayed_as: Vec<i64>,
}

/// What a replay or discard did, letter by letter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResolutionView {
    pub replayed: Vec<i64>,
    pub discarded: Vec<i64>,
    /// Letters left as they were, each with the reason.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub skipped: Vec<(i64, String)>,
}

impl From<Resolution> for ResolutionView {
    fn from(r: Resolution) -> Self {
        ResolutionView {
            replayed: r.replayed,
            discarded: r.discarded,
            skipped: r.skipped,
        }
    }
}

pub fn list(
    conn: &mut PgConnection,
    tenant: Option<Uuid>,
    all: bool,
    page: Page,
) -> Result<Vec<DeadLetterView>> {
    Ok(
        dead_letters::list(conn, tenant, all, page.offset, page.limit)?
            .into_iter()
            .map(DeadLetterView::from)
            .collect(),
    )
}

fn no_letter(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no dead letter {id}"))
}

/// What a redacted secret reads as.
pub const REDACTED: &str = "[redacted]";

/// A command's secrets hidden from the people reading it: every
/// `password` attribute, whatever its case or nesting, and the value of
/// every PATCH operation whose path names it. An IdP that syncs passwords
/// sends them in creates, replaces and PATCHes alike; they are never
/// stored, and a dead letter must not show them either.
pub fn redact_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let names_password = map
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| p.to_ascii_lowercase().contains("password"));
            for (key, v) in map.iter_mut() {
                if key.eq_ignore_ascii_case("password") || (names_password && key == "value") {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// One letter, its secrets redacted (`redact_secrets`).
pub fn show(conn: &mut PgConnection, id: i64) -> Result<DeadLetterDetail> {
    let (row, actions) = dead_letters::find(conn, id)?.ok_or_else(|| no_letter(id))?;
    let mut payload: Value = serde_json::from_slice(&row.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&row.payload).into_owned()));
    redact_secrets(&mut payload);
    let replayed_as = dead_letters::replayed_as(conn, id)?;
    Ok(DeadLetterDetail {
        replay_of: row.replay_of,
        dead_letter: row.into(),
        payload,
        actions: actions.into_iter().map(ActionView::from).collect(),
        replayed_as,
    })
}

/// Which letters to replay: these, or every open one (of a tenant).
pub enum ReplayWhat {
    Ids(Vec<i64>),
    AllOpen { tenant: Option<Uuid> },
}

/// Replay letters back through the normal path, once; later open letters
/// of the same resource come along in order, and what may not be replayed
/// is skipped with the reason.
pub fn replay(conn: &mut PgConnection, what: ReplayWhat, actor: &str) -> Result<ResolutionView> {
    let done = match what {
        ReplayWhat::Ids(ids) => {
            if ids.is_empty() || ids.len() > MAX_REPLAY_IDS {
                return Err(ServiceError::Invalid(format!(
                    "name 1 to {MAX_REPLAY_IDS} dead letters"
                )));
            }
            for id in &ids {
                if dead_letters::find(conn, *id)?.is_none() {
                    return Err(no_letter(*id));
                }
            }
            dead_letters::replay(conn, Some(&ids), None, actor)?
        }
        ReplayWhat::AllOpen { tenant } => dead_letters::replay(conn, None, tenant, actor)?,
    };
    Ok(done.into())
}

/// Give up on a letter, with a reason; its resource's later commands flow
/// again.
pub fn discard(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    actor: &str,
) -> Result<ResolutionView> {
    // A reason typed in a box may span lines: kept, as spaces.
    let one_line: String = reason
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let reason = text("reason", &one_line, MAX_REASON)?;
    if dead_letters::find(conn, id)?.is_none() {
        return Err(no_letter(id));
    }
    Ok(dead_letters::discard(conn, id, &reason, actor)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_never_show_however_they_were_sent() {
        let cases = [
            (
                json!({"command": {"body": {"userName": "ada", "password": "hunter2"}}}),
                json!({"command": {"body": {"userName": "ada", "password": REDACTED}}}),
            ),
            (
                json!({"body": {"PASSWORD": "x", "name": {"password": "y"}}}),
                json!({"body": {"PASSWORD": REDACTED, "name": {"password": REDACTED}}}),
            ),
            (
                json!({"Operations": [
                    {"op": "replace", "path": "password", "value": "hunter2"},
                    {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Password", "value": "x"},
                    {"op": "replace", "value": {"password": "z", "active": true}},
                    {"op": "replace", "path": "title", "value": "password"}
                ]}),
                json!({"Operations": [
                    {"op": "replace", "path": "password", "value": REDACTED},
                    {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Password", "value": REDACTED},
                    {"op": "replace", "value": {"password": REDACTED, "active": true}},
                    {"op": "replace", "path": "title", "value": "password"}
                ]}),
            ),
            (
                json!("raw bytes with password=1"),
                json!("raw bytes with password=1"),
            ),
        ];
        for (mut sent, shown) in cases {
            redact_secrets(&mut sent);
            assert_eq!(sent, shown);
        }
    }
}
