//! What the processor writes beside each command's effect, in the same
//! transaction: its dedup record and outcome (P3), the user's history,
//! dead letters, and the batch's rows gathered for one `COPY` per table
//! (`PendingWrites`). The outbox and its relay are `outbox`.

use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use super::schema::{dead_letters, outbox, processed_commands, user_history, users};
use super::users::UserRow;
use super::StoreError;
use crate::command::Outcome;

/// The stored outcome of one of a tenant's commands, for its status
/// monitor (`Prefer: respond-async`).
pub fn find_tenant_outcome(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    command_id: Uuid,
) -> Result<Option<Outcome>, StoreError> {
    let stored: Option<Value> = processed_commands::table
        .find(command_id)
        .filter(processed_commands::tenant_id.eq(tenant_id))
        .select(processed_commands::outcome)
        .first(conn)
        .optional()?;
    stored.map(decode_outcome).transpose()
}

/// Outcomes of several commands at once (batch dedup).
pub fn find_outcomes(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Outcome>, StoreError> {
    let stored: Vec<Value> = processed_commands::table
        .filter(processed_commands::command_id.eq_any(ids))
        .select(processed_commands::outcome)
        .load(conn)?;
    stored.into_iter().map(decode_outcome).collect()
}

fn decode_outcome(stored: Value) -> Result<Outcome, StoreError> {
    serde_json::from_value(stored).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The rows a batch writes beside its effects (dedup outcomes, history,
/// change events), and the users it creates, collected while its commands
/// run and written with one binary `COPY` per table just before the batch
/// commits: four statements per batch instead of four per create. New
/// users go in earlier whenever a command is about to read users
/// (`flush_new_users`). A command whose savepoint rolls back takes its rows
/// out again (`mark` / `rollback_to`), so what is written is exactly what
/// the committed effects produced.
#[derive(Default)]
pub struct PendingWrites {
    new_users: Vec<UserRow>,
    outcomes: Vec<(Uuid, Uuid, i16, Value)>,
    history: Vec<PendingHistory>,
    messages: Vec<(String, String, Vec<u8>, Value)>,
}

/// A history row waiting for its batch to commit.
struct PendingHistory {
    tenant_id: Uuid,
    user_id: Uuid,
    command_id: Option<Uuid>,
    request_id: Option<String>,
    change: String,
    before: Option<Value>,
    after: Value,
}

/// How many rows of each kind were pending at a point.
#[derive(Debug, Clone, Copy)]
pub struct PendingMark {
    new_users: usize,
    outcomes: usize,
    history: usize,
    messages: usize,
}

impl PendingWrites {
    /// A user to insert; the caller has checked every rule that could
    /// refuse it (a uniqueness index that still does fails the batch).
    pub fn new_user(&mut self, row: UserRow) {
        self.new_users.push(row);
    }

    /// Insert the new users now: before anything reads the users table.
    pub fn flush_new_users(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if !self.new_users.is_empty() {
            diesel::copy_from(users::table)
                .from_insertable(std::mem::take(&mut self.new_users))
                .execute(conn)?;
        }
        Ok(())
    }

    pub fn outcome(&mut self, tenant_id: Uuid, outcome: &Outcome) -> Result<(), StoreError> {
        let json = serde_json::to_value(outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.outcomes
            .push((outcome.command_id, tenant_id, outcome.status() as i16, json));
        Ok(())
    }

    pub fn history(&mut self, e: HistoryEntry<'_>) {
        self.history.push(PendingHistory {
            tenant_id: e.tenant_id,
            user_id: e.user_id,
            command_id: e.command_id,
            request_id: e.request_id.map(str::to_string),
            change: e.change.to_string(),
            before: e.before,
            after: e.after,
        });
    }

    /// A message for the relay (`enqueue_message`), in order, with the
    /// headers it is to be published with.
    pub fn message(
        &mut self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
        headers: &[(&str, String)],
    ) {
        self.messages.push((
            topic.to_string(),
            key.to_string(),
            payload,
            super::outbox::headers_json(headers),
        ));
    }

    pub fn mark(&self) -> PendingMark {
        PendingMark {
            new_users: self.new_users.len(),
            outcomes: self.outcomes.len(),
            history: self.history.len(),
            messages: self.messages.len(),
        }
    }

    pub fn rollback_to(&mut self, mark: PendingMark) {
        self.new_users.truncate(mark.new_users);
        self.outcomes.truncate(mark.outcomes);
        self.history.truncate(mark.history);
        self.messages.truncate(mark.messages);
    }

    /// Write everything pending, in the order it was added: one binary
    /// `COPY` per table, which also assigns outbox ids in row order, so the
    /// relay publishes events in the order they were produced (P5).
    pub fn flush(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        self.flush_new_users(conn)?;
        if !self.outcomes.is_empty() {
            let rows: Vec<_> = self
                .outcomes
                .iter()
                .map(|(command_id, tenant_id, status, outcome)| {
                    (
                        processed_commands::command_id.eq(*command_id),
                        processed_commands::tenant_id.eq(*tenant_id),
                        processed_commands::status.eq(*status),
                        processed_commands::outcome.eq(outcome),
                    )
                })
                .collect();
            diesel::copy_from(processed_commands::table)
                .from_insertable(rows)
                .execute(conn)?;
        }
        if !self.history.is_empty() {
            let rows: Vec<_> = self
                .history
                .iter()
                .map(|h| {
                    (
                        user_history::tenant_id.eq(h.tenant_id),
                        user_history::user_id.eq(h.user_id),
                        user_history::command_id.eq(h.command_id),
                        user_history::request_id.eq(h.request_id.as_deref()),
                        user_history::change.eq(h.change.as_str()),
                        user_history::before.eq(h.before.as_ref()),
                        user_history::after.eq(&h.after),
                    )
                })
                .collect();
            diesel::copy_from(user_history::table)
                .from_insertable(rows)
                .execute(conn)?;
        }
        if !self.messages.is_empty() {
            let rows: Vec<_> = self
                .messages
                .iter()
                .map(|(topic, key, payload, headers)| {
                    (
                        outbox::topic.eq(topic.as_str()),
                        outbox::message_key.eq(key.as_str()),
                        outbox::payload.eq(payload.as_slice()),
                        outbox::headers.eq(headers),
                    )
                })
                .collect();
            diesel::copy_from(outbox::table)
                .from_insertable(rows)
                .execute(conn)?;
        }
        *self = PendingWrites::default();
        Ok(())
    }
}

pub struct HistoryEntry<'a> {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub command_id: Option<Uuid>,
    pub request_id: Option<&'a str>,
    pub change: &'a str,
    pub before: Option<Value>,
    pub after: Value,
}

pub fn record_history(conn: &mut PgConnection, e: HistoryEntry<'_>) -> Result<(), StoreError> {
    diesel::insert_into(user_history::table)
        .values((
            user_history::tenant_id.eq(e.tenant_id),
            user_history::user_id.eq(e.user_id),
            user_history::command_id.eq(e.command_id),
            user_history::request_id.eq(e.request_id),
            user_history::change.eq(e.change),
            user_history::before.eq(e.before),
            user_history::after.eq(e.after),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = user_history)]
pub struct HistoryRow {
    pub id: i64,
    pub command_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub change: String,
    pub before: Option<Value>,
    pub after: Value,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

/// A user's history, oldest first: all of it, or its `newest` entries.
pub fn history(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    newest: Option<i64>,
) -> Result<Vec<HistoryRow>, StoreError> {
    let of_user = user_history::table
        .filter(user_history::tenant_id.eq(tenant_id))
        .filter(user_history::user_id.eq(user_id))
        .select(HistoryRow::as_select());
    Ok(match newest {
        None => of_user.order(user_history::id).load(conn)?,
        Some(n) => {
            let mut rows: Vec<HistoryRow> =
                of_user.order(user_history::id.desc()).limit(n).load(conn)?;
            rows.reverse();
            rows
        }
    })
}

pub struct NewDeadLetter<'a> {
    pub command_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a str>,
    pub payload: &'a [u8],
    pub reason: &'a str,
    pub attempts: i32,
    /// The letter it was replayed from, if this is a replay failing again.
    pub replay_of: Option<i64>,
    /// The first letter of its chain of replays.
    pub replay_origin: Option<i64>,
}

pub fn record_dead_letter(
    conn: &mut PgConnection,
    d: NewDeadLetter<'_>,
) -> Result<i64, StoreError> {
    Ok(diesel::insert_into(dead_letters::table)
        .values((
            dead_letters::command_id.eq(d.command_id),
            dead_letters::tenant_id.eq(d.tenant_id),
            dead_letters::topic.eq(d.topic),
            dead_letters::kafka_partition.eq(d.partition),
            dead_letters::kafka_offset.eq(d.offset),
            dead_letters::kafka_key.eq(d.key),
            dead_letters::payload.eq(d.payload),
            dead_letters::reason.eq(d.reason),
            dead_letters::attempts.eq(d.attempts),
            dead_letters::replay_of.eq(d.replay_of),
            dead_letters::replay_origin.eq(d.replay_origin),
        ))
        .returning(dead_letters::id)
        .get_result(conn)?)
}
