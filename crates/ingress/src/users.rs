//! /Users: writes are validated here, then published and answered with the
//! processor's outcome; reads come from PostgreSQL.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use uuid::Uuid;

use scimflow_shared::bus::{self, headers};
use scimflow_shared::command::{Command, CommandEnvelope, ENVELOPE_VERSION};
use scimflow_shared::rules::identity::identity_email;
use scimflow_shared::rules::roles::parse_role_values;
use scimflow_shared::scim::filter::parse_filter;
use scimflow_shared::scim::patch::parse_patch_request;
use scimflow_shared::scim::user::normalize_user;
use scimflow_shared::scim::{LIST_RESPONSE_SCHEMA, MAX_PAGE_SIZE};
use scimflow_shared::store::users;
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::{from_outcome, scim_json, with_etag};
use crate::{AppState, IngressError, MAX_BODY_BYTES};

/// The default page size when `count` is not given.
const DEFAULT_PAGE_SIZE: i64 = 100;

fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ScimError> {
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

fn parse_id(id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id).map_err(|_| ScimError::not_found(format!("User {id} not found")))
}

/// Validate a POST/PUT body as far as it can be without the stored state,
/// so a bad request is refused before it reaches Kafka.
fn validate_user_body(body: &Value) -> Result<(), IngressError> {
    let input = normalize_user(body)?;
    identity_email(&input.attrs)?;
    if let Some(roles) = &input.roles {
        parse_role_values(roles)?;
    }
    Ok(())
}

fn request_id(headers: &HeaderMap) -> String {
    ["x-request-id", "client-request-id", "x-okta-request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Publish a command and wait for its committed outcome (or the deadline).
async fn submit(
    app: &AppState,
    tenant: &AuthedTenant,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, IngressError> {
    let deadline = tokio::time::Instant::now() + app.config.reply_deadline;
    let command_id = Uuid::now_v7();
    let envelope = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id,
        tenant_id: tenant.0.id,
        request_id: request_id(headers),
        accepted_at: Utc::now(),
        base_url: app.config.scim_base_url(tenant.0.id),
        if_match: header_str(headers, header::IF_MATCH),
        command,
    };
    let payload = serde_json::to_vec(&envelope).map_err(|e| ScimError::internal(e.to_string()))?;
    let key = envelope.partition_key();
    let reply_topic = app.topics.replies(&app.config.instance_id);
    let command_id_s = command_id.to_string();
    let tenant_s = tenant.0.id.to_string();
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
    tracing::debug!(%command_id, tenant = %tenant.0.id, kind = envelope.command.name(), "command published");
    match tokio::time::timeout_at(deadline, &mut pending.rx).await {
        Ok(Ok(outcome)) => Ok(from_outcome(&outcome)),
        _ => {
            tracing::warn!(%command_id, "no outcome before the deadline");
            Err(IngressError::Unavailable(
                "the request was accepted but its outcome is not known yet",
            ))
        }
    }
}

pub async fn create(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let body = parse_body(body)?;
    validate_user_body(&body)?;
    let command = Command::CreateUser {
        user_id: Uuid::now_v7(),
        body,
    };
    submit(&app, &tenant, &headers, command).await
}

pub async fn replace(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let user_id = parse_id(&id)?;
    let body = parse_body(body)?;
    validate_user_body(&body)?;
    submit(
        &app,
        &tenant,
        &headers,
        Command::ReplaceUser { user_id, body },
    )
    .await
}

pub async fn patch(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let user_id = parse_id(&id)?;
    let body = parse_body(body)?;
    parse_patch_request(&body)?;
    submit(
        &app,
        &tenant,
        &headers,
        Command::PatchUser { user_id, body },
    )
    .await
}

pub async fn delete(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, IngressError> {
    let user_id = parse_id(&id)?;
    submit(&app, &tenant, &headers, Command::DeleteUser { user_id }).await
}

pub async fn get_one(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, IngressError> {
    let user_id = parse_id(&id)?;
    let pool = app.pool.clone();
    let tenant_id = tenant.0.id;
    let row = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        users::find_live(&mut conn, tenant_id, user_id, false)
    })
    .await
    .map_err(|_| IngressError::Unavailable("the read failed to run"))??
    .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    let view = row.view()?;
    let etag = view.etag();
    if header_str(&headers, header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(with_etag(
            StatusCode::NOT_MODIFIED.into_response(),
            Some(&etag),
        ));
    }
    let base = app.config.scim_base_url(tenant_id);
    Ok(with_etag(
        scim_json(StatusCode::OK, &view.render(&base)),
        Some(&etag),
    ))
}

fn int_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ScimError> {
    match params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
        None => Ok(None),
        Some((_, v)) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer"))),
    }
}

pub async fn list(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, IngressError> {
    let filter = match params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("filter"))
    {
        Some((_, f)) => Some(parse_filter(f)?),
        None => None,
    };
    // RFC 7644 §3.4.2.4: values below 1 mean 1; negative counts mean 0.
    let start_index = int_param(&params, "startIndex")?.unwrap_or(1).max(1);
    let count = int_param(&params, "count")?
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(0, MAX_PAGE_SIZE);
    let pool = app.pool.clone();
    let tenant_id = tenant.0.id;
    let (total, rows) = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        users::list(&mut conn, tenant_id, filter.as_ref(), start_index, count)
    })
    .await
    .map_err(|_| IngressError::Unavailable("the read failed to run"))???;
    let base = app.config.scim_base_url(tenant_id);
    let resources = rows
        .iter()
        .map(|r| r.view().map(|v| v.render(&base)))
        .collect::<Result<Vec<_>, _>>()?;
    let body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok(scim_json(StatusCode::OK, &body))
}
