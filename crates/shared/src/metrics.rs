//! The admin listener shared by both roles, apart from the SCIM traffic:
//! `/metrics` (Prometheus exposition), `/healthz` (the process is alive)
//! and `/readyz` (the role's own readiness, from state the role keeps
//! current in the background: a probe never waits on the database or the
//! broker). Also the gauges every role reports (the database pool). Each
//! role registers its own series in the default registry.

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

/// `scimflow_build_info{version,librdkafka} 1`: which build each replica
/// runs, for dashboards and rollouts.
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "scimflow_build_info",
            "Always 1; the labels say which build of scimflow this process runs",
        ),
        &["version", "librdkafka"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

fn observe_build() {
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    BUILD_INFO
        .with_label_values(&[env!("CARGO_PKG_VERSION"), librdkafka.as_str()])
        .set(1);
}

pub static KAFKA_STATISTICS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    let c = prometheus::IntCounterVec::new(
        Opts::new(
            "scimflow_kafka_statistics_total",
            "librdkafka statistics reports received, by client type (only with the property statistics.interval.ms)",
        ),
        &["client"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(c.clone()));
    c
});

pub static KAFKA_BROKER_RTT: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let g = prometheus::GaugeVec::new(
        Opts::new(
            "scimflow_kafka_broker_rtt_seconds",
            "Mean request round trip to each broker over the last statistics interval, by client type",
        ),
        &["client", "broker"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

pub static KAFKA_CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "scimflow_kafka_consumer_lag",
            "Messages behind the partition's end, per consumed partition, as librdkafka last reported",
        ),
        &["topic", "partition"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// Record a librdkafka statistics report (every client's context calls
/// this; reports come only when the operator sets
/// `KAFKA_PROPERTY_STATISTICS_INTERVAL_MS`).
pub fn observe_kafka_statistics(s: &rdkafka::Statistics) {
    let client = match s.client_type.as_str() {
        "producer" => "producer",
        "consumer" => "consumer",
        _ => "other",
    };
    KAFKA_STATISTICS.with_label_values(&[client]).inc();
    for broker in s.brokers.values() {
        // Bootstrap and internal entries have no node id of their own.
        if broker.nodeid < 0 {
            continue;
        }
        if let Some(rtt) = &broker.rtt {
            KAFKA_BROKER_RTT
                .with_label_values(&[client, &broker.nodename])
                .set(rtt.avg as f64 / 1e6);
        }
    }
    for (topic, t) in &s.topics {
        for p in t.partitions.values() {
            // -1: not consumed here, or not known yet; partition -1 is
            // librdkafka's internal unassigned queue.
            if p.partition >= 0 && p.consumer_lag >= 0 {
                KAFKA_CONSUMER_LAG
                    .with_label_values(&[topic.as_str(), &p.partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

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
    observe_build();
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
