//! Ingress metrics: requests and latency by route, method, status and,
//! when `SCIMFLOW_METRICS_TENANT_LABEL` is on, tenant (empty otherwise, so
//! the series do not multiply with tenants). The tenant label is set only
//! once a request authenticated, so unauthenticated traffic cannot grow
//! the label set.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};
use uuid::Uuid;

use crate::AppState;

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scimflow_http_requests_total",
                "SCIM requests by route, method, status and tenant",
            ),
            &["route", "method", "status", "tenant"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}")),
    )
});

pub static LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "scimflow_http_request_duration_seconds",
                "SCIM request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method", "status", "tenant"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}")),
    )
});

pub static TENANT_CACHE_LIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "scimflow_tenant_cache_live",
            "1 while the tenant cache hears of tenant changes and serves; 0 while every request looks its token up in the database",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}")),
    )
});

pub static TENANT_CACHE_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "scimflow_tenant_cache_lookups_total",
                "Token lookups by outcome: hit (a tenant, from memory), unknown (no tenant, from memory) or miss (database)",
            ),
            &["result"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}")),
    )
});

pub static READINESS_CHECKS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "scimflow_readiness_checks_total",
            "Checks of the database and the broker made for /readyz (at most one per interval, however often it is asked)",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}")),
    )
});

/// Where the authentication extractor leaves the tenant for the metrics.
#[derive(Clone, Default)]
pub struct TenantSlot(pub Arc<Mutex<Option<Uuid>>>);

pub async fn track(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let slot = TenantSlot::default();
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let tenant = if app.config.metrics_tenant_label {
        slot.0
            .lock()
            .ok()
            .and_then(|t| t.map(|id| id.to_string()))
            .unwrap_or_else(|| "none".into())
    } else {
        String::new()
    };
    let labels = [
        route.as_str(),
        method.as_str(),
        status.as_str(),
        tenant.as_str(),
    ];
    REQUESTS.with_label_values(&labels).inc();
    LATENCY
        .with_label_values(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Register the series up front, so a scrape before the first request
/// already shows them.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&LATENCY);
    LazyLock::force(&TENANT_CACHE_LIVE);
    LazyLock::force(&TENANT_CACHE_LOOKUPS);
    LazyLock::force(&READINESS_CHECKS);
}
