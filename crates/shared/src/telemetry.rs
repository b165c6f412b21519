//! The bridge between a W3C trace context (`trace_context`) and the
//! OpenTelemetry span behind a `tracing` span. The exporter itself is set
//! up by the binary; this module only reads and sets span parents.
//!
//! Without an exporter there is no OpenTelemetry layer, spans carry no
//! trace context, and nothing here allocates: `set_parent` does nothing and
//! `outgoing` passes the incoming context on unchanged, so a trace started
//! upstream still reaches the next hop.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::trace_context::TraceContext;

/// Make `parent` (from an upstream hop) the parent of `span`. Call it
/// before the span is first entered.
pub fn set_parent(span: &tracing::Span, parent: Option<&TraceContext>) {
    let Some(parent) = parent else { return };
    let state = parent
        .tracestate
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        state,
    );
    // Fails only without an exporter, or for a span filtered out: then
    // there is no span to parent.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// The context the next hop continues: `span`'s own when it is exported,
/// else `incoming` as it came.
pub fn outgoing(span: &tracing::Span, incoming: Option<&TraceContext>) -> Option<TraceContext> {
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    if !sc.is_valid() {
        return incoming.cloned();
    }
    let state = sc.trace_state().header();
    Some(TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        parent_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
        tracestate: (!state.is_empty()).then_some(state),
    })
}
