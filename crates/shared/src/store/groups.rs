//! Groups and their membership rows (L6).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::filter_sql::{self, Bind, SqlFragment};
use super::schema::{group_members, groups};
use super::StoreError;
use super::{list_page, lower};
use crate::scim::group::{GroupView, MemberView};
use crate::scim::query::ListParams;
use crate::scim::ScimError;

/// Rows per INSERT when adding members, to stay far below the bind limit.
const INSERT_CHUNK: usize = 5000;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = groups)]
pub struct GroupRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl GroupRow {
    /// The row's columns, for listings built as SQL text (a test keeps it
    /// in step with the struct).
    pub(crate) const COLUMNS: &'static str = "groups.id, groups.tenant_id, groups.display_name, \
        groups.external_id, groups.version, groups.created_at, groups.updated_at";

    pub fn view(&self, members: Option<Vec<MemberView>>) -> GroupView {
        GroupView {
            id: self.id,
            display_name: self.display_name.clone(),
            external_id: self.external_id.clone(),
            created: self.created_at,
            last_modified: self.updated_at,
            version: self.version,
            members,
        }
    }
}

pub fn find(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<GroupRow>, StoreError> {
    let q = groups::table
        .filter(groups::tenant_id.eq(tenant_id))
        .filter(groups::id.eq(id))
        .select(GroupRow::as_select());
    Ok(if lock {
        q.for_no_key_update().first(conn).optional()?
    } else {
        q.first(conn).optional()?
    })
}

/// The group holding `display_name` (case-insensitive), other than `except`.
pub fn display_name_holder(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    display_name: &str,
    except: Option<Uuid>,
) -> Result<Option<Uuid>, StoreError> {
    let mut q = groups::table
        .filter(groups::tenant_id.eq(tenant_id))
        .filter(lower(groups::display_name).eq(lower(display_name)))
        .select(groups::id)
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(groups::id.ne(id));
    }
    Ok(q.first(conn).optional()?)
}

pub fn insert(conn: &mut PgConnection, row: &GroupRow) -> Result<(), StoreError> {
    diesel::insert_into(groups::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn update(conn: &mut PgConnection, row: &GroupRow) -> Result<(), StoreError> {
    diesel::update(groups::table.find(row.id))
        .set((
            groups::display_name.eq(&row.display_name),
            groups::external_id.eq(&row.external_id),
            groups::version.eq(row.version),
            groups::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Delete a group; its membership rows go with it.
pub fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    diesel::delete(groups::table.find(id)).execute(conn)?;
    Ok(())
}

/// Of `ids`, those that are not live users of the tenant; the others stay
/// locked against deletion until the transaction ends.
pub fn unknown_users(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    // One primary-key probe per id, whatever the statistics say (a LATERAL
    // subquery with LIMIT cannot become a join). As `id = ANY(..)` next to
    // the tenant, a table not analyzed yet (a new installation's first
    // sync) was planned as a scan of the tenant's users for every PATCH:
    // 280 ms per 1,000 members at 100,000 users.
    //
    // The users found are share-locked until the transaction ends: a
    // concurrent delete (an update of the row) waits, then takes the user
    // out of every group including this one; a delete that came first is
    // waited for and its user is found deleted.
    let found: Vec<Uuid> = diesel::sql_query(
        "SELECT held.id FROM unnest($2::uuid[]) AS m(id) \
          CROSS JOIN LATERAL (SELECT u.id FROM users u \
                               WHERE u.id = m.id AND u.tenant_id = $1 \
                                 AND u.deleted_at IS NULL LIMIT 1 FOR SHARE) AS held",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant_id)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .load::<Found>(conn)?
    .into_iter()
    .map(|f| f.id)
    .collect();
    Ok(ids
        .iter()
        .filter(|id| !found.contains(id))
        .copied()
        .collect())
}

/// Add members; ones already there are left alone. Returns those added.
pub fn add_members(
    conn: &mut PgConnection,
    group_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let mut added = Vec::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|u| {
                (
                    group_members::group_id.eq(group_id),
                    group_members::user_id.eq(*u),
                )
            })
            .collect();
        added.extend(
            diesel::insert_into(group_members::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .returning(group_members::user_id)
                .get_results::<Uuid>(conn)?,
        );
    }
    Ok(added)
}

/// Remove the named members. Returns those removed.
pub fn remove_members(
    conn: &mut PgConnection,
    group_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    Ok(diesel::delete(
        group_members::table
            .filter(group_members::group_id.eq(group_id))
            .filter(group_members::user_id.eq_any(ids)),
    )
    .returning(group_members::user_id)
    .get_results(conn)?)
}

/// Remove every member. Returns those removed.
pub fn clear_members(conn: &mut PgConnection, group_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(
        diesel::delete(group_members::table.filter(group_members::group_id.eq(group_id)))
            .returning(group_members::user_id)
            .get_results(conn)?,
    )
}

/// Take a user out of every group (L5). Returns the groups it left.
pub fn remove_user_everywhere(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(
        diesel::delete(group_members::table.filter(group_members::user_id.eq(user_id)))
            .returning(group_members::group_id)
            .get_results(conn)?,
    )
}

/// Members of several groups, for rendering, in the order they joined.
/// Only the membership rows are read: a member's `display` is not
/// returned, so rendering a large group joins nothing.
pub fn members_of(
    conn: &mut PgConnection,
    group_ids: &[Uuid],
) -> Result<Vec<(Uuid, MemberView)>, StoreError> {
    let rows: Vec<(Uuid, Uuid)> = group_members::table
        .filter(group_members::group_id.eq_any(group_ids))
        .order((
            group_members::group_id,
            group_members::added_at,
            group_members::user_id,
        ))
        .select((group_members::group_id, group_members::user_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(g, id)| (g, MemberView { id }))
        .collect())
}

/// The groups each of `user_ids` belongs to: (user, group id, display name).
pub fn groups_of_users(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String)>, StoreError> {
    let query = group_members::table
        .inner_join(groups::table)
        .order((group_members::user_id, groups::display_name))
        .select((group_members::user_id, groups::id, groups::display_name));
    // One user (a lookup, a GET) is the common case. PostgreSQL settles on
    // a generic plan for `= $1` and stops planning it; for `= ANY($1)` it
    // keeps planning each call (its estimate depends on the array).
    Ok(match user_ids {
        [one] => query.filter(group_members::user_id.eq(one)).load(conn)?,
        many => query
            .filter(group_members::user_id.eq_any(many))
            .load(conn)?,
    })
}

/// One page of the tenant's groups matching `params`, and the total.
pub fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    params: &ListParams,
) -> Result<Result<(i64, Vec<GroupRow>), ScimError>, StoreError> {
    let mut scope = SqlFragment::default();
    scope.push("groups.tenant_id = ");
    scope.push_bind(Bind::Uuid(tenant_id));
    list_page(
        conn,
        "groups",
        GroupRow::COLUMNS,
        scope,
        filter_sql::group_condition,
        filter_sql::group_sort,
        params,
    )
}

/// How many groups a tenant has.
pub fn count(conn: &mut PgConnection, tenant_id: Uuid) -> Result<i64, StoreError> {
    Ok(groups::table
        .filter(groups::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)?)
}
