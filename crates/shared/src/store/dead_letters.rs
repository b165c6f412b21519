//! Dead letters after they are written (P4): which keys they hold, and the
//! operator's list / show / replay / discard, each recorded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::commands::enqueue_message;
use super::schema::{dead_letter_actions, dead_letters};
use super::StoreError;

pub const OPEN: &str = "open";
pub const REPLAYING: &str = "replaying";
pub const REPLAYED: &str = "replayed";
pub const DISCARDED: &str = "discarded";
/// The reason given to commands held while their tenant is suspended.
pub const TENANT_SUSPENDED: &str = "held: the tenant is suspended";

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = dead_letters)]
pub struct DeadLetterRow {
    pub id: i64,
    pub command_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_key: Option<String>,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub reason: String,
    pub attempts: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = dead_letter_actions)]
pub struct ActionRow {
    pub action: String,
    pub reason: Option<String>,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
}

/// A key that must not be applied past: it has open dead letters, or
/// replays in flight (whose command ids may pass, in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hold {
    pub open: bool,
    pub replaying: Vec<Uuid>,
}

pub fn holds(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<HashMap<String, Hold>, StoreError> {
    let rows: Vec<(Option<String>, String, Option<Uuid>)> = dead_letters::table
        .filter(dead_letters::status.eq_any([OPEN, REPLAYING]))
        .filter(dead_letters::kafka_key.eq_any(keys))
        .order(dead_letters::id)
        .select((
            dead_letters::kafka_key,
            dead_letters::status,
            dead_letters::command_id,
        ))
        .load(conn)?;
    let mut out: HashMap<String, Hold> = HashMap::new();
    for (key, status, command_id) in rows {
        let Some(key) = key else { continue };
        let hold = out.entry(key).or_default();
        match (status.as_str(), command_id) {
            (REPLAYING, Some(id)) => hold.replaying.push(id),
            _ => hold.open = true,
        }
    }
    Ok(out)
}

/// A replayed command was applied (or answered): its dead letter is done.
/// The newest dead letter of one of a tenant's commands, if any.
pub fn find_by_command(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    command_id: Uuid,
) -> Result<Option<DeadLetterRow>, StoreError> {
    Ok(dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant_id))
        .filter(dead_letters::command_id.eq(command_id))
        .order(dead_letters::id.desc())
        .select(DeadLetterRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn mark_replayed(conn: &mut PgConnection, command_id: Uuid) -> Result<(), StoreError> {
    diesel::update(
        dead_letters::table
            .filter(dead_letters::command_id.eq(command_id))
            .filter(dead_letters::status.eq(REPLAYING)),
    )
    .set((
        dead_letters::status.eq(REPLAYED),
        dead_letters::resolved_at.eq(Some(Utc::now())),
    ))
    .execute(conn)?;
    Ok(())
}

pub fn list(
    conn: &mut PgConnection,
    tenant: Option<Uuid>,
    all: bool,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    let mut q = dead_letters::table
        .order(dead_letters::id)
        .select(DeadLetterRow::as_select())
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(dead_letters::tenant_id.eq(t));
    }
    if !all {
        q = q.filter(dead_letters::status.eq_any([OPEN, REPLAYING]));
    }
    Ok(q.load(conn)?)
}

pub fn find(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<(DeadLetterRow, Vec<ActionRow>)>, StoreError> {
    let Some(row) = dead_letters::table
        .find(id)
        .select(DeadLetterRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let actions = dead_letter_actions::table
        .filter(dead_letter_actions::dead_letter_id.eq(id))
        .order(dead_letter_actions::id)
        .select(ActionRow::as_select())
        .load(conn)?;
    Ok(Some((row, actions)))
}

fn record_action(
    conn: &mut PgConnection,
    id: i64,
    action: &str,
    reason: Option<&str>,
    actor: &str,
) -> Result<(), StoreError> {
    diesel::insert_into(dead_letter_actions::table)
        .values((
            dead_letter_actions::dead_letter_id.eq(id),
            dead_letter_actions::action.eq(action),
            dead_letter_actions::reason.eq(reason),
            dead_letter_actions::actor.eq(actor),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a replay or discard did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Resolution {
    pub replayed: Vec<i64>,
    pub discarded: Vec<i64>,
    pub skipped: Vec<(i64, String)>,
}

/// Replay dead letters back through the normal path: each goes to the
/// outbox (so onto the command topic after this transaction commits) with
/// its original key, and is marked `replaying`, which keeps its key held
/// until the processor applies it. Replaying one letter replays every later
/// open letter of the same key too, in order, so nothing overtakes.
/// Letters not open are skipped, so a replay happens once.
pub fn replay(
    conn: &mut PgConnection,
    ids: Option<&[i64]>,
    tenant: Option<Uuid>,
    actor: &str,
) -> Result<Resolution, StoreError> {
    conn.transaction(|conn| {
        let mut chosen: Vec<DeadLetterRow> = match ids {
            Some(ids) => dead_letters::table
                .filter(dead_letters::id.eq_any(ids))
                .order(dead_letters::id)
                .select(DeadLetterRow::as_select())
                .for_update()
                .load(conn)?,
            None => {
                let open = dead_letters::table
                    .filter(dead_letters::status.eq(OPEN))
                    .order(dead_letters::id)
                    .select(DeadLetterRow::as_select());
                match tenant {
                    Some(t) => open
                        .filter(dead_letters::tenant_id.eq(t))
                        .for_update()
                        .load(conn)?,
                    None => open.for_update().load(conn)?,
                }
            }
        };
        let mut out = Resolution::default();
        // Later open letters of the same keys come along, in order.
        let keys: Vec<String> = chosen.iter().filter_map(|r| r.kafka_key.clone()).collect();
        let first_id = chosen.iter().map(|r| r.id).min().unwrap_or(0);
        let followers: Vec<DeadLetterRow> = dead_letters::table
            .filter(dead_letters::status.eq(OPEN))
            .filter(dead_letters::kafka_key.eq_any(&keys))
            .filter(dead_letters::id.gt(first_id))
            .order(dead_letters::id)
            .select(DeadLetterRow::as_select())
            .for_update()
            .load(conn)?;
        for f in followers {
            if !chosen.iter().any(|c| c.id == f.id) {
                chosen.push(f);
            }
        }
        chosen.sort_by_key(|r| r.id);
        for row in chosen {
            if row.status != OPEN {
                out.skipped
                    .push((row.id, format!("already {}", row.status)));
                continue;
            }
            enqueue_message(
                conn,
                &row.topic,
                row.kafka_key.as_deref().unwrap_or(""),
                &row.payload,
                &[],
            )?;
            let status = if row.command_id.is_some() {
                REPLAYING
            } else {
                REPLAYED
            };
            diesel::update(dead_letters::table.find(row.id))
                .set((
                    dead_letters::status.eq(status),
                    dead_letters::resolution.eq(Some("replayed")),
                    dead_letters::resolved_at.eq(Some(Utc::now())),
                ))
                .execute(conn)?;
            record_action(conn, row.id, "replay", None, actor)?;
            out.replayed.push(row.id);
        }
        Ok(out)
    })
}

/// Give up on a dead letter, with a reason. Its key is released once no
/// other letter holds it.
pub fn discard(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    actor: &str,
) -> Result<Resolution, StoreError> {
    conn.transaction(|conn| {
        let mut out = Resolution::default();
        let status: Option<String> = dead_letters::table
            .find(id)
            .select(dead_letters::status)
            .for_update()
            .first(conn)
            .optional()?;
        match status.as_deref() {
            None => out.skipped.push((id, "no such dead letter".into())),
            Some(OPEN) => {
                diesel::update(dead_letters::table.find(id))
                    .set((
                        dead_letters::status.eq(DISCARDED),
                        dead_letters::resolution.eq(Some(reason)),
                        dead_letters::resolved_at.eq(Some(Utc::now())),
                    ))
                    .execute(conn)?;
                record_action(conn, id, "discard", Some(reason), actor)?;
                out.discarded.push(id);
            }
            Some(other) => out.skipped.push((id, format!("already {other}"))),
        }
        Ok(out)
    })
}

/// On resume: replay what was held while the tenant was suspended.
pub fn replay_held_for_suspension(
    conn: &mut PgConnection,
    tenant: Uuid,
    actor: &str,
) -> Result<Resolution, StoreError> {
    let ids: Vec<i64> = dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::status.eq(OPEN))
        .filter(dead_letters::reason.eq(TENANT_SUSPENDED))
        .select(dead_letters::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(Resolution::default());
    }
    replay(conn, Some(&ids), None, actor)
}
