//! What crosses Kafka: a [`CommandEnvelope`] from the ingress to the
//! processor (alone, or several in a [`CommandBatch`]), and an [`Outcome`]
//! back (in a [`ReplyBatch`]). The envelope is versioned JSON so that an
//! ingress and a processor of different builds can share a topic. The two
//! batch forms came later: a processor from before `CommandBatch`
//! dead-letters one as undecodable (replayable once upgraded), and an
//! ingress from before `ReplyBatch` cannot read one (its requests get
//! 503s; nothing is lost). Upgrading across them: stop the ingresses,
//! upgrade the processors, start the new ingresses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::scim::ScimError;

/// Bumped on any incompatible change to the envelope.
pub const ENVELOPE_VERSION: u32 = 1;

/// Levels of nesting the envelope adds around a command's body
/// (`{"command": {"body": ...}}`). A /Bulk wave's `CommandBatch` adds more
/// around the envelope, but the processor splits it without decoding the
/// envelope and then decodes each envelope alone.
pub const ENVELOPE_NESTING: usize = 2;

// Every body the ingress accepts decodes in the processor's envelope.
const _: () = assert!(
    crate::scim::json::MAX_JSON_DEPTH + ENVELOPE_NESTING < crate::scim::json::SERDE_JSON_MAX_DEPTH
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub v: u32,
    /// Unique per accepted request; the processor's dedup key (P3) and the
    /// request-reply correlation id.
    pub command_id: Uuid,
    pub tenant_id: Uuid,
    /// The IdP request id (or one we minted), for logs and history.
    pub request_id: String,
    pub accepted_at: DateTime<Utc>,
    /// The tenant's SCIM base URL as the client reached it, for
    /// `meta.location`.
    pub base_url: String,
    /// `If-Match`, checked against the version the processor sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// How much of the outcome the ingress wants back. The dedup record
    /// (P3) keeps the outcome in the same shape, so a redelivery is
    /// answered identically; a command sent with `Prefer: respond-async`
    /// asks for the whole outcome, which its status monitor serves.
    #[serde(default, skip_serializing_if = "ReplyShape::is_whole")]
    pub reply: ReplyShape,
    pub command: Command,
}

/// How much of a successful outcome the ingress needs in its reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyShape {
    /// Everything: a single request is answered with the resource.
    #[default]
    Whole,
    /// Status, version and location: a /Bulk operation's entry carries no
    /// resource when it succeeds (RFC 7644 §3.7.3), so neither the reply
    /// nor the dedup record need to (a 1,000-user request would carry and
    /// store 1,000 resources for nobody).
    WithoutResource,
}

impl ReplyShape {
    pub fn is_whole(&self) -> bool {
        *self == ReplyShape::Whole
    }
}

/// One SCIM write. Bodies are kept as sent (after the ingress validated
/// them) so that the processor applies exactly what the IdP asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// POST /Users. `user_id` is minted by the ingress; linking (I3) or a
    /// returning user (L5) answers with the existing id instead.
    CreateUser {
        user_id: Uuid,
        body: Value,
    },
    ReplaceUser {
        user_id: Uuid,
        body: Value,
    },
    PatchUser {
        user_id: Uuid,
        body: Value,
    },
    DeleteUser {
        user_id: Uuid,
    },
    /// POST /Groups; `group_id` minted by the ingress.
    CreateGroup {
        group_id: Uuid,
        body: Value,
    },
    ReplaceGroup {
        group_id: Uuid,
        body: Value,
    },
    PatchGroup {
        group_id: Uuid,
        body: Value,
    },
    DeleteGroup {
        group_id: Uuid,
    },
}

impl Command {
    pub fn resource_id(&self) -> Uuid {
        match self {
            Command::CreateUser { user_id, .. }
            | Command::ReplaceUser { user_id, .. }
            | Command::PatchUser { user_id, .. }
            | Command::DeleteUser { user_id } => *user_id,
            Command::CreateGroup { group_id, .. }
            | Command::ReplaceGroup { group_id, .. }
            | Command::PatchGroup { group_id, .. }
            | Command::DeleteGroup { group_id } => *group_id,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateUser { .. } => "create_user",
            Command::ReplaceUser { .. } => "replace_user",
            Command::PatchUser { .. } => "patch_user",
            Command::DeleteUser { .. } => "delete_user",
            Command::CreateGroup { .. } => "create_group",
            Command::ReplaceGroup { .. } => "replace_group",
            Command::PatchGroup { .. } => "patch_group",
            Command::DeleteGroup { .. } => "delete_group",
        }
    }
}

