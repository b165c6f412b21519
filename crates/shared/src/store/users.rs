//! Users: identity lookups, writes and filtered listing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::filter_sql::{self, Bind, SqlFragment};
use super::schema::users;
use super::StoreError;
use super::{list_page, lower};
use crate::rules::roles::{Permission, PrimaryRole, Roles};
use crate::scim::query::ListParams;
use crate::scim::user::UserView;
use crate::scim::ScimError;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = users)]
// Every column is written, `None` as NULL: what a binary COPY needs.
#[diesel(treat_none_as_default_value = false)]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_name: String,
    pub external_id: Option<String>,
    pub primary_email: String,
    pub active: bool,
    pub primary_role: String,
    pub permission: String,
    pub attrs: Value,
    pub scim_managed: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// The row's columns, for listings built as SQL text (a test keeps it
    /// in step with the struct).
    pub(crate) const COLUMNS: &'static str = "users.id, users.tenant_id, users.user_name, \
        users.external_id, users.primary_email, users.active, users.primary_role, \
        users.permission, users.attrs, users.scim_managed, users.version, users.created_at, \
        users.updated_at, users.deleted_at";

    pub fn roles(&self) -> Result<Roles, StoreError> {
        Ok(Roles {
            primary: PrimaryRole::parse(&self.primary_role).ok_or_else(|| {
                StoreError::Corrupt(format!("primary role {}", self.primary_role))
            })?,
            permission: Permission::parse(&self.permission)
                .ok_or_else(|| StoreError::Corrupt(format!("permission {}", self.permission)))?,
        })
    }

    pub fn view(&self) -> Result<UserView, StoreError> {
        let attrs: Map<String, Value> = match &self.attrs {
            Value::Object(m) => m.clone(),
            _ => return Err(StoreError::Corrupt(format!("attrs of user {}", self.id))),
        };
        Ok(UserView {
            id: self.id,
            attrs,
            active: self.active,
            roles: self.roles()?,
            created: self.created_at,
            last_modified: self.updated_at,
            version: self.version,
            groups: Vec::new(),
        })
    }
}

/// A live user of the tenant, locked for update when `lock` (the
/// processor's read-modify-write).
pub fn find_live(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<UserRow>, StoreError> {
    let q = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(id))
        .filter(users::deleted_at.is_null())
        .select(UserRow::as_select());
    Ok(if lock {
        q.for_no_key_update().first(conn).optional()?
    } else {
        q.first(conn).optional()?
    })
}

/// The user holding an identity email (I1/I2): the live one if any, else
/// the most recently deleted one (L5). Locked for update when `lock` (a
/// write decides on it); pages that only read take no lock.
pub fn find_by_email(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    lock: bool,
) -> Result<Option<UserRow>, StoreError> {
    let q = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::primary_email.eq(email))
        .order((users::deleted_at.is_not_null(), users::deleted_at.desc()))
        .select(UserRow::as_select());
    Ok(if lock {
        q.for_no_key_update().first(conn).optional()?
    } else {
        q.first(conn).optional()?
    })
}

/// The live user named `user_name` (case-insensitive, I4), through the
/// partial unique index of live userNames. Deleted users are found by
/// their email or id: an index over every userName ever used would cost
/// each write more than a lookup would gain.
pub fn find_live_by_user_name(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_name: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::deleted_at.is_null())
        .filter(lower(users::user_name).eq(lower(user_name)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The live user holding `user_name` (case-insensitive, I4), other than
/// `except`.
pub fn user_name_holder(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_name: &str,
    except: Option<Uuid>,
) -> Result<Option<Uuid>, StoreError> {
    let mut q = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::deleted_at.is_null())
        .filter(lower(users::user_name).eq(lower(user_name)))
        .select(users::id)
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(users::id.ne(id));
    }
    Ok(q.first(conn).optional()?)
}

/// Does another live user of the tenant hold `email`?
pub fn email_holder(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &str,
    except: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::deleted_at.is_null())
        .filter(users::primary_email.eq(email))
        .filter(users::id.ne(except))
        .select(users::id)
        .first(conn)
        .optional()?)
}

