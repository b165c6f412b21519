//! The request span: every log line of a request carries its request id,
//! method and route, and, once authenticated, its tenant id. The request id
//! is the IdP's own (`X-Request-Id`, Entra's `client-request-id`, Okta's
//! `X-Okta-Request-Id`) or one minted here; it is echoed as `X-Request-Id`,
//! travels in the command's envelope to the processor (whose `command` span carries it), and ends up in the
//! user's history and change event. Never the token, never the body.
//!
//! The request span is also the trace's ingress span: an incoming W3C
//! `traceparent` (from the IdP or a proxy) is its parent when well-formed,
//! and the context it hands on (`outgoing`) rides in the headers of every
//! command the request publishes, so the processor's spans continue the
//! trace. Without an exporter the incoming context is handed on as it came.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use scimflow_shared::telemetry;
use scimflow_shared::trace_context::{self, TraceContext};

use crate::write::request_id;

const X_REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The trace context this request's commands carry to the processor.
    /// A request's commands are published from its own task (a /Bulk wave
    /// joins its futures, it spawns none), so they all see it.
    static OUTGOING: Option<TraceContext>;
}

/// The trace headers of a command published by the current request (none
/// outside a request, or when the request has no trace context).
pub fn outgoing_headers() -> Vec<(&'static str, String)> {
    OUTGOING
        .try_with(|c| c.as_ref().map(trace_context::inject))
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub async fn request_span(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(req.headers());
    // Handlers read the id from the headers: make a minted one visible to
    // them, so the span, the command and the answer agree.
    let header = HeaderValue::from_str(&id).ok();
    if let Some(v) = &header {
        req.headers_mut().insert(X_REQUEST_ID, v.clone());
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
        tenant_id = tracing::field::Empty,
    );
    let incoming = trace_context::extract(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    );
    telemetry::set_parent(&span, incoming.as_ref());
    let outgoing = telemetry::outgoing(&span, incoming.as_ref());
    let mut resp = OUTGOING
        .scope(outgoing, next.run(req).instrument(span.clone()))
        .await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, ms, "request failed");
        } else {
            tracing::debug!(status, ms, "request finished");
        }
    });
    if let Some(v) = header {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    resp
}

/// Name the tenant in the current request span, once it is authenticated.
pub fn record_tenant(tenant_id: uuid::Uuid) {
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
}
