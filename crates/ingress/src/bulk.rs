//! POST /Bulk (RFC 7644 §3.7). Operations are validated as single requests
//! are, and run many at once in the waves `scim::bulk::BulkPlanner` plans:
//! every operation whose `bulkId` references are resolved is published
//! together (`write::execute_all`: one message per partition for the
//! wave's commands), then the next wave, whose references the first wave
//! created.
//! `failOnErrors` is checked between waves.
//!
//! A request costs the tenant one rate-limit token per operation (the
//! authentication took the first): past the rate, the whole request is
//! refused with 429 before any operation runs.
//!
//! With `Prefer: respond-async`, a request without `bulkId` references and
//! without `failOnErrors` (both need outcomes to proceed) is published in
//! one wave and answered 202: each operation's entry says "202" and gives
//! its status monitor as `location` (`status.rs`). Otherwise the preference
//! is not applied and the request runs as usual.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use scimflow_shared::command::{Command, Outcome, ReplyShape};
use scimflow_shared::scim::bulk::{
    parse_bulk_request, references, BulkPlanner, Method, Operation, BULK_RESPONSE_SCHEMA,
};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::{bulk_accepted, ok, status_of};
use crate::write::{accept, command, execute_all, parse_body, prefers_async, request_id};
use crate::{AppState, IngressError};

/// The command for one operation, validated as a single request would be.
/// The body moves into the command: an operation is published once.
fn op_command(op: &mut Operation) -> Result<Command, IngressError> {
    let data = op.data.take();
    command(op.kind, op.method, op.target.as_deref(), || {
        Ok(data.unwrap_or(Value::Null))
    })
}

/// What one operation's entry says when it could not be published or
/// answered: its SCIM error, or 503 for the broker or the deadline.
fn operation_error(e: IngressError) -> ScimError {
    match e {
        IngressError::Scim(s) => s,
        other => ScimError::unavailable(other.to_string()),
    }
}

/// The id of the resource an operation wrote: the last segment of its
/// `location` (the reply leaves the resource itself out), which for a POST
/// may name an existing user (linking, I3) rather than the minted id.
fn resource_id(outcome: &Outcome) -> Option<&str> {
    outcome
        .location
        .as_deref()
        .and_then(|l| l.rsplit('/').next())
        .filter(|id| !id.is_empty())
}

/// One entry of the BulkResponse.
fn result_entry(
    method: Option<Method>,
    bulk_id: Option<&str>,
    location: Option<String>,
    outcome: Result<&Outcome, &ScimError>,
) -> Value {
    let mut entry = json!({"method": method.map(Method::as_str).unwrap_or("POST")});
    if let Some(b) = bulk_id {
        entry["bulkId"] = json!(b);
    }
    match outcome {
        Ok(o) => {
            entry["status"] = json!(status_of(&o.disposition).as_str());
            if let Some(loc) = o.location.clone().or(location) {
                entry["location"] = json!(loc);
            }
            if let Some(v) = &o.etag {
                entry["version"] = json!(v);
            }
            if let Some(e) = o.disposition.error() {
                entry["response"] = e.to_body();
            }
        }
        Err(e) => {
            entry["status"] = json!(e.status.to_string());
            if let Some(loc) = location {
                entry["location"] = json!(loc);
            }
            entry["response"] = e.to_body();
        }
    }
    entry
}

