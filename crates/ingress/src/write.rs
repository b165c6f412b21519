//! The write path shared by every resource: read and parse the body,
//! publish the command, wait for its committed outcome.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use uuid::Uuid;

use scimflow_shared::bus::{self, headers};
use scimflow_shared::command::{Command, CommandEnvelope, Outcome, ENVELOPE_VERSION};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::from_outcome;
use crate::{AppState, IngressError, MAX_BODY_BYTES};

/// A JSON request body, whatever its content type (IdPs send
/// `application/scim+json`, `application/json`, or nothing).
pub fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ScimError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::new(
                413,
                None,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ScimError::invalid_syntax(format!("the request body could not be read: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

/// A resource id from the URL; anything that is not one of ours is 404.
pub fn parse_id(kind: &str, id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id).map_err(|_| ScimError::not_found(format!("{kind} {id} not found")))
}

pub fn request_id(headers: &HeaderMap) -> String {
    ["x-request-id", "client-request-id", "x-okta-request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Publish a command and wait for its committed outcome (or the deadline).
pub async fn submit(
    app: &AppState,
    tenant: &AuthedTenant,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, IngressError> {
    let outcome = execute(
        app,
        tenant.0.id,
        request_id(headers),
        header_str(headers, header::IF_MATCH),
        command,
    )
    .await?;
    Ok(from_outcome(&outcome))
}

/// Publish one command to the command topic, keyed by its resource, and
/// wait for the processor's committed outcome on this instance's reply
/// topic. Past the reply deadline: 503, and the command still applies.
pub async fn execute(
    app: &AppState,
    tenant_id: Uuid,
    request_id: String,
    if_match: Option<String>,
    command: Command,
) -> Result<Outcome, IngressError> {
    let deadline = tokio::time::Instant::now() + app.config.reply_deadline;
    let command_id = Uuid::now_v7();
    let envelope = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id,
        tenant_id,
        request_id,
        accepted_at: Utc::now(),
        base_url: app.config.scim_base_url(tenant_id),
        if_match,
        command,
    };
    let payload = serde_json::to_vec(&envelope).map_err(|e| ScimError::internal(e.to_string()))?;
    let key = envelope.partition_key();
    let reply_topic = app.topics.replies(&app.config.instance_id);
    let command_id_s = command_id.to_string();
    let tenant_s = tenant_id.to_string();
    let hdrs = bus::make_headers(&[
        (headers::COMMAND_ID, &command_id_s),
        (headers::REPLY_TO, &reply_topic),
        (headers::TENANT_ID, &tenant_s),
        (headers::REQUEST_ID, &envelope.request_id),
    ]);
    let mut pending = app.replies.register(command_id);
    let topic = app.topics.commands();
    let record = FutureRecord::to(&topic)
        .key(&key)
        .payload(&payload)
        .headers(hdrs);
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    if let Err((e, _)) = app.producer.send(record, remaining).await {
        tracing::warn!(error = %e, %command_id, "publishing a command failed");
        return Err(IngressError::Unavailable("the command could not be queued"));
    }
    tracing::debug!(%command_id, tenant = %tenant_id, kind = envelope.command.name(), "command published");
    match tokio::time::timeout_at(deadline, &mut pending.rx).await {
        Ok(Ok(outcome)) => Ok(outcome),
        _ => {
            tracing::warn!(%command_id, "no outcome before the deadline");
            Err(IngressError::Unavailable(
                "the request was accepted but its outcome is not known yet",
            ))
        }
    }
}
