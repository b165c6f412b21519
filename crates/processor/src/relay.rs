//! The outbox relay: publishes committed change events, dead letters and
//! replays in the order they were written, then deletes them.
//!
//! One relay publishes at a time across all processors (a PostgreSQL
//! session advisory lock), which keeps per-key order. Publishing a batch
//! is: record the attempt (the batch's id range, committed), publish and
//! await every ack, delete the rows. Each message carries its outbox row
//! id in a header.
//!
//! A relay that dies between publishing and deleting leaves rows of the
//! attempted range in the outbox, some of them possibly on their topics
//! (a row that committed late with an id in the range is among them and
//! is simply not found there). The next relay
//! to take the lock reads the tails of those topics and deletes what it
//! finds instead of publishing it again; for rows it does not find it
//! waits until the dead relay's producer would have given up on them
//! (`message.timeout.ms`), since a request already on the wire may still
//! land. So each row is published once, without Kafka transactions (which
//! tansu lacks).
//!
//! A row too large for a message (`Config::max_message_bytes`: a change
//! event whose resource grew past it) is published reduced rather than
//! retried forever: an event without its `resource`, marked
//! `"truncated": true`, its ids and `sequence` kept (docs/events.md); any
//! other message without its payload, with the `scimflow-truncated` header
//! (a dead letter's payload stays in `dead_letters`).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::Utc;
use diesel::{Connection, PgConnection};
use scimflow_bus::tail::{read_tails, Depth};
use scimflow_bus::{self as bus, BusError, KafkaSettings, Publisher};
use tokio::sync::watch;

use scimflow_shared::store::outbox::{
    delete_published, last_attempt, record_attempt, try_relay_lock, unpublished,
    unpublished_between, OutboxRow,
};
use scimflow_shared::store::StoreError;

use crate::pause_unless_shutdown;

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the broker: {0}")]
    Bus(#[from] BusError),
    #[error("relay task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Rows per publish; also how far back from a partition's end recovery
/// reads, since at most one batch can be published but unmarked.
const BATCH: i64 = 1000;

/// How long after an attempt a dead relay's message may still land: the
/// producer's `message.timeout.ms`, plus a margin.
fn in_flight_horizon() -> chrono::Duration {
    chrono::Duration::milliseconds(i64::from(bus::MESSAGE_TIMEOUT_MS) + 5_000)
}

pub async fn run(
    database_url: String,
    kafka: KafkaSettings,
    publisher: Publisher,
    max_message_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let leading = lead(
            &database_url,
            &kafka,
            &publisher,
            max_message_bytes,
            &mut shutdown,
        );
        if let Err(e) = leading.await {
            tracing::warn!(error = %e, "outbox relay interrupted; retrying");
        }
        if pause_unless_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// Run `f` on the relay's connection, on the blocking pool.
async fn on<T: Send + 'static>(
    conn: &mut Option<PgConnection>,
    f: impl FnOnce(&mut PgConnection) -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    let mut c = conn.take().ok_or(RelayError::Store(StoreError::Corrupt(
        "relay connection lost".into(),
    )))?;
    let (c, result) = tokio::task::spawn_blocking(move || {
        let result = f(&mut c);
        (c, result)
    })
    .await?;
    *conn = Some(c);
    result
}

/// Take the relay lock on a dedicated connection, recover, then publish
/// until the connection fails or we shut down.
async fn lead(
    database_url: &str,
    kafka: &KafkaSettings,
    publisher: &Publisher,
    max_message_bytes: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let url = database_url.to_string();
    let conn = tokio::task::spawn_blocking(move || -> Result<Option<PgConnection>, RelayError> {
        let mut conn = PgConnection::establish(&url).map_err(StoreError::from)?;
        Ok(try_relay_lock(&mut conn)?.then_some(conn))
    })
    .await??;
    let mut conn = match conn {
        Some(c) => Some(c),
        None => return Ok(()), // another processor relays; stand by
    };
    let kafka = kafka.clone();
    on(&mut conn, move |c| recover(c, &kafka)).await?;
    loop {
        let rows = on(&mut conn, |c| Ok(unpublished(c, BATCH)?)).await?;
        if rows.is_empty() {
            if pause_unless_shutdown(shutdown, Duration::from_millis(20)).await {
                return Ok(());
            }
            continue;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Rows come in id order.
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            continue;
        };
        on(&mut conn, move |c| Ok(record_attempt(c, first, last)?)).await?;
        publish(publisher, &rows, max_message_bytes).await?;
        on(&mut conn, move |c| Ok(delete_published(c, &ids)?)).await?;
    }
}

/// Produce every row and wait for all acknowledgements (acks=all). Rows
/// are enqueued in id order on an idempotent producer, so per-key order
/// holds.
async fn publish(
    publisher: &Publisher,
    rows: &[OutboxRow],
    max_message_bytes: usize,
) -> Result<(), RelayError> {
    // The producer's futures borrow what they send: measured first.
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let messages: Vec<Outgoing<'_>> = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| Outgoing::of(row, id, max_message_bytes))
        .collect();
    let messages: Vec<bus::Outgoing<'_>> = messages
        .iter()
        .map(|m| {
            bus::Outgoing::to(&m.row.topic, &m.payload)
                .key(&m.row.message_key)
                .headers(&m.headers)
        })
        .collect();
    let timeout = Duration::from_millis(u64::from(bus::MESSAGE_TIMEOUT_MS));
    Ok(publisher.publish_all(&messages, timeout).await?)
}

/// One outbox row as it is published.
struct Outgoing<'a> {
    row: &'a OutboxRow,
    headers: Vec<(&'a str, &'a str)>,
    payload: Cow<'a, [u8]>,
}

