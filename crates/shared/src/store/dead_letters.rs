//! Dead letters after they are written (P4): which keys they hold, and the
//! operator's list / show / replay / discard, each recorded. A replay that
//! fails again is a new letter naming the one it came from (`replay_of`)
//! and keeping its place in its key's order (`replay_origin`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::outbox::enqueue_message;
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
    /// The letter this one was replayed from, when its replay failed again.
    pub replay_of: Option<i64>,
    /// The first letter of that chain of replays.
    pub replay_origin: Option<i64>,
}

impl DeadLetterRow {
    /// Where it stands in its key's order: where its command first failed.
    pub fn position(&self) -> i64 {
        self.replay_origin.unwrap_or(self.id)
    }
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
    /// The earliest place in the key's order an open letter takes
    /// (`DeadLetterRow::position`). A replay placed after it stays held.
    pub open_from: Option<i64>,
    /// Replays in flight: command id, the letter being replayed, its place.
    pub replaying: Vec<(Uuid, i64, i64)>,
}

impl Hold {
    /// A new open letter at `position` (see `open_from`).
    pub fn opened(&mut self, position: i64) {
        self.open = true;
        self.open_from = Some(self.open_from.map_or(position, |p| p.min(position)));
    }

    /// Take `command_id` out of the replays in flight: its letter's id and
    /// place, and whether it may be applied (no open letter before it).
    pub fn take_replay(&mut self, command_id: Uuid) -> Option<Replay> {
        let i = self
            .replaying
            .iter()
            .position(|(id, _, _)| *id == command_id)?;
        let (_, letter, position) = self.replaying.remove(i);
        Some(Replay {
            letter,
            position,
            free: self.open_from.is_none_or(|p| p > position),
        })
    }

    /// Is a command that is not a replay held?
    pub fn holds_new_commands(&self) -> bool {
        self.open || !self.replaying.is_empty()
    }
}

/// A replay in flight, as its command comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replay {
    pub letter: i64,
    pub position: i64,
    pub free: bool,
}

/// What may go into a text column: PostgreSQL text and jsonb hold no NUL.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

pub fn holds(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<HashMap<String, Hold>, StoreError> {
    type Row = (Option<String>, String, Option<Uuid>, i64, Option<i64>);
    let rows: Vec<Row> = dead_letters::table
        .filter(dead_letters::status.eq_any([OPEN, REPLAYING]))
        .filter(dead_letters::kafka_key.eq_any(keys))
        .order(dead_letters::id)
        .select((
            dead_letters::kafka_key,
            dead_letters::status,
            dead_letters::command_id,
            dead_letters::id,
            dead_letters::replay_origin,
        ))
        .load(conn)?;
    let mut out: HashMap<String, Hold> = HashMap::new();
    for (key, status, command_id, id, origin) in rows {
        let Some(key) = key else { continue };
        let hold = out.entry(key).or_default();
        let position = origin.unwrap_or(id);
        match (status.as_str(), command_id) {
            (REPLAYING, Some(command)) => hold.replaying.push((command, id, position)),
            _ => hold.opened(position),
        }
    }
    Ok(out)
}

/// How many letters of a tenant are open or replaying.
pub fn count_open(conn: &mut PgConnection, tenant: Uuid) -> Result<i64, StoreError> {
    Ok(dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::status.eq_any([OPEN, REPLAYING]))
        .count()
        .get_result(conn)?)
}

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

/// A replayed command was applied (or answered): its dead letter is done.
/// Returns the newest letter it closed and that letter's place
/// (`DeadLetterRow::position`), if any.
pub fn mark_replayed(
    conn: &mut PgConnection,
    command_id: Uuid,
) -> Result<Option<(i64, i64)>, StoreError> {
    let closed: Vec<(i64, Option<i64>)> = diesel::update(
        dead_letters::table
            .filter(dead_letters::command_id.eq(command_id))
            .filter(dead_letters::status.eq(REPLAYING)),
    )
    .set((
        dead_letters::status.eq(REPLAYED),
        dead_letters::resolved_at.eq(Some(Utc::now())),
    ))
    .returning((dead_letters::id, dead_letters::replay_origin))
    .get_results(conn)?;
    Ok(closed
        .into_iter()
        .max()
        .map(|(id, origin)| (id, origin.unwrap_or(id))))
}

/// The letters replayed from `id` that failed again, oldest first.
pub fn replayed_as(conn: &mut PgConnection, id: i64) -> Result<Vec<i64>, StoreError> {
    Ok(dead_letters::table
        .filter(dead_letters::replay_of.eq(id))
        .order(dead_letters::id)
        .select(dead_letters::id)
        .load(conn)?)
}

