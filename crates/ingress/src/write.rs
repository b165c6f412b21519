//! The write path shared by every resource: read and parse the body,
//! publish the command, wait for its committed outcome.
//!
//! Every command is measured as the message it will be before it is
//! produced: one that would not fit (`Config::max_message_bytes`) is 413,
//! never handed to a producer that would refuse it (503, retried forever
//! by an IdP). A waiting request keeps nothing of its body: the envelope
//! is dropped once encoded, the encoding once the broker has it.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use scimflow_bus::{self as bus, headers};
use scimflow_shared::command::{
    Command, CommandBatch, CommandEnvelope, Outcome, ReplyShape, ENVELOPE_VERSION,
};
use scimflow_shared::scim::bulk::{Method, ResourceKind};
use scimflow_shared::scim::group::{normalize_group, plan_group_patch};
use scimflow_shared::scim::patch::{check_user_patch, parse_patch_request};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::replies::PendingReply;
use crate::response::{body_rejection, from_outcome};
use crate::users::validate_user_body;
use crate::{AppState, IngressError};

/// A JSON request body, whatever its content type (IdPs send
/// `application/scim+json`, `application/json`, or nothing), nested at
/// most `scim::json::MAX_JSON_DEPTH` levels so that the processor can
/// decode it inside its envelope.
pub fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ScimError> {
    let bytes = body.map_err(body_rejection)?;
    scimflow_shared::scim::json::check_depth(&bytes)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

/// The command for one write, validated as far as it can be without the
/// stored state, so a bad request is refused before it reaches Kafka. The
/// single endpoints and /Bulk build their commands here alike: the id from
/// the path is checked first (404), then the body (400). A create mints its
/// resource id here.
pub fn command(
    kind: ResourceKind,
    method: Method,
    id: Option<&str>,
    body: impl FnOnce() -> Result<Value, ScimError>,
) -> Result<Command, IngressError> {
    let target = |name: &str| parse_id(name, id.unwrap_or_default());
    Ok(match (kind, method) {
        (ResourceKind::User, Method::Post) => {
            let body = body()?;
            validate_user_body(&body)?;
            Command::CreateUser {
                user_id: Uuid::now_v7(),
                body,
            }
        }
        (ResourceKind::User, Method::Put) => {
            let user_id = target("User")?;
            let body = body()?;
            validate_user_body(&body)?;
            Command::ReplaceUser { user_id, body }
        }
        (ResourceKind::User, Method::Patch) => {
            let user_id = target("User")?;
            let body = body()?;
            check_user_patch(&parse_patch_request(&body)?)?;
            Command::PatchUser { user_id, body }
        }
        (ResourceKind::User, Method::Delete) => Command::DeleteUser {
            user_id: target("User")?,
        },
        (ResourceKind::Group, Method::Post) => {
            let body = body()?;
            normalize_group(&body)?;
            Command::CreateGroup {
                group_id: Uuid::now_v7(),
                body,
            }
        }
        (ResourceKind::Group, Method::Put) => {
            let group_id = target("Group")?;
            let body = body()?;
            normalize_group(&body)?;
            Command::ReplaceGroup { group_id, body }
        }
        (ResourceKind::Group, Method::Patch) => {
            let group_id = target("Group")?;
            let body = body()?;
            plan_group_patch(&parse_patch_request(&body)?)?;
            Command::PatchGroup { group_id, body }
        }
        (ResourceKind::Group, Method::Delete) => Command::DeleteGroup {
            group_id: target("Group")?,
        },
    })
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

/// Publish a command and answer with its committed outcome (or 503 at the
/// deadline); with `Prefer: respond-async`, answer 202 once it is queued.
pub async fn submit(
    app: &AppState,
    tenant: &AuthedTenant,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, IngressError> {
    let (tenant_id, request_id, if_match) = (
        tenant.0.id,
        request_id(headers),
        header_str(headers, header::IF_MATCH),
    );
    if prefers_async(headers) {
        let command_id = accept(app, tenant_id, request_id, if_match, command).await?;
        return Ok(crate::status::accepted(app, tenant_id, command_id));
    }
    let outcome = execute(app, tenant_id, request_id, if_match, command).await?;
    Ok(from_outcome(&outcome))
}

/// RFC 7240 `Prefer: respond-async`, among any other preferences.
pub fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split(';').next())
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
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
    let envelope = envelope(app, tenant_id, request_id, if_match, command);
    let command_id = envelope.command_id;
    // Registered before publishing: the reply can beat the produce ack.
    let mut pending = app.replies.register(command_id);
    publish(app, envelope, true, deadline).await?;
    await_outcome(&mut pending, command_id, deadline).await
}

/// The outcome of a published command, or 503 at the deadline (the
/// command still applies; its outcome stays in PostgreSQL).
async fn await_outcome(
    pending: &mut PendingReply<'_>,
    command_id: Uuid,
    deadline: tokio::time::Instant,
) -> Result<Outcome, IngressError> {
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

/// A command's headers: the reply topic if it wants an answer, and the
/// request's trace context (`trace::outgoing_headers`).
fn command_headers<'a>(
    reply_topic: Option<&'a str>,
    trace: &'a [(&'static str, String)],
) -> Vec<(&'a str, &'a str)> {
    reply_topic
        .map(|t| (headers::REPLY_TO, t))
        .into_iter()
        .chain(trace.iter().map(|(k, v)| (*k, v.as_str())))
        .collect()
}