pub async fn bulk(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let request = parse_bulk_request(&parse_body(body)?)?;
    let further = u32::try_from(request.operations.len().saturating_sub(1)).unwrap_or(u32::MAX);
    if further > 0 {
        app.limiter
            .take_more(tenant.0.id, further, std::time::Instant::now())
            .map_err(IngressError::RateLimited)?;
    }
    let request_id = request_id(&headers);
    let base = app.config.scim_base_url(tenant.0.id);
    let total = request.operations.len();
    let mut results: Vec<Option<Value>> = vec![None; total];
    let mut errors = 0usize;
    let mut pending: Vec<(usize, Operation)> = Vec::new();
    for (i, parsed) in request.operations.into_iter().enumerate() {
        match parsed.operation {
            Ok(op) => pending.push((i, op)),
            Err(e) => {
                results[i] = Some(result_entry(
                    parsed.method,
                    parsed.bulk_id.as_deref(),
                    None,
                    Err(&e),
                ));
                errors += 1;
            }
        }
    }
    let all_independent = pending.iter().all(|(_, op)| references(op).is_empty());
    if prefers_async(&headers) && request.fail_on_errors.is_none() && all_independent {
        let tenant_id = tenant.0.id;
        let wave = pending.into_iter().map(|(i, mut op)| {
            let (app, request_id) = (app.clone(), request_id.clone());
            async move {
                let accepted = match op_command(&mut op) {
                    Ok(cmd) => accept(&app, tenant_id, request_id, op.version.clone(), cmd).await,
                    Err(e) => Err(e),
                };
                (i, op, accepted)
            }
        });
        for (i, op, accepted) in futures::future::join_all(wave).await {
            results[i] = Some(match accepted {
                Ok(command_id) => {
                    let mut entry = json!({
                        "method": op.method.as_str(),
                        "status": "202",
                        "location": crate::status::status_url(&app, tenant_id, command_id),
                    });
                    if let Some(b) = &op.bulk_id {
                        entry["bulkId"] = json!(b);
                    }
                    entry
                }
                Err(e) => result_entry(
                    Some(op.method),
                    op.bulk_id.as_deref(),
                    None,
                    Err(&operation_error(e)),
                ),
            });
        }
        let operations: Vec<Value> = results.into_iter().flatten().collect();
        return Ok(bulk_accepted(
            &json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations}),
        ));
    }
    let mut planner = BulkPlanner::new(pending);
    while !planner.is_done() {
        if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
            break; // RFC 7644 §3.7.3: stop; what did not run is not reported.
        }
        let next = planner.next_wave();
        for (i, op, why) in next.unrunnable {
            results[i] = Some(result_entry(
                Some(op.method),
                op.bulk_id.as_deref(),
                None,
                Err(&why.error()),
            ));
            errors += 1;
        }
        if next.ready.is_empty() {
            break;
        }
        // Validated one by one; the valid ones published and awaited together.
        let mut wave = Vec::with_capacity(next.ready.len());
        let mut commands = Vec::with_capacity(next.ready.len());
        for (i, mut op) in next.ready {
            let location = op
                .target
                .as_ref()
                .map(|t| format!("{base}/{}/{t}", op.kind.endpoint()));
            let command = op_command(&mut op).map(|cmd| commands.push((op.version.clone(), cmd)));
            wave.push((i, op, location, command));
        }
        let mut outcomes = execute_all(
            &app,
            tenant.0.id,
            &request_id,
            commands,
            ReplyShape::WithoutResource,
        )
        .await
        .into_iter();
        let wave = wave.into_iter().map(|(i, op, location, command)| {
            let outcome = command.and_then(|()| {
                outcomes.next().unwrap_or(Err(IngressError::Unavailable(
                    "no outcome for the operation",
                )))
            });
            (i, op, location, outcome)
        });
        for (i, op, location, outcome) in wave {
            let outcome = outcome.map_err(operation_error);
            let succeeded = outcome.as_ref().is_ok_and(|o| o.disposition.is_success());
            let created = outcome
                .as_ref()
                .ok()
                .filter(|_| succeeded)
                .and_then(resource_id);
            planner.record(&op, created);
            if !succeeded {
                errors += 1;
            }
            results[i] = Some(result_entry(
                Some(op.method),
                op.bulk_id.as_deref(),
                location,
                outcome.as_ref(),
            ));
        }
    }

    let operations: Vec<Value> = results.into_iter().flatten().collect();
    Ok(ok(
        &json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_id_resolves_to_the_last_segment_of_the_location() {
        let cases = [
            (Some("http://h/scim/v2/t/Users/0192-abc"), Some("0192-abc")),
            (Some("http://h/scim/v2/t/Groups/g1"), Some("g1")),
            (Some("http://h/scim/v2/t/Users/"), None),
            (None, None),
        ];
        for (location, id) in cases {
            let outcome = Outcome {
                command_id: uuid::Uuid::nil(),
                disposition: scimflow_shared::command::Disposition::Created,
                resource: None,
                etag: None,
                location: location.map(str::to_string),
            };
            assert_eq!(resource_id(&outcome), id, "{location:?}");
        }
    }
}