/// Which of `emails` and `user_names` some user of the tenant holds, as
/// given: an email held by any user, deleted ones included (I3 links, L5
/// brings back), a userName held by a live one, compared as I4 does with
/// PostgreSQL's `lower()`. One statement for a batch of creates, where
/// `find_by_email` and `user_name_holder` cost two per create.
pub fn held_identities(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    emails: &[String],
    user_names: &[String],
) -> Result<HeldIdentities, StoreError> {
    use diesel::sql_types::{Array, Text};

    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        is_email: bool,
        #[diesel(sql_type = Text)]
        value: String,
    }
    // One index probe per value, whatever the statistics say: a LATERAL
    // subquery with LIMIT cannot become a join. Written as EXISTS, the
    // planner hashed the whole tenant's userNames for every batch whenever
    // its row estimate for the tenant was low (a young or freshly loaded
    // table), which made each batch cost as much as the tenant's size.
    let rows: Vec<Held> = diesel::sql_query(
        "SELECT true AS is_email, e.v AS value FROM unnest($2::text[]) AS e(v) \
          CROSS JOIN LATERAL (SELECT 1 FROM users u \
                               WHERE u.tenant_id = $1 AND u.primary_email = e.v LIMIT 1) AS held \
         UNION ALL \
         SELECT false, n.v FROM unnest($3::text[]) AS n(v) \
          CROSS JOIN LATERAL (SELECT 1 FROM users u \
                               WHERE u.tenant_id = $1 AND u.deleted_at IS NULL \
                                 AND lower(u.user_name) = lower(n.v) LIMIT 1) AS held",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant_id)
    .bind::<Array<Text>, _>(emails)
    .bind::<Array<Text>, _>(user_names)
    .load(conn)?;
    let mut held = HeldIdentities::default();
    for row in rows {
        if row.is_email {
            held.emails.insert(row.value);
        } else {
            held.user_names.insert(row.value);
        }
    }
    Ok(held)
}

/// The answer of `held_identities`: the inputs that are taken.
#[derive(Debug, Default)]
pub struct HeldIdentities {
    pub emails: std::collections::HashSet<String>,
    pub user_names: std::collections::HashSet<String>,
}

pub fn insert(conn: &mut PgConnection, row: &UserRow) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Overwrite a user with `row` (same id); the caller has bumped `version`.
pub fn update(conn: &mut PgConnection, row: &UserRow) -> Result<(), StoreError> {
    diesel::update(users::table.find(row.id))
        .set((
            users::user_name.eq(&row.user_name),
            users::external_id.eq(&row.external_id),
            users::primary_email.eq(&row.primary_email),
            users::active.eq(row.active),
            users::primary_role.eq(&row.primary_role),
            users::permission.eq(&row.permission),
            users::attrs.eq(&row.attrs),
            users::scim_managed.eq(row.scim_managed),
            users::version.eq(row.version),
            users::updated_at.eq(row.updated_at),
            users::deleted_at.eq(row.deleted_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// One page of a tenant's live users matching `params`, in a stable order
/// (the sort key if any, then creation time, then id), and the total
/// number of matches. A bad filter or sort is `Ok(Err(..))`: the caller's
/// mistake, not the database's.
pub fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    params: &ListParams,
) -> Result<Result<(i64, Vec<UserRow>), ScimError>, StoreError> {
    let mut scope = SqlFragment::default();
    scope.push("users.tenant_id = ");
    scope.push_bind(Bind::Uuid(tenant_id));
    scope.push(" AND users.deleted_at IS NULL");
    list_page(
        conn,
        "users",
        UserRow::COLUMNS,
        scope,
        filter_sql::user_condition,
        filter_sql::user_sort,
        params,
    )
}

/// A tenant's users by state.
#[derive(Debug, Clone, Default, QueryableByName, serde::Serialize)]
pub struct UserCounts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub active: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub inactive: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub deleted: i64,
}

pub fn count_by_state(conn: &mut PgConnection, tenant_id: Uuid) -> Result<UserCounts, StoreError> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE deleted_at IS NULL AND active) AS active, \
                count(*) FILTER (WHERE deleted_at IS NULL AND NOT active) AS inactive, \
                count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted \
         FROM users WHERE tenant_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant_id)
    .get_result(conn)?)
}

/// A user of the tenant in any state, deleted ones included.
pub fn find(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}
