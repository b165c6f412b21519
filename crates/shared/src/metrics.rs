//! The admin listener shared by both roles, apart from the SCIM traffic:
//! `/metrics` (Prometheus exposition), `/healthz` (the process is alive)
//! and `/readyz` (the role's own readiness, from state the role keeps
//! current in the background: a probe never waits on the database or the
//! broker). Also the gauges every role reports (the database pool). Each
//! role registers its own series in the default registry (the Kafka
//! clients' series are the bus's: `scimflow_bus::stats`).

use std::sync::{Arc, LazyLock, RwLock};

use prometheus::{Encoder, IntGaugeVec, Opts, TextEncoder};

use crate::store::PgPool;

pub static DB_POOL_CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "scimflow_db_pool_connections",
            "Database pool connections by state",
        ),
        &["state"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// Record the pool's state (called on each scrape).
pub fn observe_pool(pool: &PgPool) {
    let state = pool.state();
    DB_POOL_CONNECTIONS
        .with_label_values(&["idle"])
        .set(i64::from(state.idle_connections));
    DB_POOL_CONNECTIONS
        .with_label_values(&["in_use"])
        .set(i64::from(
            state.connections.saturating_sub(state.idle_connections),
        ));
}

// The process series (`process_resident_memory_bytes`, which
// `scimflow bench --metrics` watches, CPU seconds, open file descriptors)
// come from the prometheus crate's process collector, which its default
// registry carries on Linux.

/// What `/readyz` answers: 200 when `ready`, else 503; the body says why
/// (`status` is `ready`, `idle` or `not_ready`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyState {
    pub ready: bool,
    pub body: serde_json::Value,
}

impl ReadyState {
    pub fn ready(body: serde_json::Value) -> Self {
        ReadyState { ready: true, body }
    }

    pub fn not_ready(reason: impl Into<String>) -> Self {
        ReadyState {
            ready: false,
            body: serde_json::json!({"status": "not_ready", "reason": reason.into()}),
        }
    }
}

/// A role's readiness as last checked, shared between the task that checks
/// and the listener that answers.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<RwLock<ReadyState>>);

impl Readiness {
    /// Not ready until the first check says otherwise.
    pub fn new() -> Self {
        Readiness(Arc::new(RwLock::new(ReadyState::not_ready(
            "starting: not checked yet",
        ))))
    }

    pub fn set(&self, state: ReadyState) {
        if let Ok(mut s) = self.0.write() {
            *s = state;
        }
    }

    pub fn get(&self) -> ReadyState {
        self.0
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|_| ReadyState::not_ready("readiness state unavailable"))
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

/// How often the roles refresh their readiness in the background.
pub const READINESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Serve `/metrics`, `/healthz` and `/readyz` on `addr` (the admin
/// listener, apart from any SCIM traffic) until `shutdown` turns true.
/// Binding happens here, so a bad address fails the caller's start;
/// serving runs in the background.
pub async fn serve_admin(
    addr: std::net::SocketAddr,
    pool: PgPool,
    readiness: Readiness,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let pool = pool.clone();
                async move {
                    observe_pool(&pool);
                    render()
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let state = readiness.get();
                async move {
                    let status = if state.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, axum::Json(state.body))
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    });
    Ok(())
}

/// The text exposition of every registered series.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
