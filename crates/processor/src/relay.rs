//! The outbox relay: publishes committed change events and dead letters in
//! the order they were written, then marks them published.
//!
//! One relay publishes at a time across all processors (a PostgreSQL
//! session advisory lock), which keeps per-key order. Each message carries
//! its outbox row id in a header. A relay that crashes after publishing and
//! before marking leaves at most one batch published but unmarked, at the
//! tail of its partitions; the next relay to take the lock reads those
//! tails first and marks what it finds instead of publishing it again, so
//! each row is published once (without Kafka transactions, which tansu
//! lacks).

use std::time::Duration;

use diesel::{Connection, PgConnection};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use scimflow_shared::bus;
use scimflow_shared::store::commands::{mark_published, try_relay_lock, unpublished, OutboxRow};
use scimflow_shared::store::StoreError;

use crate::pause_unless_shutdown;

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing from the outbox failed: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("relay task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("relay connection lost")]
    ConnectionLost,
    #[error("could not read the ends of the change topics to recover")]
    Recovery,
}

const BATCH: i64 = 1000;

pub async fn run(
    database_url: String,
    brokers: String,
    producer: FutureProducer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = lead(&database_url, &brokers, &producer, &mut shutdown).await {
            tracing::warn!(error = %e, "outbox relay interrupted; retrying");
        }
        if pause_unless_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// Take the relay lock on a dedicated connection and publish until the
/// connection fails or we shut down.
async fn lead(
    database_url: &str,
    brokers: &str,
    producer: &FutureProducer,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let url = database_url.to_string();
    let conn = tokio::task::spawn_blocking(move || -> Result<Option<PgConnection>, StoreError> {
        let mut conn = PgConnection::establish(&url)?;
        Ok(try_relay_lock(&mut conn)?.then_some(conn))
    })
    .await??;
    let Some(conn) = conn else {
        return Ok(()); // another processor relays; stand by
    };
    let (conn, recovered) = {
        let brokers = brokers.to_string();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let recovered = recover(&mut conn, &brokers);
            (conn, recovered)
        })
        .await?
    };
    let recovered = recovered?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "outbox rows found already published by the previous relay"
        );
    }
    let mut conn = Some(conn);
    loop {
        let mut c = conn.take().ok_or(RelayError::ConnectionLost)?;
        let (c, rows) = tokio::task::spawn_blocking(move || {
            let rows = unpublished(&mut c, BATCH);
            (c, rows)
        })
        .await?;
        conn = Some(c);
        let rows = rows?;
        if rows.is_empty() {
            if pause_unless_shutdown(shutdown, Duration::from_millis(20)).await {
                return Ok(());
            }
            continue;
        }
        publish(producer, &rows).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut c = conn.take().ok_or(RelayError::ConnectionLost)?;
        let (c, marked) = tokio::task::spawn_blocking(move || {
            let marked = mark_published(&mut c, &ids);
            (c, marked)
        })
        .await?;
        conn = Some(c);
        marked?;
    }
}

/// Produce every row and wait for all acknowledgements (acks=all). Rows
/// are enqueued in id order on an idempotent producer, so per-key order
/// holds.
async fn publish(producer: &FutureProducer, rows: &[OutboxRow]) -> Result<(), RelayError> {
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let pairs: Vec<(String, String)> = row
            .headers
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let record = FutureRecord::to(&row.topic)
            .key(&row.message_key)
            .payload(&row.payload)
            .headers(bus::make_headers(&refs));
        pending.push(producer.send(record, Duration::from_secs(30)));
    }
    for delivery in futures::future::join_all(pending).await {
        if let Err((e, _)) = delivery {
            return Err(RelayError::Kafka(e));
        }
    }
    Ok(())
}

/// Mark unpublished rows that are in fact on their topics already: read the
/// last `BATCH` messages of every partition of the topics those rows go to.
fn recover(conn: &mut PgConnection, brokers: &str) -> Result<usize, RelayError> {
    use std::collections::{BTreeSet, HashSet};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let rows = unpublished(conn, BATCH)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let pending: HashSet<i64> = rows.iter().map(|r| r.id).collect();
    let topics: BTreeSet<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    let consumer: BaseConsumer = bus::standalone_consumer_config(brokers).create()?;
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                if high > low {
                    tpl.add_partition_offset(
                        topic,
                        p.id(),
                        Offset::Offset((high - BATCH).max(low)),
                    )?;
                    ends.push((topic.to_string(), p.id(), high));
                }
            }
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&tpl)?;
    let mut found = Vec::new();
    let mut remaining: HashSet<(String, i32)> =
        ends.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let end_of: std::collections::HashMap<(String, i32), i64> =
        ends.into_iter().map(|(t, p, h)| ((t, p), h)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !remaining.is_empty() && std::time::Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg?;
        let key = (msg.topic().to_string(), msg.partition());
        if let Some(id) =
            bus::header(msg.headers(), bus::headers::OUTBOX_ID).and_then(|v| v.parse::<i64>().ok())
        {
            if pending.contains(&id) {
                found.push(id);
            }
        }
        if end_of.get(&key).is_some_and(|h| msg.offset() + 1 >= *h) {
            remaining.remove(&key);
        }
    }
    if !remaining.is_empty() {
        return Err(RelayError::Recovery);
    }
    mark_published(conn, &found)?;
    Ok(found.len())
}
