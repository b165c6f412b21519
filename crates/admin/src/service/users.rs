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
        if let Some(existing) = users::find_by_email(conn, tenant, &identity, true)? {
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

/// How an operator names a user: its id, its identity email, or its
/// userName.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(Uuid),
    Email(String),
    UserName(String),
}

impl UserRef {
    /// A UUID is an id, an email address an email (or, failing that, a
    /// userName that looks like one), anything else a userName.
    pub fn parse(raw: &str) -> Result<UserRef> {
        let named = text("user", raw, MAX_EMAIL)?;
        if let Ok(id) = Uuid::parse_str(&named) {
            return Ok(UserRef::Id(id));
        }
        if looks_like_email(&named) {
            return Ok(UserRef::Email(named));
        }
        Ok(UserRef::UserName(named))
    }
}

/// The user `who` names, in any state for an id or an email (the most
/// recently deleted one when none is live), live for a userName. Reads
/// only: nothing is locked.
fn resolve(conn: &mut PgConnection, tenant: Uuid, who: &UserRef) -> Result<Option<UserRow>> {
    Ok(match who {
        UserRef::Id(id) => users::find(conn, tenant, *id)?,
        UserRef::Email(email) => {
            match users::find_by_email(conn, tenant, &email.to_lowercase(), false)? {
                Some(row) => Some(row),
                None => users::find_live_by_user_name(conn, tenant, email)?,
            }
        }
        UserRef::UserName(name) => users::find_live_by_user_name(conn, tenant, name)?,
    })
}

fn no_user(conn: &mut PgConnection, tenant: Uuid, who: &UserRef) -> ServiceError {
    match tenants::find(conn, tenant) {
        Ok(None) => ServiceError::NotFound(format!("no tenant {tenant}")),
        Err(e) => e.into(),
        Ok(Some(_)) => ServiceError::NotFound(match who {
            UserRef::Id(id) => format!("no user {id} in tenant {tenant}"),
            UserRef::Email(email) => format!("no user with email {email} in tenant {tenant}"),
            UserRef::UserName(name) => format!("no user named {name} in tenant {tenant}"),
        }),
    }
}

/// The id of the user `who` names.
pub fn find(conn: &mut PgConnection, tenant: Uuid, who: &UserRef) -> Result<Uuid> {
    match resolve(conn, tenant, who)? {
        Some(row) => Ok(row.id),
        None => Err(no_user(conn, tenant, who)),
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

/// A user's record with its history: all of it, or its `newest` changes.
pub fn show(
    conn: &mut PgConnection,
    config: &Config,
    tenant: Uuid,
    who: &UserRef,
    newest: Option<i64>,
) -> Result<UserRecord> {
    let Some(row) = resolve(conn, tenant, who)? else {
        return Err(no_user(conn, tenant, who));
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
        history: history(conn, tenant, row.id, newest)?
            .into_iter()
            .map(HistoryView::from)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_named_by_id_email_or_user_name() {
        let id = "0190a4b2-7c3e-7d1a-9f00-000000000001";
        let uuid = Uuid::parse_str(id).ok();
        let cases = [
            (id, uuid.map(UserRef::Id)),
            (
                " ada@example.com ",
                Some(UserRef::Email("ada@example.com".into())),
            ),
            (
                "ADA\\lovelace",
                Some(UserRef::UserName("ADA\\lovelace".into())),
            ),
            ("Zoë", Some(UserRef::UserName("Zoë".into()))),
            ("a\u{0}@example.com", None),
            ("", None),
        ];
        for (named, want) in cases {
            assert_eq!(UserRef::parse(named).ok(), want, "{named:?}");
        }
        let long = format!("{}@example.com", "a".repeat(400));
        assert!(UserRef::parse(&long).is_err());
    }
}
