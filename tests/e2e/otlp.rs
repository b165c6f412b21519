//! One write is one trace: the ingress and the processor export their spans
//! over OTLP to a receiver in this test, and the processor's span for the
//! command is a child of the ingress's request span, across the broker,
//! because the trace context rides in the command's Kafka headers. The
//! change event carries the same trace on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::common::{eventually, Stack, SCIM_JSON};

/// One received span, as much of it as the test reads.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    request_id: Option<String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// An OTLP/HTTP (protobuf) receiver on loopback: what the exporters send.
async fn receiver() -> (SocketAddr, Spans) {
    let spans: Spans = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the OTLP receiver");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, spans)
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut got = spans.lock().expect("the span list");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            let request_id = span
                .attributes
                .iter()
                .find(|a| a.key == "request_id")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                });
            got.push(Received {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                request_id,
            });
        }
    }
    (
        [(CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ingress's request span and the processor's command span of the
/// request `request_id`, once both have been exported.
async fn spans_of(spans: &Spans, request_id: &str) -> (Received, Received) {
    eventually(
        &format!("the ingress and processor spans of {request_id}"),
        Duration::from_secs(60),
        || {
            let got = spans.lock().expect("the span list").clone();
            async move {
                let of = |service: &str, name: &str| {
                    got.iter()
                        .find(|s| {
                            s.service == service
                                && s.name == name
                                && s.request_id.as_deref() == Some(request_id)
                        })
                        .cloned()
                };
                Some((
                    of("scimflow-ingress", "request")?,
                    of("scimflow-processor", "command")?,
                ))
            }
        },
    )
    .await
}

#[tokio::test]
async fn one_write_is_one_trace_from_the_ingress_through_the_processor_to_its_change_event() {
    let (addr, spans) = receiver().await;
    let stack = Stack::new("otlp_trace")
        .with_env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{addr}"))
        // Exported every 100 ms instead of every 5 s: the test waits less.
        .with_env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .started()
        .await;
    let tenant = stack.tenant("");
    let create = |user: &str, traceparent: &str, request_id: &str| {
        stack
            .http
            .post(format!("{}/Users", tenant.base))
            .header("Authorization", format!("Bearer {}", tenant.token))
            .header(CONTENT_TYPE, SCIM_JSON)
            .header("traceparent", traceparent)
            .header("tracestate", "idp=1")
            .header("X-Request-Id", request_id)
            .body(json!({"userName": user, "active": true}).to_string())
            .send()
    };

    // The IdP's trace: the ingress continues it.
    let idp_trace = uuid::Uuid::new_v4().simple().to_string();
    let idp_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let reply = create(
        "traced@example.com",
        &format!("00-{idp_trace}-{idp_span}-01"),
        "otlp-traced",
    )
    .await
    .expect("HTTP request");
    assert_eq!(reply.status(), 201);
    let user_id = reply.json::<serde_json::Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let (ingress, processor) = spans_of(&spans, "otlp-traced").await;
    assert_eq!(
        (ingress.trace_id.as_str(), ingress.parent_span_id.as_str()),
        (idp_trace.as_str(), idp_span),
        "the request span continues the IdP's trace: {ingress:?}"
    );
    assert_eq!(processor.trace_id, idp_trace, "{processor:?}");
    assert_eq!(
        processor.parent_span_id, ingress.span_id,
        "the processor's span is a child of the ingress's request span"
    );

    // Its change event carries the trace on, from the processor's span.
    stack.outbox_drained().await;
    let events = stack.read_topic(&format!("{}.user-changes", stack.prefix()));
    let event = events
        .iter()
        .find(|m| m.key.as_deref().is_some_and(|k| k.ends_with(&user_id)))
        .expect("the user's change event");
    let header = |name: &str| {
        event
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("traceparent"),
        Some(format!("00-{idp_trace}-{}-01", processor.span_id)),
        "{:?}",
        event.headers
    );
    assert_eq!(header("tracestate").as_deref(), Some("idp=1"));

    // A malformed traceparent is ignored, not an error: the write succeeds
    // and starts a trace of its own, which the processor continues.
    let reply = create("untraced@example.com", "00-zz-garbage", "otlp-malformed")
        .await
        .expect("HTTP request");
    assert_eq!(reply.status(), 201);
    let (ingress, processor) = spans_of(&spans, "otlp-malformed").await;
    assert_eq!(ingress.parent_span_id, "", "a root span: {ingress:?}");
    assert_ne!(ingress.trace_id, idp_trace);
    assert_eq!(processor.trace_id, ingress.trace_id, "{processor:?}");
    assert_eq!(processor.parent_span_id, ingress.span_id);
}
