//! Change events (docs/events.md): what downstream services read from the
//! change topics, one event per committed change, typed here so that the
//! processor, the tenant purge and the published JSON Schemas
//! (docs/*-change-event.schema.json, generated from these types and
//! checked for drift by a test) cannot disagree.
//!
//! Each change topic carries its resource's events and `tenant.deleted`
//! (a tenant's purge), so a consumer of either topic learns of it.
//! Fields may be added in version 1; removing or changing one makes
//! version 2, announced in `schema_version`.

use chrono::{DateTime, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The version every event announces in `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// At most this many member ids in a group event's `members_added` or
/// `members_removed`; the counts beside them stay whole.
pub const MAX_EVENT_MEMBER_IDS: usize = 1000;

const TRUNCATED: &str = "Present and true only when the event was too large for a message: resource is then null (and a group's member id lists empty) although the resource exists.";

/// A user event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UserEventType {
    /// Also when a deleted user comes back (L5).
    #[serde(rename = "user.created")]
    Created,
    /// Including linking a manually provisioned user (I3).
    #[serde(rename = "user.updated")]
    Updated,
    #[serde(rename = "user.deactivated")]
    Deactivated,
    #[serde(rename = "user.reactivated")]
    Reactivated,
    #[serde(rename = "user.deleted")]
    Deleted,
    /// Only the roles changed.
    #[serde(rename = "user.roles_changed")]
    RolesChanged,
}

/// What part of a user a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserChanged {
    Attributes,
    Active,
    Roles,
    Identity,
}

/// One committed change to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserChangeEvent {
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// Unique per event (UUID v7); deduplicate on it.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: UserEventType,
    pub tenant_id: Uuid,
    /// The user's SCIM `id`.
    pub resource_id: Uuid,
    /// The user's version after this change: 1, 2, 3, ... with no gaps.
    #[schemars(range(min = 1))]
    pub sequence: i64,
    /// When the change was committed.
    pub occurred_at: DateTime<Utc>,
    /// The write that caused it.
    pub command_id: Uuid,
    /// The IdP's request id (or one scimflow minted).
    pub request_id: String,
    pub changed: Vec<UserChanged>,
    /// The SCIM User after the change; null when deleted or truncated.
    #[schemars(schema_with = "user_resource")]
    pub resource: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(description = TRUNCATED, extend("const" = true))]
    pub truncated: bool,
}

/// A group event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GroupEventType {
    #[serde(rename = "group.created")]
    Created,
    /// The name or external id changed, or members were both added and
    /// removed.
    #[serde(rename = "group.updated")]
    Updated,
    #[serde(rename = "group.deleted")]
    Deleted,
    #[serde(rename = "group.members_added")]
    MembersAdded,
    #[serde(rename = "group.members_removed")]
    MembersRemoved,
}

/// What part of a group a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GroupChanged {
    #[serde(rename = "displayName")]
    DisplayName,
    #[serde(rename = "members")]
    Members,
}

/// One committed change to a group. The member list itself is never
/// carried: the ids that changed are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupChangeEvent {
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: GroupEventType,
    pub tenant_id: Uuid,
    pub resource_id: Uuid,
    #[schemars(range(min = 1))]
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
    pub command_id: Uuid,
    pub request_id: String,
    pub changed: Vec<GroupChanged>,
    /// Users added, at most `MAX_EVENT_MEMBER_IDS`.
    #[schemars(length(max = 1000))]
    pub members_added: Vec<Uuid>,
    /// Users removed, at most `MAX_EVENT_MEMBER_IDS`.
    #[schemars(length(max = 1000))]
    pub members_removed: Vec<Uuid>,
    pub members_added_count: u64,
    pub members_removed_count: u64,
    /// The SCIM Group after the change, without `members`; null when
    /// deleted or truncated.
    #[schemars(schema_with = "group_resource")]
    pub resource: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(description = TRUNCATED, extend("const" = true))]
    pub truncated: bool,
}

impl GroupChangeEvent {
    /// The member ids an event lists: the first `MAX_EVENT_MEMBER_IDS`.
    pub fn capped(ids: &[Uuid]) -> Vec<Uuid> {
        ids.iter().take(MAX_EVENT_MEMBER_IDS).copied().collect()
    }
}

/// `tenant.deleted`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TenantEventType {
    #[serde(rename = "tenant.deleted")]
    Deleted,
}

/// A tenant was deleted and every resource of it purged; published on
/// both change topics, keyed by the tenant id. No events of its resources
/// follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantDeletedEvent {
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: TenantEventType,
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

impl TenantDeletedEvent {
    pub fn new(event_id: Uuid, tenant_id: Uuid, occurred_at: DateTime<Utc>) -> Self {
        TenantDeletedEvent {
            schema_version: SCHEMA_VERSION,
            event_id,
            kind: TenantEventType::Deleted,
            tenant_id,
            occurred_at,
        }
    }
}

/// A message of the user-changes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(
    title = "scimflow user change event, version 1",
    extend("$id" = "urn:scimflow:events:user-change:1")
)]
pub enum UserTopicEvent {
    User(UserChangeEvent),
    TenantDeleted(TenantDeletedEvent),
}

/// A message of the group-changes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(
    title = "scimflow group change event, version 1",
    extend("$id" = "urn:scimflow:events:group-change:1")
)]
pub enum GroupTopicEvent {
    Group(GroupChangeEvent),
    TenantDeleted(TenantDeletedEvent),
}

fn user_resource(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "oneOf": [
            {"type": "null"},
            {"type": "object", "required": ["schemas", "id", "userName", "active", "roles", "meta"]}
        ]
    })
}

fn group_resource(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "oneOf": [
            {"type": "null"},
            {"type": "object", "required": ["schemas", "id", "displayName", "meta"]}
        ]
    })
}

/// The published schema of the user-changes topic (docs/user-change-event.schema.json).
pub fn user_topic_schema() -> Value {
    schemars::schema_for!(UserTopicEvent).to_value()
}

/// The published schema of the group-changes topic (docs/group-change-event.schema.json).
pub fn group_topic_schema() -> Value {
    schemars::schema_for!(GroupTopicEvent).to_value()
}

/// Each published schema: its file under docs/ and its generator.
pub type SchemaFile = (&'static str, fn() -> Value);

/// The schemas published under docs/, generated from the types above.
pub const SCHEMA_FILES: [SchemaFile; 2] = [
    ("user-change-event.schema.json", user_topic_schema),
    ("group-change-event.schema.json", group_topic_schema),
];

/// A schema as its file under docs/ holds it.
pub fn schema_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The files under docs/ are what the types generate. After changing
    /// an event type, regenerate them with
    /// `SCIMFLOW_WRITE_SCHEMAS=1 cargo test -p scimflow-core published_schemas`.
    #[test]
    fn published_schemas_are_generated_from_the_event_types() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let write = std::env::var_os("SCIMFLOW_WRITE_SCHEMAS").is_some();
        for (file, generate) in SCHEMA_FILES {
            let path = docs.join(file);
            let want = schema_text(&generate());
            if write {
                std::fs::write(&path, &want).expect("write the schema");
                continue;
            }
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                got == want,
                "docs/{file} is not what the event types generate; regenerate it with \
                 `SCIMFLOW_WRITE_SCHEMAS=1 cargo test -p scimflow-core published_schemas` \
                 and commit the result"
            );
        }
    }

    #[test]
    fn every_event_decodes_as_a_message_of_its_topic() {
        let (tenant, id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let user = UserChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            kind: UserEventType::RolesChanged,
            tenant_id: tenant,
            resource_id: id,
            sequence: 4,
            occurred_at: at,
            command_id: Uuid::now_v7(),
            request_id: "r".into(),
            changed: vec![UserChanged::Roles],
            resource: Some(json!({"id": id})),
            truncated: false,
        };
        let group = GroupChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            kind: GroupEventType::MembersAdded,
            tenant_id: tenant,
            resource_id: id,
            sequence: 2,
            occurred_at: at,
            command_id: Uuid::now_v7(),
            request_id: "r".into(),
            changed: vec![GroupChanged::Members],
            members_added: GroupChangeEvent::capped(&[Uuid::from_u128(3); 1001]),
            members_removed: vec![],
            members_added_count: 1001,
            members_removed_count: 0,
            resource: None,
            truncated: true,
        };
        let gone = TenantDeletedEvent::new(Uuid::now_v7(), tenant, at);
        let encoded = |v: &dyn erased::Encode| v.json();
        // (the event's JSON, its type, decoded on the user topic, on the group topic)
        let cases = [
            (encoded(&user), "user.roles_changed", true, false),
            (encoded(&group), "group.members_added", false, true),
            (encoded(&gone), "tenant.deleted", true, true),
        ];
        for (v, kind, on_users, on_groups) in cases {
            assert_eq!(v["type"], kind);
            assert_eq!(v["schema_version"], 1);
            assert_eq!(
                serde_json::from_value::<UserTopicEvent>(v.clone()).is_ok(),
                on_users,
                "{v}"
            );
            assert_eq!(
                serde_json::from_value::<GroupTopicEvent>(v.clone()).is_ok(),
                on_groups,
                "{v}"
            );
        }
        let v = encoded(&user);
        assert!(v.get("truncated").is_none(), "written only when true");
        assert_eq!(
            encoded(&group)["members_added"].as_array().map(Vec::len),
            Some(MAX_EVENT_MEMBER_IDS)
        );
        assert_eq!(encoded(&group)["truncated"], true);
    }

    mod erased {
        pub trait Encode {
            fn json(&self) -> serde_json::Value;
        }
        impl<T: serde::Serialize> Encode for T {
            fn json(&self) -> serde_json::Value {
                serde_json::to_value(self).unwrap_or_default()
            }
        }
    }
}
