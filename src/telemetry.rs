//! Logs, and spans exported over OTLP when configured
//! (`config::TracingSettings`). Without an endpoint no OpenTelemetry layer
//! is installed at all, so spans cost what they always did.
//!
//! Spans are exported in batches by the SDK's own thread with a blocking
//! HTTP client: a request never waits on the collector, and when the
//! collector falls behind the queue (2048 spans) drops spans instead of
//! growing. `Telemetry::shutdown` flushes what is queued.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use scimflow_shared::config::TracingSettings;

/// How long one export may take, and how long shutdown waits for the last.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest collector answer read (an OTLP answer is a few bytes).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Holds the exporter of a role that exports spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flush the queued spans and stop exporting (blocks: the last export
    /// may take up to `EXPORT_TIMEOUT`).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(EXPORT_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing spans at shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "flushing spans at shutdown failed"),
        }
    }
}

/// Logs to stderr (JSON unless `SCIMFLOW_LOG_FORMAT=text`), and, for a
/// role given its tracing settings, spans to the OTLP endpoint if one is
/// set.
pub fn init(role: Option<(&str, &TracingSettings)>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", scimflow_bus::CLIENT_LOG_DIRECTIVE)));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if std::env::var("SCIMFLOW_LOG_FORMAT").is_ok_and(|f| f == "text") {
        fmt.boxed()
    } else {
        fmt.json().flatten_event(true).boxed()
    };
    let provider = match role {
        Some((role, settings)) => match &settings.traces_endpoint {
            Some(endpoint) => Some(provider(endpoint, &settings.service_name(role))?),
            None => None,
        },
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("scimflow")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    if let (Some((_, settings)), Some(_)) = (role, &provider) {
        tracing::info!(
            endpoint = settings.traces_endpoint.as_deref().unwrap_or_default(),
            "exporting spans over OTLP"
        );
    }
    Ok(Telemetry { provider })
}

fn provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient::new()?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("setting up the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

/// The exporter's HTTP client: the bench client's reqwest (rustls, so a
/// collector may be reached over https), blocking, since the SDK exports
/// from a thread of its own and not from the runtime.
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

impl BlockingClient {
    fn new() -> anyhow::Result<Self> {
        // A blocking client owns a runtime of its own, which must not be
        // created inside the async runtime: built on a plain thread.
        let client = std::thread::spawn(|| {
            reqwest::blocking::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("building the OTLP HTTP client panicked"))?
        .context("building the OTLP HTTP client")?;
        Ok(BlockingClient(client))
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let (status, headers) = (answer.status(), answer.headers().clone());
        if answer.content_length().unwrap_or(0) > MAX_RESPONSE_BYTES {
            return Err("the collector's answer is larger than an OTLP answer may be".into());
        }
        let mut response = Response::builder().status(status).body(answer.bytes()?)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