/// Publish the commands of one /Bulk wave and wait for their outcomes, in
/// the order given. Commands whose keys land in the same partition go out
/// together as `CommandBatch` messages (the broker's cost is per message);
/// each is still applied, deduplicated and answered on its own. A message
/// that cannot be queued, or an outcome that misses the deadline, is that
/// command's error alone.
pub async fn execute_all(
    app: &AppState,
    tenant_id: Uuid,
    request_id: &str,
    commands: Vec<(Option<String>, Command)>,
    reply: ReplyShape,
) -> Vec<Result<Outcome, IngressError>> {
    let deadline = tokio::time::Instant::now() + app.config.reply_deadline;
    let envelopes: Vec<CommandEnvelope> = commands
        .into_iter()
        .map(|(if_match, command)| CommandEnvelope {
            reply,
            ..envelope(app, tenant_id, request_id.to_string(), if_match, command)
        })
        .collect();
    let command_ids: Vec<Uuid> = envelopes.iter().map(|e| e.command_id).collect();
    // Registered before publishing: a reply can beat the produce ack.
    let mut pending: Vec<_> = command_ids
        .iter()
        .map(|id| app.replies.register(*id))
        .collect();
    let mut queued: Vec<Result<(), IngressError>> = command_ids.iter().map(|_| Ok(())).collect();
    // The bodies are let go as they are encoded, and the encoded commands
    // once they are sent: nothing of them is kept while the outcomes come.
    let mut by_partition: BTreeMap<i32, Vec<(usize, String, Vec<u8>)>> = BTreeMap::new();
    let reply_topic = app.topics.replies(&app.config.instance_id);
    let trace = crate::trace::outgoing_headers();
    for (i, e) in envelopes.into_iter().enumerate() {
        let key = e.partition_key();
        let encoded = serde_json::to_vec(&e);
        drop(e);
        match encoded {
            Ok(payload) => {
                // Each goes out in a `CommandBatch`, alone if it must.
                let alone = batched_message_size(&key, payload.len(), &reply_topic, &trace);
                if alone > app.config.max_message_bytes {
                    queued[i] = Err(too_large(alone, app.config.max_message_bytes).into());
                    continue;
                }
                let partition = bus::partition_for(&key, app.command_partitions);
                by_partition
                    .entry(partition)
                    .or_default()
                    .push((i, key, payload));
            }
            Err(err) => queued[i] = Err(ScimError::internal(err.to_string()).into()),
        }
    }
    let topic = app.topics.commands();
    let batch_headers = command_headers(Some(&reply_topic), &trace);
    let mut sends = Vec::new();
    for (partition, commands) in &by_partition {
        for chunk in chunks_by_size(commands, COMMAND_BATCH_BYTES) {
            let indices: Vec<usize> = chunk.iter().map(|(i, _, _)| *i).collect();
            let payload =
                CommandBatch::encode(chunk.iter().map(|(_, k, p)| (k.as_str(), p.as_slice())));
            let (topic, headers) = (&topic, &batch_headers);
            sends.push(async move {
                let sent = match payload {
                    Ok(payload) => {
                        let remaining =
                            deadline.saturating_duration_since(tokio::time::Instant::now());
                        app.publisher
                            .publish_command_batch(topic, *partition, &payload, headers, remaining)
                            .await
                            .map_err(|e| {
                                tracing::warn!(error = %e, partition, "publishing a command batch failed");
                            })
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "encoding a command batch failed");
                        Err(())
                    }
                };
                (indices, sent)
            });
        }
    }
    for (indices, sent) in futures::future::join_all(sends).await {
        if sent.is_err() {
            for i in indices {
                queued[i] = Err(IngressError::Unavailable("the command could not be queued"));
            }
        }
    }
    drop(by_partition);
    let mut outcomes = Vec::with_capacity(command_ids.len());
    for ((command_id, queued), pending) in command_ids.into_iter().zip(queued).zip(&mut pending) {
        outcomes.push(match queued {
            Err(err) => Err(err),
            Ok(()) => await_outcome(pending, command_id, deadline).await,
        });
    }
    outcomes
}

