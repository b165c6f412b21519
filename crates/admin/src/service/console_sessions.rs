//! Support console sessions: started by presenting the admin token (the
//! caller checked it), found by the id the browser holds, ended by signing
//! out, by expiring, or by the admin token being replaced. Only the id's
//! hash is stored.

use chrono::{DateTime, Utc};
use diesel::PgConnection;

use scimflow_shared::config::AdminTokenHash;
use scimflow_shared::store::console_sessions::{self, ConsoleSessionRow};
use scimflow_shared::token;

use super::{actor_name, Result, ServiceError};

/// How long a session lasts, however busy.
pub const SESSION_HOURS: i64 = 8;

/// A session just started: the id for the browser's cookie, shown this
/// once, and the token its forms carry.
pub struct Started {
    pub id: String,
    pub csrf: String,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The name given at sign-in.
    pub actor: String,
    pub csrf: String,
}

/// Start a session for `actor` (a visible name: `actor_name`), made with
/// the admin token `admin_token`.
pub fn start(
    conn: &mut PgConnection,
    admin_token: &AdminTokenHash,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Started> {
    let actor = actor_name(actor).ok_or_else(|| {
        ServiceError::Invalid(
            "give your name (at most 100 visible characters): it is recorded with every action"
                .into(),
        )
    })?;
    let started = Started {
        id: token::generate(),
        csrf: token::generate(),
    };
    console_sessions::insert(
        conn,
        &ConsoleSessionRow {
            id_hash: token::hash(&started.id),
            actor,
            csrf_token: started.csrf.clone(),
            admin_token: admin_token.fingerprint(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(SESSION_HOURS),
        },
    )?;
    Ok(started)
}

/// The live session whose id is `id`, made with the current admin token.
pub fn find(
    conn: &mut PgConnection,
    admin_token: &AdminTokenHash,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>> {
    Ok(
        console_sessions::find_live(conn, &token::hash(id), &admin_token.fingerprint(), now)?.map(
            |row| Session {
                actor: row.actor,
                csrf: row.csrf_token,
            },
        ),
    )
}

/// End the session whose id is `id` (signing out); ending one that is gone
/// is no error.
pub fn end(conn: &mut PgConnection, id: &str) -> Result<()> {
    Ok(console_sessions::delete(conn, &token::hash(id))?)
}
