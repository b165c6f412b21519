//! Users outside SCIM: provisioning one by hand (I3 links it later), and
//! a user's record with the history of its roles, active state and
//! identity.

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use scimflow_shared::config::Config;
use scimflow_shared::rules::identity::looks_like_email;
use scimflow_shared::rules::roles::Roles;
use scimflow_shared::store::commands::{history, record_history, HistoryEntry, HistoryRow};
use scimflow_shared::store::users::{self, UserRow};
use scimflow_shared::store::{groups, tenants};

use super::{text, Result, ServiceError};

/// The longest email an operator may name, and the longest name part
/// (SCIM's string bound).
const MAX_EMAIL: usize = 320;
const MAX_NAME: usize = scimflow_shared::scim::user::MAX_STRING_LEN;

/// What `user create` provisions.
pub struct ManualUser {
    pub email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// Provision a user by hand; returns it rendered as SCIM.
pub fn create_manual(
    conn: &mut PgConnection,
    config: &Config,
    tenant: Uuid,
    new: ManualUser,
) -> Result<Value> {
    let email = text("email", &new.email, MAX_EMAIL)?;
    let given_name = new
        .given_name
        .map(|g| text("given name", &g, MAX_NAME))
        .transpose()?;
    let family_name = new
        .family_name
        .map(|f| text("family name", &f, MAX_NAME))
        .transpose()?;
    if !looks_like_email(&email) {
        return Err(ServiceError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    conn.transaction(|conn| {
        if tenants::find(conn, tenant)?.is_none() {
            return Err(ServiceError::NotFound(format!("no tenant {tenant}")));
        }
        let identity = email.to_lowercase();
        if let Some(existing) = users::find_by_email(conn, tenant, &identity)? {
            if existing.deleted_at.is_none() {
                return Err(ServiceError::Conflict(format!(
                    "user {} already has this email",
                    existing.id
                )));
            }
        }
        let mut name = serde_json::Map::new();
        if let Some(g) = given_name {
            name.insert("givenName".into(), Value::String(g));
        }
        if let Some(f) = family_name {
            name.insert("familyName".into(), Value::String(f));
        }
        let mut attrs = json!({
            "userName": email,
            "emails": [{"value": email, "type": "work", "primary": true}],
        });
        if !name.is_empty() {
            attrs["name"] = Value::Object(name);
        }
        let now = Utc::now();
        let roles = Roles::DEFAULT;
        let row = UserRow {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            user_name: email.clone(),
            external_id: None,
            primary_email: identity.clone(),
            active: true,
            primary_role: roles.primary.as_str().into(),
            permission: roles.permission.as_str().into(),
            attrs,
            scim_managed: false,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        users::insert(conn, &row)?;
        record_history(
            conn,
            HistoryEntry {
                tenant_id: tenant,
                user_id: row.id,
                command_id: None,
                request_id: None,
                change: "manually_provisioned",
                before: None,
                after: json!({"primary_email": identity, "user_name": email, "active": true,
                              "deleted": false, "roles": {"primary": row.primary_role, "permission": row.permission}}),
            },
        )?;
        let view = row.view()?;
        Ok(view.render(&config.scim_base_url(tenant)))
    })
}

/// How an operator names a user: its id, or its identity email.
pub enum UserRef {
    Id(Uuid),
    Email(String),
}

impl UserRef {
    /// A UUID is an id; anything else an email.
    pub fn parse(raw: &str) -> Result<UserRef> {
        let named = text("user", raw, MAX_EMAIL)?;
        if let Ok(id) = Uuid::parse_str(&named) {
            return Ok(UserRef::Id(id));
        }
        if !looks_like_email(&named) {
            return Err(ServiceError::Invalid(
                "a user is named by its id or its email address".into(),
            ));
        }
        Ok(UserRef::Email(named))
    }
}

/// A user's record: the SCIM resource, its roles, and every change to
/// its roles, active state and identity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserRecord {
    /// The user as SCIM renders it.
    pub user: Value,
    pub roles: RolesView,
    /// Created or last written over SCIM (false: provisioned by hand).
    pub scim_managed: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The groups it is a member of, by display name.
    pub groups: Vec<GroupRef>,
    pub history: Vec<HistoryView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupRef {
    pub id: Uuid,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RolesView {
    pub primary: String,
    pub permission: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub id: i64,
    pub command_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub change: String,
    pub before: Option<Value>,
    pub after: Value,
    pub occurred_at: DateTime<Utc>,
}

impl From<HistoryRow> for HistoryView {
    fn from(h: HistoryRow) -> Self {
        HistoryView {
            id: h.id,
            command_id: h.command_id,
            request_id: h.request_id,
            change: h.change,
            before: h.before,
            after: h.after,
            occurred_at: h.occurred_at,
        }
    }
}

pub fn show(
    conn: &mut PgConnection,
    config: &Config,
    tenant: Uuid,
    who: &UserRef,
) -> Result<UserRecord> {
    let row = match who {
        UserRef::Id(id) => users::find(conn, tenant, *id)?,
        UserRef::Email(email) => users::find_by_email(conn, tenant, &email.trim().to_lowercase())?,
    };
    let Some(row) = row else {
        if tenants::find(conn, tenant)?.is_none() {
            return Err(ServiceError::NotFound(format!("no tenant {tenant}")));
        }
        return Err(ServiceError::NotFound(match who {
            UserRef::Id(id) => format!("no user {id} in tenant {tenant}"),
            UserRef::Email(email) => format!("no user with email {email} in tenant {tenant}"),
        }));
    };
    let view = row.view()?;
    let member_of = groups::groups_of_users(conn, &[row.id])?
        .into_iter()
        .map(|(_, id, display_name)| GroupRef { id, display_name })
        .collect();
    Ok(UserRecord {
        user: view.render(&config.scim_base_url(tenant)),
        roles: RolesView {
            primary: row.primary_role.clone(),
            permission: row.permission.clone(),
        },
        scim_managed: row.scim_managed,
        deleted_at: row.deleted_at,
        groups: member_of,
        history: history(conn, tenant, row.id)?
            .into_iter()
            .map(HistoryView::from)
            .collect(),
    })
}

/// The user a support engineer names: its id, its identity email, or its
/// userName (case-insensitive); a live user before a deleted one.
pub fn find(conn: &mut PgConnection, tenant: Uuid, named: &str) -> Result<Uuid> {
    let named = text("user", named, MAX_EMAIL)?;
    let by_id = match Uuid::parse_str(&named) {
        Ok(id) => users::find(conn, tenant, id)?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(row) => Some(row),
        None if looks_like_email(&named) => {
            match users::find_by_email(conn, tenant, &named.to_lowercase())? {
                Some(row) => Some(row),
                None => users::find_by_user_name(conn, tenant, &named)?,
            }
        }
        None => users::find_by_user_name(conn, tenant, &named)?,
    };
    found
        .map(|row| row.id)
        .ok_or_else(|| ServiceError::NotFound(format!("no user {named} in tenant {tenant}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_named_by_id_or_email_and_nothing_else() {
        let id = "0190a4b2-7c3e-7d1a-9f00-000000000001";
        // (named, id?, email?)
        let cases = [
            (id, Some(id), None),
            (" ada@example.com ", None, Some("ada@example.com")),
            ("nobody", None, None),
            ("a\u{0}@example.com", None, None),
            ("", None, None),
        ];
        for (named, want_id, want_email) in cases {
            let (got_id, got_email) = match UserRef::parse(named) {
                Ok(UserRef::Id(i)) => (Some(i.to_string()), None),
                Ok(UserRef::Email(e)) => (None, Some(e)),
                Err(_) => (None, None),
            };
            assert_eq!(got_id.as_deref(), want_id, "{named:?}");
            assert_eq!(got_email.as_deref(), want_email, "{named:?}");
        }
        let long = format!("{}@example.com", "a".repeat(400));
        assert!(UserRef::parse(&long).is_err());
    }
}
