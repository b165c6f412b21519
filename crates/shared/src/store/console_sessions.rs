//! Support console sessions: made by presenting the admin token, looked up
//! by the hash of the id the browser's cookie holds, ended by signing out
//! or by expiring. The id itself is never stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::console_sessions;
use super::StoreError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = console_sessions)]
pub struct ConsoleSessionRow {
    /// SHA-256 (hex) of the id in the cookie.
    pub id_hash: String,
    pub actor: String,
    pub csrf_token: String,
    /// The fingerprint of the admin token that made it.
    pub admin_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Store a new session, and forget every expired one while at it: signing
/// in is rare, so this bounds the table without a sweeper.
pub fn insert(conn: &mut PgConnection, row: &ConsoleSessionRow) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::delete(console_sessions::table.filter(console_sessions::expires_at.le(Utc::now())))
            .execute(conn)?;
        diesel::insert_into(console_sessions::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

/// The session whose id hashes to `id_hash`, unless it has expired or
/// was made with another admin token than `admin_token`.
pub fn find_live(
    conn: &mut PgConnection,
    id_hash: &str,
    admin_token: &str,
    now: DateTime<Utc>,
) -> Result<Option<ConsoleSessionRow>, StoreError> {
    Ok(console_sessions::table
        .find(id_hash)
        .filter(console_sessions::expires_at.gt(now))
        .filter(console_sessions::admin_token.eq(admin_token))
        .select(ConsoleSessionRow::as_select())
        .first(conn)
        .optional()?)
}

/// End a session (signing out). Ending one that is gone is no error.
pub fn delete(conn: &mut PgConnection, id_hash: &str) -> Result<(), StoreError> {
    diesel::delete(console_sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}