impl CommandEnvelope {
    /// Decode a command message's payload: an envelope of this version.
    /// The error says why not, for its dead letter.
    pub fn decode(payload: &[u8]) -> Result<CommandEnvelope, String> {
        let env: CommandEnvelope =
            serde_json::from_slice(payload).map_err(|e| format!("undecodable command: {e}"))?;
        if env.v != ENVELOPE_VERSION {
            return Err(format!("unsupported envelope version {}", env.v));
        }
        Ok(env)
    }

    /// The command id and tenant of a payload that does not decode, where
    /// they can be read: its dead letter then names them, and the IdP
    /// waiting for it is answered. Reading them skips the command (without
    /// any nesting limit), so a body too deep to decode still gives them.
    pub fn peek_ids(payload: &[u8]) -> (Option<Uuid>, Option<Uuid>) {
        #[derive(Deserialize)]
        struct Ids {
            command_id: Option<Uuid>,
            tenant_id: Option<Uuid>,
        }
        match serde_json::from_slice::<Ids>(payload) {
            Ok(ids) => (ids.command_id, ids.tenant_id),
            Err(_) => (None, None),
        }
    }

    /// The Kafka key: every write to one resource of one tenant lands in
    /// one partition, so the processor sees them in acceptance order (P2).
    pub fn partition_key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.command.resource_id())
    }
}

/// What became of a command, in the product's terms. The ingress alone
/// turns a disposition into HTTP (status, headers, body).
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// A resource was created (or a manual user linked, I3, or a deleted
    /// one brought back, L5).
    Created,
    /// Applied (or nothing needed changing); the resource as it is now.
    Ok,
    /// Applied; nothing to return (a delete, a group PATCH).
    NoContent,
    /// Refused by the request's own content or a rule; nothing applied.
    Rejected(ScimError),
    /// Could not be applied and is held as this dead letter for an
    /// operator.
    DeadLettered { dead_letter_id: i64 },
}

impl Disposition {
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Disposition::Created | Disposition::Ok | Disposition::NoContent
        )
    }

    /// The error a failed command is answered with.
    pub fn error(&self) -> Option<ScimError> {
        match self {
            Disposition::Rejected(e) => Some(e.clone()),
            Disposition::DeadLettered { dead_letter_id } => {
                Some(ScimError::dead_lettered(*dead_letter_id, false))
            }
            _ => None,
        }
    }

    /// The number the wire form and the dedup row carry for it (an HTTP
    /// status, which is what they carried before dispositions were
    /// typed). Not a decision about HTTP: the ingress makes that, and a
    /// test holds the two equal.
    pub fn wire_status(&self) -> u16 {
        match self {
            Disposition::Created => 201,
            Disposition::Ok => 200,
            Disposition::NoContent => 204,
            Disposition::Rejected(e) => e.status,
            Disposition::DeadLettered { .. } => 500,
        }
    }
}

/// The processor's answer to one command: what the ingress returns to the
/// IdP. Also stored with the dedup record, so a redelivered command is
/// answered identically without being applied again.
///
/// Wire form (replies and dedup rows), unchanged since before the
/// disposition was typed so that rows already stored and processors or
/// ingresses of either build read each other:
/// `{"command_id", "status": <number>, "body"?, "etag"?, "location"?}`,
/// where `body` is the resource of a success or the SCIM error of a
/// failure; a dead-lettered outcome adds `"dead_letter_id"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "OutcomeWire<'static>")]
pub struct Outcome {
    pub command_id: Uuid,
    pub disposition: Disposition,
    /// The resource of a success, unless the reply's shape leaves it out.
    pub resource: Option<Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct OutcomeWire<'a> {
    command_id: Uuid,
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<std::borrow::Cow<'a, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead_letter_id: Option<i64>,
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::borrow::Cow;
        let body = match self.disposition.error() {
            Some(e) => Some(Cow::Owned(e.to_body())),
            None => self.resource.as_ref().map(Cow::Borrowed),
        };
        let dead_letter_id = match self.disposition {
            Disposition::DeadLettered { dead_letter_id } => Some(dead_letter_id),
            _ => None,
        };
        OutcomeWire {
            command_id: self.command_id,
            status: self.disposition.wire_status(),
            body,
            etag: self.etag.as_deref().map(Cow::Borrowed),
            location: self.location.as_deref().map(Cow::Borrowed),
            dead_letter_id,
        }
        .serialize(s)
    }
}

