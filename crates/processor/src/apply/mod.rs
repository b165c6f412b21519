//! Applying one command to the database: the product rules (from
//! `scimflow_shared::rules` and `scim`) meet the stored state here. Runs
//! inside the batch transaction, in its own savepoint (see `batch.rs` for
//! the exception); writes the effect,
//! the history and the change event, and returns the outcome for the IdP.

mod creates;
mod groups;
mod users;

pub use creates::BatchCreates;

use std::cell::RefCell;

use diesel::PgConnection;
use uuid::Uuid;

use scimflow_bus::Topics;
use scimflow_shared::command::{Command, CommandEnvelope, Outcome};
use scimflow_shared::scim::etag::list_matches;
use scimflow_shared::scim::user::etag;
use scimflow_shared::store::commands::PendingWrites;
use scimflow_shared::store::tenants::TenantRow;
use scimflow_shared::store::StoreError;
use scimflow_shared::ScimError;

/// Why a command did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A rule or the request refused it: a final answer for the IdP.
    #[error(transparent)]
    Rejected(#[from] ScimError),
    /// The database failed: retry or dead-letter, never answer with it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ApplyError {
    fn from(e: diesel::result::Error) -> Self {
        ApplyError::Store(StoreError::Db(e))
    }
}

impl From<scimflow_shared::rules::roles::RoleViolation> for ApplyError {
    fn from(v: scimflow_shared::rules::roles::RoleViolation) -> Self {
        ApplyError::Rejected(v.into())
    }
}

pub struct Context<'a> {
    pub tenant: &'a TenantRow,
    pub envelope: &'a CommandEnvelope,
    pub topics: &'a Topics,
    /// History and change events, written by the batch before it commits.
    pub pending: &'a RefCell<PendingWrites>,
    /// The batch's user creates, prepared together.
    pub creates: &'a RefCell<BatchCreates>,
    /// The trace headers its change events carry (`trace_context`).
    pub trace: &'a [(&'static str, String)],
}

pub fn apply(conn: &mut PgConnection, ctx: &Context<'_>) -> Result<Outcome, ApplyError> {
    match &ctx.envelope.command {
        Command::CreateUser { user_id, body } => users::create(conn, ctx, *user_id, body),
        Command::ReplaceUser { user_id, body } => users::replace(conn, ctx, *user_id, body),
        Command::PatchUser { user_id, body } => users::patch(conn, ctx, *user_id, body),
        Command::DeleteUser { user_id } => users::delete(conn, ctx, *user_id),
        Command::CreateGroup { group_id, body } => groups::create(conn, ctx, *group_id, body),
        Command::ReplaceGroup { group_id, body } => groups::replace(conn, ctx, *group_id, body),
        Command::PatchGroup { group_id, body } => groups::patch(conn, ctx, *group_id, body),
        Command::DeleteGroup { group_id } => groups::delete(conn, ctx, *group_id),
    }
}

/// `If-Match` (RFC 7644 §3.14): 412 unless it names the current version.
fn check_if_match(ctx: &Context<'_>, kind: &str, id: Uuid, version: i64) -> Result<(), ApplyError> {
    let Some(expected) = &ctx.envelope.if_match else {
        return Ok(());
    };
    let current = etag(version);
    if list_matches(expected, &current) {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(format!(
            "{kind} {id} has changed: its version is {current}"
        ))
        .into())
    }
}

fn no_content(ctx: &Context<'_>) -> Outcome {
    Outcome::no_content(ctx.envelope.command_id)
}

/// Queue a change event (P5) for this batch's transaction, keyed by
/// resource.
fn emit_event(
    ctx: &Context<'_>,
    topic: &str,
    tenant_id: Uuid,
    resource_id: Uuid,
    event: &impl serde::Serialize,
) -> Result<(), ApplyError> {
    let payload = serde_json::to_vec(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    ctx.pending.borrow_mut().message(
        topic,
        &format!("{tenant_id}/{resource_id}"),
        payload,
        ctx.trace,
    );
    Ok(())
}
