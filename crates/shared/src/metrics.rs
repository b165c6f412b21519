//! Prometheus exposition shared by both roles: the admin listener that
//! serves `/metrics` apart from the SCIM traffic, and the gauges every
//! role reports (the database pool). Each role registers its own series in
//! the default registry.

use std::sync::LazyLock;

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

/// The text exposition of every registered series.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