impl TryFrom<OutcomeWire<'_>> for Outcome {
    type Error = String;

    fn try_from(w: OutcomeWire<'_>) -> Result<Self, String> {
        let body = w.body.map(std::borrow::Cow::into_owned);
        let (disposition, resource) = match (w.status, w.dead_letter_id) {
            (_, Some(dead_letter_id)) => (Disposition::DeadLettered { dead_letter_id }, None),
            (201, None) => (Disposition::Created, body),
            (200, None) => (Disposition::Ok, body),
            (204, None) => (Disposition::NoContent, body),
            (400..=599, None) => (
                Disposition::Rejected(ScimError::from_body(w.status, body.as_ref())),
                None,
            ),
            (other, None) => return Err(format!("an outcome with status {other}")),
        };
        Ok(Outcome {
            command_id: w.command_id,
            disposition,
            resource,
            etag: w.etag.map(std::borrow::Cow::into_owned),
            location: w.location.map(std::borrow::Cow::into_owned),
        })
    }
}

impl Outcome {
    /// A success: the resource, its ETag and, for a create, its location.
    pub fn success(
        command_id: Uuid,
        disposition: Disposition,
        resource: Value,
        etag: String,
        location: String,
    ) -> Self {
        Outcome {
            command_id,
            disposition,
            resource: Some(resource),
            etag: Some(etag),
            location: Some(location),
        }
    }

    /// Applied, nothing to return.
    pub fn no_content(command_id: Uuid) -> Self {
        Outcome {
            command_id,
            disposition: Disposition::NoContent,
            resource: None,
            etag: None,
            location: None,
        }
    }

    /// Held as a dead letter for an operator.
    pub fn dead_lettered(command_id: Uuid, dead_letter_id: i64) -> Self {
        Outcome {
            command_id,
            disposition: Disposition::DeadLettered { dead_letter_id },
            resource: None,
            etag: None,
            location: None,
        }
    }

    pub fn from_error(command_id: Uuid, err: &ScimError) -> Self {
        Outcome {
            command_id,
            disposition: Disposition::Rejected(err.clone()),
            resource: None,
            etag: None,
            location: None,
        }
    }

    /// The status number its wire form carries (`Disposition::wire_status`).
    pub fn status(&self) -> u16 {
        self.disposition.wire_status()
    }

    /// The reply for a command that asked for `shape`: an error keeps its
    /// body (the SCIM error), a success may leave the resource out.
    pub fn shaped(self, shape: ReplyShape) -> Outcome {
        match shape {
            ReplyShape::WithoutResource if self.disposition.is_success() => Outcome {
                resource: None,
                ..self
            },
            _ => self,
        }
    }
}

/// Several commands in one message: a /Bulk wave's commands for one
/// partition. Each keeps its own key, and the ingress put in one message
/// only commands whose keys land in the partition it is produced to
/// (`bus::partition_for`), so per-resource order (P2) holds as if each had
/// been produced alone. The processor splits the message on receipt into
/// commands that are each handled like a message of their own (their
/// dead letters and replays are single commands); they share its offset,
/// which is committed once all of them are applied.
///
/// Wire form: `{"commands":[{"key":"<key>","envelope":<CommandEnvelope>},...]}`,
/// always starting with `{"commands":[` so it is told from a single
/// envelope without parsing either.
pub struct CommandBatch;

#[derive(Deserialize)]
struct CommandBatchWire<'a> {
    #[serde(borrow)]
    commands: Vec<BatchedCommandWire<'a>>,
}

