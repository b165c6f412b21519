//! What crosses Kafka: a [`CommandEnvelope`] from the ingress to the
//! processor, and an [`Outcome`] back. Both are versioned JSON so that an
//! ingress and a processor of different builds can share a topic.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::scim::ScimError;

/// Bumped on any incompatible change to the envelope.
pub const ENVELOPE_VERSION: u32 = 1;

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
    pub command: Command,
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
