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

/// The processor's answer to one command: what the ingress returns to the
/// IdP. Also stored with the dedup record, so a redelivered command is
/// answered identically without being applied again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub command_id: Uuid,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Outcome {
    /// The reply for a command that asked for `shape`: an error keeps its
    /// body (the SCIM error), a success may leave the resource out.
    pub fn shaped(self, shape: ReplyShape) -> Outcome {
        match shape {
            ReplyShape::WithoutResource if self.status < 400 => Outcome { body: None, ..self },
            _ => self,
        }
    }

    pub fn from_error(command_id: Uuid, err: &ScimError) -> Self {
        Outcome {
            command_id,
            status: err.status,
            body: Some(err.to_body()),
            etag: None,
            location: None,
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
        Outcome {
            command_id: Uuid::from_u128(n),
            status: 201,
            body: Some(json!({"id": n.to_string(), "pad": "x".repeat(body_len)})),
            etag: Some(format!("W/\"{n}\"")),
            location: Some(format!("http://h/Users/{n}")),
        }
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
            assert_eq!(shaped.body.is_some(), has_body, "{} {shape:?}", o.status);
            assert_eq!(
                (shaped.status, &shaped.etag, &shaped.location),
                (o.status, &o.etag, &o.location)
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

    #[test]
    fn a_single_outcome_message_still_decodes() {
        let one = outcome(7, 3);
        let payload = serde_json::to_vec(&one).expect("encodes");
        assert_eq!(ReplyBatch::decode(&payload).expect("decodes"), vec![one]);
        assert!(ReplyBatch::decode(b"{\"nothing\":1}").is_err());
    }
}