#[derive(Deserialize)]
struct BatchedCommandWire<'a> {
    key: String,
    #[serde(borrow)]
    envelope: &'a serde_json::value::RawValue,
}

impl CommandBatch {
    const OPEN: &'static [u8] = br#"{"commands":["#;

    /// Encode `(key, envelope JSON)` pairs.
    pub fn encode<'a>(
        commands: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Self::OPEN.to_vec();
        for (i, (key, envelope)) in commands.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"key":"#);
            serde_json::to_writer(&mut out, key)?;
            out.extend_from_slice(br#","envelope":"#);
            out.extend_from_slice(envelope);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    pub fn is_batch(payload: &[u8]) -> bool {
        payload.starts_with(Self::OPEN)
    }

    /// The `(key, envelope JSON)` pairs of a batch message, in order; each
    /// envelope's bytes as they were sent.
    pub fn split(payload: &[u8]) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
        let wire: CommandBatchWire<'_> = serde_json::from_slice(payload)?;
        Ok(wire
            .commands
            .into_iter()
            .map(|c| (c.key, c.envelope.get().as_bytes().to_vec()))
            .collect())
    }
}

/// A reply-topic message: the outcomes of one processor batch for one
/// ingress instance, in command order. One message per batch rather than
/// per command, because a broker's cost is per message (tansu writes and
/// reads each message, and each header, with its own SQL statements).
#[derive(Debug, Deserialize)]
pub struct ReplyBatch {
    pub outcomes: Vec<Outcome>,
}

impl ReplyBatch {
    /// The largest message `encode` builds, well under a broker's default
    /// 1 MB limit; a batch of larger outcomes goes out as several messages.
    pub const MAX_BYTES: usize = 512 * 1024;

