//! The outbox relay: publishes committed change events and dead letters in
//! the order they were written, then marks them published.
//!
//! One relay publishes at a time across all processors (a PostgreSQL
//! session advisory lock), which keeps per-key order. Delivery is at least
//! once: a crash between publishing and marking republishes the last
//! rows, and consumers deduplicate by `event_id` (docs/events.md).

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
}

const BATCH: i64 = 1000;

pub async fn run(
    database_url: String,
    producer: FutureProducer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = lead(&database_url, &producer, &mut shutdown).await {
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
