//! The outbox: messages a transaction queues for Kafka (change events,
//! dead letters, replays), published by the one relay holding the lock in
//! id order and deleted once acknowledged, with the record of the relay's
//! last attempt that lets a successor recover (`processor::relay`).

use diesel::prelude::*;
use serde_json::Value;

use super::schema::{outbox, outbox_attempt};
use super::StoreError;

/// Queue a message for the relay; it is published only if the enclosing
/// transaction commits.
pub fn enqueue_message(
    conn: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &[(&str, String)],
) -> Result<(), StoreError> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::topic.eq(topic),
            outbox::message_key.eq(key),
            outbox::payload.eq(payload),
            outbox::headers.eq(headers_json(headers)),
        ))
        .execute(conn)?;
    Ok(())
}

/// An outbox row's headers: the relay publishes them as they are.
pub(crate) fn headers_json(headers: &[(&str, String)]) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect(),
    )
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: Vec<u8>,
    pub headers: Value,
}

/// Try to become the one outbox relay: a session advisory lock, held for
/// as long as `conn` lives, released by PostgreSQL if the session dies.
pub fn try_relay_lock(conn: &mut PgConnection) -> Result<bool, StoreError> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let row: Locked =
        diesel::sql_query("SELECT pg_try_advisory_lock(7265636) AS locked").get_result(conn)?;
    Ok(row.locked)
}

/// The oldest messages waiting to be published (every outbox row is: a
/// published one is deleted).
pub fn unpublished(conn: &mut PgConnection, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(outbox::table
        .order(outbox::id)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?)
}

/// The rows of `first_id..=last_id` still in the outbox.
pub fn unpublished_between(
    conn: &mut PgConnection,
    first_id: i64,
    last_id: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(outbox::table
        .filter(outbox::id.between(first_id, last_id))
        .order(outbox::id)
        .select(OutboxRow::as_select())
        .load(conn)?)
}

/// What the relay started publishing last, and when.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox_attempt)]
pub struct OutboxAttempt {
    pub first_id: i64,
    pub last_id: i64,
    pub attempted_at: chrono::DateTime<chrono::Utc>,
}

/// Record that publishing the rows `first_id..=last_id` starts now
/// (committed before the first message goes to the broker).
pub fn record_attempt(
    conn: &mut PgConnection,
    first_id: i64,
    last_id: i64,
) -> Result<(), StoreError> {
    let now = chrono::Utc::now();
    diesel::insert_into(outbox_attempt::table)
        .values((
            outbox_attempt::singleton.eq(true),
            outbox_attempt::first_id.eq(first_id),
            outbox_attempt::last_id.eq(last_id),
            outbox_attempt::attempted_at.eq(now),
        ))
        .on_conflict(outbox_attempt::singleton)
        .do_update()
        .set((
            outbox_attempt::first_id.eq(first_id),
            outbox_attempt::last_id.eq(last_id),
            outbox_attempt::attempted_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn last_attempt(conn: &mut PgConnection) -> Result<Option<OutboxAttempt>, StoreError> {
    Ok(outbox_attempt::table
        .select(OutboxAttempt::as_select())
        .first(conn)
        .optional()?)
}

/// Published: the rows go. Deleted by runs of consecutive ids (one index
/// range each) rather than `id = ANY(ids)`, which descends the index once
/// per id; a run holds only ids in `ids`, so a row that committed late
/// with an id between two runs stays.
pub fn delete_published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    for chunk in id_runs(ids).chunks(100) {
        let mut query = diesel::delete(outbox::table).into_boxed();
        for &(first, last) in chunk {
            query = query.or_filter(outbox::id.between(first, last));
        }
        query.execute(conn)?;
    }
    Ok(())
}

/// `ids` as ranges of consecutive ids, each `(first, last)` inclusive.
fn id_runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// How many outbox rows wait to be published.
pub fn outbox_backlog(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(outbox::table.count().get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::id_runs;

    #[test]
    fn published_ids_are_deleted_as_runs_of_consecutive_ids() {
        type Case = (&'static [i64], &'static [(i64, i64)]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[7], &[(7, 7)]),
            (&[1, 2, 3, 4], &[(1, 4)]),
            (&[1, 2, 4, 5, 9], &[(1, 2), (4, 5), (9, 9)]),
            (&[5, 3, 4, 4, 10], &[(3, 5), (10, 10)]),
        ];
        for (ids, runs) in cases {
            assert_eq!(id_runs(ids), *runs, "{ids:?}");
        }
    }
}
