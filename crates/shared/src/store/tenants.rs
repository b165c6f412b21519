//! Tenants (T1–T4).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use super::schema::tenants;
use super::StoreError;
use crate::rules::roles::PlanFeatures;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub token_hash: String,
    pub features: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub token_rotated_at: Option<DateTime<Utc>>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl TenantRow {
    /// May its token be used, and its commands applied?
    pub fn is_active(&self) -> bool {
        self.suspended_at.is_none() && self.deleted_at.is_none()
    }

    pub fn plan(&self) -> PlanFeatures {
        PlanFeatures::from_names(&self.features)
    }
}

/// A tenant with what only operators see: the product's own reference.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants)]
pub struct TenantRecord {
    #[diesel(embed)]
    pub row: TenantRow,
    pub external_ref: Option<String>,
}

pub fn insert(conn: &mut PgConnection, row: &TenantRow) -> Result<(), StoreError> {
    diesel::insert_into(tenants::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Insert a tenant with the product's reference, if any. A live tenant
/// holding the reference already makes this a unique violation
/// (`StoreError::is_unique_violation`).
pub fn insert_with_ref(
    conn: &mut PgConnection,
    row: &TenantRow,
    external_ref: Option<&str>,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        insert(conn, row)?;
        if let Some(reference) = external_ref {
            diesel::update(tenants::table.find(row.id))
                .set(tenants::external_ref.eq(reference))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// A page of tenants, oldest first (deleted ones included).
pub fn list(
    conn: &mut PgConnection,
    offset: i64,
    limit: i64,
) -> Result<Vec<TenantRecord>, StoreError> {
    Ok(tenants::table
        .order((tenants::created_at, tenants::id))
        .select(TenantRecord::as_select())
        .offset(offset)
        .limit(limit)
        .load(conn)?)
}

/// A tenant and its provisioning at a glance, for the support console's
/// list: counted as the provisioning status counts them.
#[derive(Debug, Clone)]
pub struct TenantOverview {
    pub record: TenantRecord,
    pub glance: TenantGlance,
}

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct TenantGlance {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Live users.
    #[diesel(sql_type = BigInt)]
    pub users: i64,
    #[diesel(sql_type = BigInt)]
    pub groups: i64,
    /// When its IdP last sent a request.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_request_at: Option<DateTime<Utc>>,
    /// Requests answered 400 or above in the last 24 hours.
    #[diesel(sql_type = BigInt)]
    pub errors_last_day: i64,
    /// Dead letters open or being replayed.
    #[diesel(sql_type = BigInt)]
    pub open_dead_letters: i64,
}

/// The `ILIKE` pattern matching `text` anywhere, case-insensitive, with
/// `%`, `_` and `\` in it literal.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Tenants whose name, external reference or id contains `search`
/// (case-insensitive; empty: all), oldest first, each with its glance,
/// and how many match.
pub fn overview(
    conn: &mut PgConnection,
    search: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<TenantOverview>), StoreError> {
    let matching = || {
        let mut q = tenants::table.into_boxed();
        if !search.is_empty() {
            let pattern = contains_pattern(search);
            q = q.filter(
                tenants::name
                    .ilike(pattern.clone())
                    .or(tenants::external_ref
                        .ilike(pattern.clone())
                        .assume_not_null())
                    .or(
                        diesel::dsl::sql::<diesel::sql_types::Bool>("id::text ILIKE ")
                            .bind::<Text, _>(pattern),
                    ),
            );
        }
        q
    };
    let total: i64 = matching().count().get_result(conn)?;
    let records: Vec<TenantRecord> = matching()
        .order((tenants::created_at, tenants::id))
        .select(TenantRecord::as_select())
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    let ids: Vec<Uuid> = records.iter().map(|r| r.row.id).collect();
    let glances: Vec<TenantGlance> = diesel::sql_query(
        "SELECT t.id, \
           (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.deleted_at IS NULL) AS users, \
           (SELECT count(*) FROM groups g WHERE g.tenant_id = t.id) AS groups, \
           (SELECT a.occurred_at FROM activity a WHERE a.tenant_id = t.id \
              ORDER BY a.id DESC LIMIT 1) AS last_request_at, \
           (SELECT count(*) FROM activity a WHERE a.tenant_id = t.id AND a.status >= 400 \
              AND a.occurred_at >= now() - interval '1 day') AS errors_last_day, \
           (SELECT count(*) FROM dead_letters d WHERE d.tenant_id = t.id \
              AND d.status IN ('open', 'replaying')) AS open_dead_letters \
         FROM tenants t WHERE t.id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&ids)
    .load(conn)?;
    let rows = records
        .into_iter()
        .map(|record| {
            let glance = glances
                .iter()
                .find(|g| g.id == record.row.id)
                .cloned()
                .unwrap_or_default();
            TenantOverview { record, glance }
        })
        .collect();
    Ok((total, rows))
}

pub fn count(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(tenants::table.count().get_result(conn)?)
}

pub fn find_record(conn: &mut PgConnection, id: Uuid) -> Result<Option<TenantRecord>, StoreError> {
    Ok(tenants::table
        .find(id)
        .select(TenantRecord::as_select())
        .first(conn)
        .optional()?)
}

/// The live tenant holding the product's reference.
pub fn find_by_external_ref(
    conn: &mut PgConnection,
    reference: &str,
) -> Result<Option<TenantRecord>, StoreError> {
    Ok(tenants::table
        .filter(tenants::external_ref.eq(reference))
        .filter(tenants::deleted_at.is_null())
        .select(TenantRecord::as_select())
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<TenantRow>, StoreError> {
    Ok(tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tenants a batch applies commands for, key-share-locked until the
/// batch's transaction ends: a tenant deletion (which locks the row
/// exclusively) waits for the batch, and a batch that comes after a
/// deletion sees the tenant deleted, never half-purged. The weakest lock
/// that does this: suspending, resuming or rotating a token updates no
/// key, so it never waits for batches in flight.
pub fn lock_for_batch(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<TenantRow>, StoreError> {
    let mut ids = ids.to_vec();
    // One order for every batch, so two batches never wait on each other.
    ids.sort_unstable();
    ids.dedup();
    Ok(tenants::table
        .filter(tenants::id.eq_any(&ids))
        .order(tenants::id)
        .select(TenantRow::as_select())
        .for_key_share()
        .load(conn)?)
}

/// The tenant whose token hashes to `token_hash`. The lookup is by hash, so
/// its timing says nothing about the token itself; callers still verify in
/// constant time.
pub fn find_by_token_hash(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(tenants::table
        .filter(tenants::token_hash.eq(token_hash))
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?)
}

/// Replace the token hash; the old token stops working at once. Returns
/// false when there is no such tenant.
pub fn set_token_hash(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(tenants::table.find(id))
        .set((
            tenants::token_hash.eq(token_hash),
            tenants::token_rotated_at.eq(Some(Utc::now())),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn set_features(
    conn: &mut PgConnection,
    id: Uuid,
    features: &[String],
) -> Result<bool, StoreError> {
    let n = diesel::update(tenants::table.find(id))
        .set(tenants::features.eq(features))
        .execute(conn)?;
    Ok(n == 1)
}

/// Suspend (true) or resume (false). Returns false when there is no such
/// live tenant.
pub fn set_suspended(
    conn: &mut PgConnection,
    id: Uuid,
    suspended: bool,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        tenants::table
            .find(id)
            .filter(tenants::deleted_at.is_null()),
    )
    .set(tenants::suspended_at.eq(suspended.then(Utc::now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// What deleting a tenant removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Purged {
    pub users: usize,
    pub groups: usize,
    pub history: usize,
    pub commands: usize,
    pub dead_letters: usize,
    pub activity: usize,
}

/// Delete a tenant: its token is revoked at once and all its data purged,
/// in one transaction; a `tenant.deleted` event goes to each change topic
/// (through the outbox) so downstream services purge theirs.
pub fn delete(
    conn: &mut PgConnection,
    id: Uuid,
    change_topics: &[String],
) -> Result<Option<Purged>, StoreError> {
    use super::schema::{
        activity, dead_letter_actions, dead_letters, group_members, groups, processed_commands,
        user_history, users,
    };
    conn.transaction(|conn| {
        // Exclusively: a batch applying this tenant's commands holds the
        // row shared until it commits, so the purge below cannot
        // interleave with it (and a later batch sees the tenant deleted).
        let found: Option<Uuid> = tenants::table
            .find(id)
            .select(tenants::id)
            .for_update()
            .first(conn)
            .optional()?;
        if found.is_none() {
            return Ok(None);
        }
        let n = diesel::update(
            tenants::table
                .find(id)
                .filter(tenants::deleted_at.is_null()),
        )
        .set((
            tenants::deleted_at.eq(Some(Utc::now())),
            // A hash no token has: the old token stops working.
            tenants::token_hash.eq(format!("deleted:{id}")),
        ))
        .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        let group_ids = groups::table
            .filter(groups::tenant_id.eq(id))
            .select(groups::id);
        diesel::delete(group_members::table.filter(group_members::group_id.eq_any(group_ids)))
            .execute(conn)?;
        let purged = Purged {
            groups: diesel::delete(groups::table.filter(groups::tenant_id.eq(id))).execute(conn)?,
            users: diesel::delete(users::table.filter(users::tenant_id.eq(id))).execute(conn)?,
            history: diesel::delete(user_history::table.filter(user_history::tenant_id.eq(id)))
                .execute(conn)?,
            commands: diesel::delete(
                processed_commands::table.filter(processed_commands::tenant_id.eq(id)),
            )
            .execute(conn)?,
            dead_letters: {
                let letters = dead_letters::table
                    .filter(dead_letters::tenant_id.eq(id))
                    .select(dead_letters::id);
                diesel::delete(
                    dead_letter_actions::table
                        .filter(dead_letter_actions::dead_letter_id.eq_any(letters)),
                )
                .execute(conn)?;
                diesel::delete(dead_letters::table.filter(dead_letters::tenant_id.eq(id)))
                    .execute(conn)?
            },
            activity: diesel::delete(activity::table.filter(activity::tenant_id.eq(id)))
                .execute(conn)?,
        };
        let event = scimflow_core::event::TenantDeletedEvent::new(Uuid::now_v7(), id, Utc::now());
        let payload = serde_json::to_vec(&event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for topic in change_topics {
            super::outbox::enqueue_message(conn, topic, &id.to_string(), &payload, &[])?;
        }
        Ok(Some(purged))
    })
}

/// A connection that hears about every committed change to a tenant row
/// (migration 000009's trigger notifies `scimflow_tenants`), for caches of
/// tenants that must forget them at once.
pub struct TenantChanges {
    conn: PgConnection,
}

impl TenantChanges {
    /// Connect and start listening. Changes committed before this returns
    /// are not reported: a cache starts empty after it.
    ///
    /// Refuses while the trigger is missing (an ingress started before
    /// `scimflow migrate`): listening would then hear nothing, and a cache
    /// would keep a rotated token working.
    pub fn listen(database_url: &str) -> Result<Self, StoreError> {
        #[derive(QueryableByName)]
        struct Installed {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            installed: bool,
        }
        let mut conn = PgConnection::establish(database_url)?;
        diesel::sql_query("LISTEN scimflow_tenants").execute(&mut conn)?;
        let trigger: Installed = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger \
             WHERE tgname = 'tenants_notify_change' AND tgrelid = 'tenants'::regclass) AS installed",
        )
        .get_result(&mut conn)?;
        if !trigger.installed {
            return Err(StoreError::Migration(
                "the tenants_notify_change trigger is missing: run `scimflow migrate`".into(),
            ));
        }
        Ok(Self { conn })
    }

    /// How many changes were notified since the last call, without
    /// waiting. An error means the connection is gone and changes may have
    /// been missed.
    pub fn take(&mut self) -> Result<usize, StoreError> {
        let mut changes = 0;
        for note in self.conn.notifications_iter() {
            note?;
            changes += 1;
        }
        Ok(changes)
    }

    /// Prove the connection still works: a half-open one would otherwise
    /// report no changes forever.
    pub fn check(&mut self) -> Result<(), StoreError> {
        super::ping(&mut self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_literal_text_anywhere() {
        let cases = [
            ("", "%%"),
            ("acme", "%acme%"),
            ("50%_off", "%50\\%\\_off%"),
            ("a\\b", "%a\\\\b%"),
            ("Zürich", "%Zürich%"),
        ];
        for (text, want) in cases {
            assert_eq!(contains_pattern(text), want, "{text:?}");
        }
    }
}
