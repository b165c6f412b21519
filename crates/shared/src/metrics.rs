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

pub static RESIDENT_MEMORY: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    let g = prometheus::IntGauge::new(
        "process_resident_memory_bytes",
        "Resident memory of this process, in bytes",
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// Record this process's resident memory (called on each scrape; Linux
/// only, from /proc, so `scimflow bench --metrics` can watch it flat).
pub fn observe_process() {
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        });
    if let Some(kib) = rss_kib {
        RESIDENT_MEMORY.set(kib * 1024);
    }
}

/// Serve `/metrics` on `addr` (the admin listener, apart from any SCIM
/// traffic) until `shutdown` turns true. Binding happens here, so a bad
/// address fails the caller's start; serving runs in the background.
pub async fn serve_admin(
    addr: std::net::SocketAddr,
    pool: PgPool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let pool = pool.clone();
            async move {
                observe_pool(&pool);
                observe_process();
                render()
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
