//! Tenants (T1–T4).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

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
}

impl TenantRow {
    pub fn plan(&self) -> PlanFeatures {
        PlanFeatures::from_names(&self.features)
    }
}

pub fn insert(conn: &mut PgConnection, row: &TenantRow) -> Result<(), StoreError> {
    diesel::insert_into(tenants::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn list(conn: &mut PgConnection) -> Result<Vec<TenantRow>, StoreError> {
    Ok(tenants::table
        .order(tenants::created_at)
        .select(TenantRow::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<TenantRow>, StoreError> {
    Ok(tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?)
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