    /// Encode `outcomes` as `{"outcomes":[...]}` messages of at most
    /// `max_bytes` each (or one outcome, if that alone is larger).
    pub fn encode<'a>(
        outcomes: impl IntoIterator<Item = &'a Outcome>,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, serde_json::Error> {
        const OPEN: &[u8] = br#"{"outcomes":["#;
        const CLOSE: &[u8] = b"]}";
        let mut messages = Vec::new();
        let mut current = Vec::new();
        for outcome in outcomes {
            let one = serde_json::to_vec(outcome)?;
            let full = current.len() + 1 + one.len() + CLOSE.len() > max_bytes;
            if !current.is_empty() && full {
                current.extend_from_slice(CLOSE);
                messages.push(std::mem::take(&mut current));
            }
            if current.is_empty() {
                current.extend_from_slice(OPEN);
            } else {
                current.push(b',');
            }
            current.extend_from_slice(&one);
        }
        if !current.is_empty() {
            current.extend_from_slice(CLOSE);
            messages.push(current);
        }
        Ok(messages)
    }

    /// Decode a reply message: a batch, or the single outcome an older
    /// processor sends, so a rolling upgrade loses no answers.
    pub fn decode(payload: &[u8]) -> Result<Vec<Outcome>, serde_json::Error> {
        match serde_json::from_slice::<ReplyBatch>(payload) {
            Ok(batch) => Ok(batch.outcomes),
            Err(e) => serde_json::from_slice::<Outcome>(payload)
                .map(|o| vec![o])
                .map_err(|_| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(n: u128, body_len: usize) -> Outcome {
        Outcome::success(
            Uuid::from_u128(n),
            Disposition::Created,
            json!({"id": n.to_string(), "pad": "x".repeat(body_len)}),
            format!("W/\"{n}\""),
            format!("http://h/Users/{n}"),
        )
    }

    #[test]
    fn reply_batches_split_by_size_and_keep_every_outcome_in_order() {
        // (outcomes, body bytes each, max bytes, messages expected)
        let cases: &[(u128, usize, usize, usize)] = &[
            (0, 10, 1024, 0),
            (1, 10, 1024, 1),
            (3, 10, 1024, 1),
            (10, 200, 1024, 5), // about 340 bytes each: two fit in 1,024
            (2, 5000, 1024, 2), // each alone is over the limit: one per message
        ];
        for &(n, body_len, max, expected) in cases {
            let outcomes: Vec<Outcome> = (0..n).map(|i| outcome(i, body_len)).collect();
            let messages = ReplyBatch::encode(&outcomes, max).expect("encodes");
            assert_eq!(messages.len(), expected, "{n} outcomes of {body_len} bytes");
            let mut decoded = Vec::new();
            for m in &messages {
                assert!(m.len() <= max || ReplyBatch::decode(m).ok().map(|v| v.len()) == Some(1));
                decoded.extend(ReplyBatch::decode(m).expect("decodes"));
            }
            assert_eq!(decoded, outcomes);
        }
    }

    #[test]
    fn a_reply_without_the_resource_keeps_errors_whole() {
        let ok = outcome(1, 3);
        let err = Outcome::from_error(Uuid::from_u128(2), &ScimError::not_found("gone"));
        let cases = [
            (ok.clone(), ReplyShape::Whole, true),
            (ok.clone(), ReplyShape::WithoutResource, false),
            (err.clone(), ReplyShape::Whole, true),
            (err.clone(), ReplyShape::WithoutResource, true),
        ];
        for (o, shape, has_body) in cases {
            let shaped = o.clone().shaped(shape);
            let body = serde_json::to_value(&shaped).expect("encodes");
            assert_eq!(body.get("body").is_some(), has_body, "{o:?} {shape:?}");
            assert_eq!(
                (&shaped.disposition, &shaped.etag, &shaped.location),
                (&o.disposition, &o.etag, &o.location)
            );
        }
    }

    #[test]
    fn an_envelope_without_a_reply_shape_wants_the_whole_outcome() {
        let env = serde_json::json!({
            "v": 1, "command_id": Uuid::from_u128(1), "tenant_id": Uuid::from_u128(2),
            "request_id": "r", "accepted_at": "2026-11-29T00:00:00Z", "base_url": "http://h",
            "command": {"type": "delete_user", "user_id": Uuid::from_u128(3)}
        });
        let decoded: CommandEnvelope = serde_json::from_value(env).expect("decodes");
        assert_eq!(decoded.reply, ReplyShape::Whole);
        let encoded = serde_json::to_value(&decoded).expect("encodes");
        assert!(encoded.get("reply").is_none(), "the default is not written");
    }

    #[test]
    fn a_command_batch_splits_into_its_commands_as_sent() {
        let envelopes: Vec<(String, Vec<u8>)> = (0..3u128)
            .map(|n| {
                let env = serde_json::json!({"v": 1, "n": n, "s": "quote \" and é"});
                (
                    format!("t/{n}\"x"),
                    serde_json::to_vec(&env).expect("encodes"),
                )
            })
            .collect();
        let cases: &[usize] = &[0, 1, 3];
        for &n in cases {
            let batch = CommandBatch::encode(
                envelopes[..n]
                    .iter()
                    .map(|(k, e)| (k.as_str(), e.as_slice())),
            )
            .expect("encodes");
            assert!(CommandBatch::is_batch(&batch));
            assert_eq!(CommandBatch::split(&batch).expect("splits"), envelopes[..n]);
        }
        let single =
            serde_json::to_vec(&serde_json::json!({"v": 1, "command": {}})).expect("encodes");
        assert!(!CommandBatch::is_batch(&single));
        assert!(CommandBatch::split(br#"{"commands":[{"key":1}]}"#).is_err());
    }

    #[test]
    fn ids_are_read_from_a_payload_too_deep_to_decode() {
        let (command, tenant) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let env = |body: &str| {
            format!(
                r#"{{"v":1,"command_id":"{command}","tenant_id":"{tenant}","request_id":"r","accepted_at":"2026-11-29T00:00:00Z","base_url":"http://h","command":{{"type":"patch_user","user_id":"{command}","body":{body}}}}}"#
            )
        };
        // (payload, decodes, ids read)
        type Case = (Vec<u8>, bool, (Option<Uuid>, Option<Uuid>));
        let cases: Vec<Case> = vec![
            (env("{}").into_bytes(), true, (Some(command), Some(tenant))),
            (
                env(&deep).into_bytes(),
                false,
                (Some(command), Some(tenant)),
            ),
            (b"\xff not json".to_vec(), false, (None, None)),
            (br#"{"command_id":"nope"}"#.to_vec(), false, (None, None)),
        ];
        for (payload, decodes, ids) in cases {
            let text = String::from_utf8_lossy(&payload)
                .chars()
                .take(60)
                .collect::<String>();
            assert_eq!(CommandEnvelope::decode(&payload).is_ok(), decodes, "{text}");
            assert_eq!(CommandEnvelope::peek_ids(&payload), ids, "{text}");
        }
    }

    /// Dedup rows and replies written before dispositions were typed
    /// (the same wire form as now) read back as what they meant, and
    /// encode again to the very same JSON.
    #[test]
    fn outcomes_in_the_stored_form_decode_and_encode_unchanged() {
        let id = "01a226c2-9d3b-71aa-9f1e-0c3f1b2a4d5e";
        let error = |status: &str, scim_type: Option<&str>, detail: &str| {
            let mut e =
                json!({"schemas": [crate::scim::ERROR_SCHEMA], "status": status, "detail": detail});
            if let Some(t) = scim_type {
                e["scimType"] = json!(t);
            }
            e
        };
        let user =
            json!({"schemas": [crate::scim::USER_SCHEMA], "id": "u1", "userName": "a@x.com"});
        let at = "http://h/scim/v2/t/Users/u1";
        // (stored row, disposition it means, whether a resource comes with it)
        let cases: Vec<(Value, Disposition, bool)> = vec![
            (
                json!({"command_id": id, "status": 201, "body": user, "etag": "W/\"1\"", "location": at}),
                Disposition::Created,
                true,
            ),
            (
                json!({"command_id": id, "status": 201, "etag": "W/\"1\"", "location": at}),
                Disposition::Created,
                false,
            ),
            (
                json!({"command_id": id, "status": 200, "body": user, "etag": "W/\"2\"", "location": at}),
                Disposition::Ok,
                true,
            ),
            (
                json!({"command_id": id, "status": 204}),
                Disposition::NoContent,
                false,
            ),
            (
                json!({"command_id": id, "status": 409, "body": error("409", Some("uniqueness"), "taken (rule I3)")}),
                Disposition::Rejected(ScimError::uniqueness("taken (rule I3)")),
                false,
            ),
            (
                json!({"command_id": id, "status": 412, "body": error("412", None, "changed")}),
                Disposition::Rejected(ScimError::precondition_failed("changed")),
                false,
            ),
            (
                json!({"command_id": id, "status": 401, "body": error("401", None, "the tenant no longer exists")}),
                Disposition::Rejected(ScimError::unauthorized("the tenant no longer exists")),
                false,
            ),
            (
                json!({"command_id": id, "status": 500, "body": error("500", None, "boom")}),
                Disposition::Rejected(ScimError::internal("boom")),
                false,
            ),
            (
                json!({"command_id": id, "status": 500, "dead_letter_id": 42, "body": error("500", None,
                    "the request could not be applied and is held for an operator (dead letter 42)")}),
                Disposition::DeadLettered { dead_letter_id: 42 },
                false,
            ),
        ];
        for (stored, disposition, has_resource) in cases {
            let outcome: Outcome = serde_json::from_value(stored.clone()).expect("decodes");
            assert_eq!(outcome.disposition, disposition, "{stored}");
            assert_eq!(outcome.resource.is_some(), has_resource, "{stored}");
            assert_eq!(outcome.status(), stored["status"], "{stored}");
            assert_eq!(serde_json::to_value(&outcome).expect("encodes"), stored);
        }
        for unknown in [
            json!({"command_id": id, "status": 302}),
            json!({"command_id": id}),
        ] {
            assert!(serde_json::from_value::<Outcome>(unknown).is_err());
        }
    }

    #[test]
    fn a_single_outcome_message_still_decodes() {
        let one = outcome(7, 3);
        let payload = serde_json::to_vec(&one).expect("encodes");
        assert_eq!(ReplyBatch::decode(&payload).expect("decodes"), vec![one]);
        assert!(ReplyBatch::decode(b"{\"nothing\":1}").is_err());
    }
}