/// Open or replaying letters (all with `all`), oldest first, a page of
/// them.
pub fn list(
    conn: &mut PgConnection,
    tenant: Option<Uuid>,
    all: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<DeadLetterRow>, StoreError> {
    let mut q = dead_letters::table
        .order(dead_letters::id)
        .select(DeadLetterRow::as_select())
        .offset(offset)
        .limit(limit)
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
/// open letter of the same key too, in the key's order
/// (`DeadLetterRow::position`), so nothing overtakes. Skipped, with the
/// reason: letters not open (a replay happens once), a letter with an
/// earlier open letter of its key left out (replay that one first), and a
/// payload that cannot be decoded (it would only come back; discard it).
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
        // Later open letters of the same keys come along, in their key's
        // order; an earlier one left out means this replay must wait (P2).
        let keys: Vec<String> = chosen.iter().filter_map(|r| r.kafka_key.clone()).collect();
        let mut first: HashMap<String, i64> = HashMap::new();
        for r in &chosen {
            if let Some(k) = &r.kafka_key {
                let p = first.entry(k.clone()).or_insert(r.position());
                *p = (*p).min(r.position());
            }
        }
        let open_of_keys: Vec<DeadLetterRow> = dead_letters::table
            .filter(dead_letters::status.eq(OPEN))
            .filter(dead_letters::kafka_key.eq_any(&keys))
            .order(dead_letters::id)
            .select(DeadLetterRow::as_select())
            .for_update()
            .load(conn)?;
        let mut others: Vec<(Option<String>, i64, i64)> = Vec::new();
        for f in open_of_keys {
            if chosen.iter().any(|c| c.id == f.id) {
                continue;
            }
            let starts = f.kafka_key.as_ref().and_then(|k| first.get(k)).copied();
            if starts.is_some_and(|p| f.position() > p) {
                chosen.push(f);
            } else {
                others.push((f.kafka_key.clone(), f.id, f.position()));
            }
        }
        chosen.sort_by_key(|r| (r.position(), r.id));
        let mut refused_keys: Vec<String> = Vec::new();
        for row in chosen {
            if row.status != OPEN {
                out.skipped
                    .push((row.id, format!("already {}", row.status)));
                continue;
            }
            if let Err(why) = replayable(&row.payload) {
                out.skipped.push((
                    row.id,
                    format!(
                        "its payload cannot be decoded ({why}); nothing about it can have changed, so replaying it would only dead-letter it again: discard it"
                    ),
                ));
                refused_keys.extend(row.kafka_key.clone());
                continue;
            }
            let position = row.position();
            let earlier = others
                .iter()
                .find(|(key, _, at)| *key == row.kafka_key && *at < position);
            if let Some((_, earlier, _)) = earlier {
                out.skipped.push((
                    row.id,
                    format!(
                        "dead letter {earlier} holds an earlier command for the same resource: replay (or discard) it first"
                    ),
                ));
                refused_keys.extend(row.kafka_key.clone());
                continue;
            }
            if row.kafka_key.as_ref().is_some_and(|k| refused_keys.contains(k)) {
                out.skipped.push((
                    row.id,
                    "an earlier letter of the same resource was not replayed".into(),
                ));
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

/// Can the payload be applied once replayed? A command, or a batch of
/// them as an older processor dead-lettered it whole.
fn replayable(payload: &[u8]) -> Result<(), String> {
    if crate::command::CommandBatch::is_batch(payload) {
        let commands = crate::command::CommandBatch::split(payload)
            .map_err(|e| format!("undecodable command batch: {e}"))?;
        for (_, envelope) in commands {
            crate::command::CommandEnvelope::decode(&envelope)?;
        }
        return Ok(());
    }
    crate::command::CommandEnvelope::decode(payload).map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_passes_its_key_only_with_no_open_letter_before_its_own() {
        let (c1, c2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // (open letters at these places, replays in flight, the replay
        // taken, what comes back)
        type Case = (
            &'static [i64],
            Vec<(Uuid, i64, i64)>,
            Uuid,
            Option<(i64, bool)>,
        );
        let cases: Vec<Case> = vec![
            // Nothing open: it passes.
            (&[], vec![(c1, 10, 10)], c1, Some((10, true))),
            // An open letter after it (a command held behind the replay).
            (&[12], vec![(c1, 10, 10)], c1, Some((10, true))),
            // An open letter before it: a replay ahead of it that failed
            // again (placed where its command first failed).
            (&[5], vec![(c1, 10, 10)], c1, Some((10, false))),
            (
                &[12, 5],
                vec![(c1, 10, 10), (c2, 11, 11)],
                c2,
                Some((11, false)),
            ),
            // A replay that failed before keeps its first place, ahead of
            // letters written since.
            (&[7], vec![(c1, 9, 3)], c1, Some((9, true))),
            // Not a replay in flight.
            (&[], vec![(c1, 10, 10)], c2, None),
        ];
        for (open, replaying, taken, want) in cases {
            let mut hold = Hold {
                replaying: replaying.clone(),
                ..Hold::default()
            };
            for &at in open {
                hold.opened(at);
            }
            let got = hold.take_replay(taken).map(|r| (r.letter, r.free));
            assert_eq!(got, want, "{open:?} {replaying:?}");
            assert_eq!(
                hold.holds_new_commands(),
                !open.is_empty() || !hold.replaying.is_empty()
            );
        }
    }

    #[test]
    fn text_for_the_database_holds_no_nul() {
        let cases = [("t/u", "t/u"), ("t/\0u", "t/\u{fffd}u"), ("", "")];
        for (text, stored) in cases {
            assert_eq!(storable(text), stored, "{text:?}");
        }
    }
}