impl<'a> Outgoing<'a> {
    /// The row's message, with its outbox id; reduced if larger than a
    /// message may be.
    fn of(row: &'a OutboxRow, outbox_id: &'a str, max_message_bytes: usize) -> Self {
        let mut headers: Vec<(&str, &str)> = row
            .headers
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        headers.push((bus::headers::OUTBOX_ID, outbox_id));
        let size = |payload: &[u8], headers: &[(&str, &str)]| {
            bus::message_size(row.message_key.len(), payload.len(), headers)
        };
        let mut payload = Cow::Borrowed(row.payload.as_slice());
        if size(&payload, &headers) > max_message_bytes {
            payload = match reduced_event(&row.payload) {
                Some(event) if size(&event, &headers) <= max_message_bytes => Cow::Owned(event),
                _ => {
                    headers.push((bus::headers::TRUNCATED, "true"));
                    Cow::Borrowed(&[][..])
                }
            };
            tracing::warn!(
                outbox_id = row.id,
                topic = %row.topic,
                bytes = row.payload.len(),
                max_message_bytes,
                "an outbox message is larger than a message may be; publishing it reduced"
            );
        }
        Outgoing {
            row,
            headers,
            payload,
        }
    }
}

/// A change event without what can grow without bound: the resource (and a
/// group event's member id lists, whose counts stay), marked `truncated`.
/// What identifies it (`event_id`, `type`, `tenant_id`, `resource_id`,
/// `sequence`, `command_id`, `request_id`, `changed`) is kept. `None` for
/// a payload that is not a change event.
fn reduced_event(payload: &[u8]) -> Option<Vec<u8>> {
    let mut event: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).ok()?;
    event.get("schema_version")?;
    event.insert("resource".into(), serde_json::Value::Null);
    for list in ["members_added", "members_removed"] {
        if let Some(ids) = event.get_mut(list) {
            *ids = serde_json::Value::Array(Vec::new());
        }
    }
    event.insert("truncated".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&event).ok()
}