/// The largest `CommandBatch` message built of several commands, well
/// under the smallest message size allowed (`config::MESSAGE_BYTES_RANGE`):
/// a batch's framing adds some 110 bytes per command to what
/// `chunks_by_size` counts. A command larger than this goes alone, and
/// was measured alone (`batched_message_size`).
const COMMAND_BATCH_BYTES: usize = 256 * 1024;

/// The message a command of `payload_len` bytes makes alone in a
/// `CommandBatch` (no key; the reply topic and trace headers).
fn batched_message_size(
    key: &str,
    payload_len: usize,
    reply_topic: &str,
    trace: &[(&'static str, String)],
) -> usize {
    // The batch's framing around one command, measured rather than assumed.
    let framing = CommandBatch::encode([(key, &b""[..])]).map_or(0, |b| b.len());
    bus::message_size(
        0,
        framing + payload_len,
        &command_headers(Some(reply_topic), trace),
    )
}

/// 413 for a command that would not fit in a message.
fn too_large(size: usize, max: usize) -> ScimError {
    ScimError::payload_too_large(
        None,
        format!(
            "the request would take {size} bytes as a queued command, more than the {max} bytes allowed; send less data"
        ),
    )
}

/// Consecutive runs of `items` whose payloads add up to at most `max`
/// bytes (or one item, if that alone is larger).
fn chunks_by_size(
    items: &[(usize, String, Vec<u8>)],
    max: usize,
) -> Vec<&[(usize, String, Vec<u8>)]> {
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, key, payload)) in items.iter().enumerate() {
        let len = key.len() + payload.len();
        if i > start && size + len > max {
            chunks.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// Publish one command without waiting for its outcome: once the broker
/// has it (acks=all), it will be applied, and its outcome is kept under its
/// command id for the status monitor (`status.rs`).
pub async fn accept(
    app: &AppState,
    tenant_id: Uuid,
    request_id: String,
    if_match: Option<String>,
    command: Command,
) -> Result<Uuid, IngressError> {
    let deadline = tokio::time::Instant::now() + app.config.reply_deadline;
    let envelope = envelope(app, tenant_id, request_id, if_match, command);
    let command_id = envelope.command_id;
    publish(app, envelope, false, deadline).await?;
    Ok(command_id)
}

fn envelope(
    app: &AppState,
    tenant_id: Uuid,
    request_id: String,
    if_match: Option<String>,
    command: Command,
) -> CommandEnvelope {
    CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id: Uuid::now_v7(),
        tenant_id,
        request_id,
        accepted_at: Utc::now(),
        base_url: app.config.scim_base_url(tenant_id),
        if_match,
        reply: ReplyShape::Whole,
        command,
    }
}

/// Produce the envelope and wait for the broker's ack (or the deadline).
/// Only a command that wants an answer names this instance's reply topic.
/// The envelope, body and all, is dropped once encoded; 413 if the
/// message would be larger than a message may be.
async fn publish(
    app: &AppState,
    envelope: CommandEnvelope,
    wants_reply: bool,
    deadline: tokio::time::Instant,
) -> Result<(), IngressError> {
    let command_id = envelope.command_id;
    let tenant_id = envelope.tenant_id;
    let kind = envelope.command.name();
    let key = envelope.partition_key();
    let payload = serde_json::to_vec(&envelope).map_err(|e| ScimError::internal(e.to_string()))?;
    drop(envelope);
    let reply_topic = app.topics.replies(&app.config.instance_id);
    let trace = crate::trace::outgoing_headers();
    let header_pairs = command_headers(wants_reply.then_some(reply_topic.as_str()), &trace);
    let size = bus::message_size(key.len(), payload.len(), &header_pairs);
    if size > app.config.max_message_bytes {
        return Err(too_large(size, app.config.max_message_bytes).into());
    }
    let topic = app.topics.commands();
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let sent = app
        .publisher
        .publish_command(&topic, &key, &payload, &header_pairs, remaining)
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, %command_id, "publishing a command failed");
        return Err(IngressError::Unavailable("the command could not be queued"));
    }
    tracing::debug!(%command_id, tenant = %tenant_id, kind, "command published");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_batches_split_by_size_in_order() {
        let item = |i: usize, len: usize| (i, "k".to_string(), vec![b'x'; len - 1]);
        // (payload sizes, key included; max bytes; sizes per chunk)
        type Case = (&'static [usize], usize, &'static [&'static [usize]]);
        let cases: &[Case] = &[
            (&[], 10, &[]),
            (&[4, 4, 2], 10, &[&[4, 4, 2]]),
            (&[4, 4, 4], 10, &[&[4, 4], &[4]]),
            (&[12, 3, 12], 10, &[&[12], &[3], &[12]]),
        ];
        for (sizes, max, expected) in cases {
            let items: Vec<_> = sizes.iter().enumerate().map(|(i, n)| item(i, *n)).collect();
            let chunks: Vec<Vec<usize>> = chunks_by_size(&items, *max)
                .iter()
                .map(|c| c.iter().map(|(_, k, p)| k.len() + p.len()).collect())
                .collect();
            let expected: Vec<Vec<usize>> = expected.iter().map(|c| c.to_vec()).collect();
            assert_eq!(chunks, expected, "{sizes:?} at most {max}");
            let order: Vec<usize> = chunks_by_size(&items, *max)
                .iter()
                .flat_map(|c| c.iter().map(|(i, _, _)| *i))
                .collect();
            assert_eq!(order, (0..sizes.len()).collect::<Vec<_>>());
        }
    }

    fn user_patch(ops: Value) -> Result<Command, IngressError> {
        let id = Uuid::now_v7().to_string();
        command(ResourceKind::User, Method::Patch, Some(&id), || {
            Ok(serde_json::json!({ "Operations": ops }))
        })
    }

    fn refusal(result: Result<Command, IngressError>) -> (u16, &'static str, String) {
        match result {
            Err(IngressError::Scim(e)) => (
                e.status,
                e.scim_type.map(|t| t.as_str()).unwrap_or("none"),
                e.detail,
            ),
            Err(other) => panic!("not a SCIM error: {other}"),
            Ok(c) => panic!("accepted: {}", c.name()),
        }
    }

    /// A body is nested at most `MAX_JSON_DEPTH` levels: at the limit it
    /// parses, past it (up to the 127 levels serde_json alone accepts)
    /// it is a 400 naming the limit.
    #[test]
    fn bodies_nest_at_most_the_limit() {
        use scimflow_shared::scim::json::MAX_JSON_DEPTH;
        let nested = |depth: usize| {
            let inner = format!("{}1{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
            Bytes::from(format!(r#"{{"userName":"u@x.com","x":{inner}}}"#))
        };
        assert!(parse_body(Ok(nested(MAX_JSON_DEPTH))).is_ok());
        for depth in [MAX_JSON_DEPTH + 1, 127] {
            let err = parse_body(Ok(nested(depth))).unwrap_err();
            assert_eq!(
                (err.status, err.scim_type.map(|t| t.as_str())),
                (400, Some("invalidSyntax"))
            );
            assert!(
                err.detail
                    .contains(&format!("more than {MAX_JSON_DEPTH} levels")),
                "{}",
                err.detail
            );
        }
    }

    /// What the review found queued unchecked is refused here, before
    /// anything reaches the broker.
    #[test]
    fn writes_are_checked_before_they_are_queued() {
        let phones: Vec<Value> = (0..101)
            .map(|i| serde_json::json!({"value": format!("+1 {i}")}))
            .collect();
        let table: Vec<(Result<Command, IngressError>, &str, &str)> = vec![
            (
                user_patch(
                    serde_json::json!([{"op": "add", "value": {"emails[type eq \"work\"].abcé": "x"}}]),
                ),
                "invalidPath",
                "bad sub-attribute",
            ),
            (
                user_patch(
                    serde_json::json!([{"op": "add", "path": format!("emails[{}]", vec!["a pr"; 120_000].join(" or ")), "value": "x"}]),
                ),
                "invalidPath",
                "longer than 4096 bytes",
            ),
            (
                user_patch(
                    serde_json::json!([{"op": "replace", "path": "phoneNumbers", "value": phones}]),
                ),
                "invalidValue",
                "more than 100 values",
            ),
            (
                command(ResourceKind::Group, Method::Post, None, || {
                    let members: Vec<String> = (0..100_000u128)
                        .map(|n| Uuid::from_u128(n).to_string())
                        .collect();
                    Ok(serde_json::json!({"displayName": "G", "members": members}))
                }),
                "tooMany",
                "at most 10000 members",
            ),
        ];
        for (result, scim_type, detail) in table {
            let (status, got_type, got_detail) = refusal(result);
            assert_eq!((status, got_type), (400, scim_type), "{got_detail}");
            assert!(got_detail.contains(detail), "{got_detail}");
        }
    }

    #[test]
    fn a_batched_command_is_measured_as_the_message_it_makes() {
        let topic = "scimflow.replies.ingress-1";
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = vec![
            (headers::TRACEPARENT, traceparent.to_string()),
            (headers::TRACESTATE, "a=1".to_string()),
        ];
        for trace in [vec![], traced] {
            for (key, payload_len) in [("t/r", 0), ("tenant/resource", 10), ("k\"q", 1000)] {
                let payload = vec![b'x'; payload_len];
                let message = CommandBatch::encode([(key, payload.as_slice())]).expect("encodes");
                let mut sent = vec![(headers::REPLY_TO, topic)];
                sent.extend(trace.iter().map(|(k, v)| (*k, v.as_str())));
                assert_eq!(
                    batched_message_size(key, payload_len, topic, &trace),
                    bus::message_size(0, message.len(), &sent),
                    "{key:?} {trace:?}"
                );
            }
        }
    }

    #[test]
    fn respond_async_is_found_among_other_preferences() {
        let cases: &[(&[&str], bool)] = &[
            (&["respond-async"], true),
            (&["Respond-Async"], true),
            (&["return=minimal, respond-async"], true),
            (&["return=minimal", "respond-async; wait=10"], true),
            (&["wait=10"], false),
            (&["respond-asynchronously"], false),
            (&[], false),
        ];
        for (values, expected) in cases {
            let mut headers = HeaderMap::new();
            for v in *values {
                headers.append("prefer", v.parse().expect("a valid header value"));
            }
            assert_eq!(prefers_async(&headers), *expected, "{values:?}");
        }
    }
}
