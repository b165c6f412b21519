//! The ingress's readiness on its admin listener: the database answers and
//! the broker gives the command topic's metadata, as last checked by a
//! background task (every `READINESS_INTERVAL`), so a probe costs neither
//! a database connection nor a broker round trip.

use scimflow_bus::Publisher;
use scimflow_shared::metrics::{Readiness, ReadyState, READINESS_INTERVAL};
use scimflow_shared::store::{self, PgPool};
use tokio::sync::watch;

/// Keep `readiness` current until `shutdown` turns true.
pub fn follow(
    pool: PgPool,
    publisher: Publisher,
    command_topic: String,
    readiness: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            readiness.set(check(&pool, &publisher, &command_topic).await);
            let _ = tokio::time::timeout(READINESS_INTERVAL, shutdown.wait_for(|stop| *stop)).await;
            if *shutdown.borrow() {
                readiness.set(ReadyState::not_ready("shutting down"));
                return;
            }
        }
    });
}

async fn check(pool: &PgPool, publisher: &Publisher, topic: &str) -> ReadyState {
    match probe(pool, publisher, topic).await {
        Ok(()) => ReadyState::ready(serde_json::json!({"status": "ready"})),
        Err(reason) => ReadyState::not_ready(reason),
    }
}

/// The longest either check may take.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One check of what the ingress needs: a database connection that
/// answers, and the broker's metadata for the command topic. Shared by
/// this listener and the SCIM port's `/readyz` (`readiness`).
pub async fn probe(pool: &PgPool, publisher: &Publisher, topic: &str) -> Result<(), &'static str> {
    let pool = pool.clone();
    let db = tokio::task::spawn_blocking(move || -> Result<(), store::StoreError> {
        let mut conn = pool.get_timeout(CHECK_TIMEOUT)?;
        store::ping(&mut conn)
    })
    .await;
    if !matches!(db, Ok(Ok(()))) {
        return Err("the database is unreachable");
    }
    if !publisher.reachable(topic, CHECK_TIMEOUT).await {
        return Err("the broker is unreachable");
    }
    Ok(())
}