/// Delete the rows a previous relay attempted that are on their topics
/// already; wait for the ones that may still land.
fn recover(conn: &mut PgConnection, kafka: &KafkaSettings) -> Result<(), RelayError> {
    let Some(attempt) = last_attempt(conn)? else {
        return Ok(());
    };
    let in_flight = unpublished_between(conn, attempt.first_id, attempt.last_id)?;
    if in_flight.is_empty() {
        return Ok(());
    }
    let wanted: HashSet<i64> = in_flight.iter().map(|r| r.id).collect();
    let topics: BTreeSet<&str> = in_flight.iter().map(|r| r.topic.as_str()).collect();
    let horizon = attempt.attempted_at + in_flight_horizon();
    loop {
        let found = scan_tails(kafka, &topics, &wanted)?;
        let settled = found.len() == wanted.len() || Utc::now() > horizon;
        if settled {
            tracing::info!(
                attempted = wanted.len(),
                already_published = found.len(),
                "outbox relay took over; rows found on their topics are not published again"
            );
            delete_published(conn, &found.into_iter().collect::<Vec<_>>())?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The outbox ids among `wanted` found in the last `BATCH` messages of
/// every partition of `topics`.
fn scan_tails(
    kafka: &KafkaSettings,
    topics: &BTreeSet<&str>,
    wanted: &HashSet<i64>,
) -> Result<HashSet<i64>, RelayError> {
    let topics: Vec<&str> = topics.iter().copied().collect();
    let mut found = HashSet::new();
    read_tails(
        kafka,
        &topics,
        Depth::Last(BATCH),
        Duration::from_secs(10),
        Duration::from_secs(30),
        |msg| {
            if let Some(id) = msg
                .header(bus::headers::OUTBOX_ID)
                .and_then(|v| v.parse::<i64>().ok())
            {
                if wanted.contains(&id) {
                    found.insert(id);
                }
            }
        },
    )?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_reduced_event_keeps_what_identifies_it_and_says_it_was_reduced() {
        let user = json!({"schema_version": 1, "event_id": "e", "type": "user.updated",
            "tenant_id": "t", "resource_id": "r", "sequence": 7, "command_id": "c",
            "request_id": "q", "changed": ["attributes"], "resource": {"pad": "x".repeat(5000)}});
        let group = json!({"schema_version": 1, "event_id": "e", "type": "group.members_added",
            "tenant_id": "t", "resource_id": "g", "sequence": 2, "changed": ["members"],
            "members_added": ["a", "b"], "members_added_count": 2,
            "members_removed": [], "members_removed_count": 0, "resource": {"displayName": "G"}});
        for event in [user, group] {
            let reduced: Value = serde_json::from_slice(
                &reduced_event(event.to_string().as_bytes()).expect("an event"),
            )
            .expect("JSON");
            assert_eq!(reduced["truncated"], true);
            assert_eq!(reduced["resource"], Value::Null);
            for kept in [
                "event_id",
                "type",
                "tenant_id",
                "resource_id",
                "sequence",
                "changed",
            ] {
                assert_eq!(reduced[kept], event[kept], "{kept}");
            }
            if event.get("members_added").is_some() {
                assert_eq!(reduced["members_added"], json!([]));
                assert_eq!(reduced["members_added_count"], 2, "the counts stay");
            }
        }
        // Not an event: nothing to reduce it to.
        for payload in [&b"not json"[..], br#"{"v": 1, "command": {}}"#, b"[1]"] {
            assert_eq!(reduced_event(payload), None);
        }
    }

    #[test]
    fn a_row_too_large_for_a_message_is_published_reduced() {
        let max = 1_000_000;
        let event = |pad: usize| {
            json!({"schema_version": 1, "event_id": "e", "type": "user.updated",
                   "resource_id": "r", "sequence": 3, "resource": {"pad": "x".repeat(pad)}})
            .to_string()
            .into_bytes()
        };
        let row = |payload: Vec<u8>| OutboxRow {
            id: 42,
            topic: "p.user-changes".into(),
            message_key: "t/r".into(),
            payload,
            headers: json!({"h": "v"}),
        };
        // (payload, published whole, published as a reduced event)
        let cases = [
            (event(10), true, false),
            (event(max), false, true),
            (vec![b'{'; max + 1], false, false), // not an event: no payload
        ];
        for (payload, whole, as_event) in cases {
            let row = row(payload);
            let out = Outgoing::of(&row, "42", max);
            assert!(
                bus::message_size(row.message_key.len(), out.payload.len(), &out.headers) <= max
            );
            assert!(out.headers.contains(&(bus::headers::OUTBOX_ID, "42")));
            assert!(out.headers.contains(&("h", "v")));
            let truncated_header = out.headers.contains(&(bus::headers::TRUNCATED, "true"));
            if whole {
                assert_eq!(out.payload.as_ref(), row.payload.as_slice());
                assert!(!truncated_header);
            } else if as_event {
                let reduced: Value = serde_json::from_slice(&out.payload).expect("JSON");
                assert_eq!(reduced["truncated"], true);
                assert_eq!(reduced["sequence"], 3);
                assert!(!truncated_header);
            } else {
                assert!(out.payload.is_empty());
                assert!(truncated_header);
            }
        }
    }

    #[test]
    fn not_an_event_is_not_reduced_as_one() {
        for payload in [&b"not json"[..], br#"{"v": 1, "command": {}}"#, b"[1]"] {
            assert_eq!(reduced_event(payload), None);
        }
    }
}
