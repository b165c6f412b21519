//! `Prefer: respond-async` (RFC 7240): a write answered 202 once the broker
//! has it, and the status monitor that later gives its outcome.
//!
//! The monitor is `GET /scim/v2/{tenant}/Status/{command_id}`. It answers
//! with the write's own response (status, body, `ETag`, `Location`) once
//! the processor has committed it, from the same dedup record that makes
//! redelivery safe (P3); 500 naming the dead letter if it is held for (or
//! was discarded by) an operator; 202 while it is queued. Command ids are
//! UUIDv7, so an id the ingress could not have minted in the last day is
//! simply not found.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use scimflow_shared::store::{commands, dead_letters};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::{async_applied, from_outcome, queued};
use crate::write::parse_id;
use crate::{blocking, AppState, IngressError};

pub const ACCEPTED_SCHEMA: &str = "urn:scimflow:api:messages:1.0:Accepted";

/// How long an unknown command id is reported as queued rather than not
/// found: far longer than any backlog, far shorter than forever.
const PENDING_FOR: chrono::Duration = chrono::Duration::hours(24);

pub fn status_url(app: &AppState, tenant_id: Uuid, command_id: Uuid) -> String {
    format!(
        "{}/Status/{command_id}",
        app.config.scim_base_url(tenant_id)
    )
}

/// 202 Accepted for a queued command, pointing at its status monitor.
pub fn accepted(app: &AppState, tenant_id: Uuid, command_id: Uuid) -> Response {
    async_applied(pending(app, tenant_id, command_id))
}

fn pending(app: &AppState, tenant_id: Uuid, command_id: Uuid) -> Response {
    let url = status_url(app, tenant_id, command_id);
    queued(
        &json!({
            "schemas": [ACCEPTED_SCHEMA],
            "commandId": command_id,
            "status": "pending",
            "location": url,
        }),
        &url,
    )
}

pub async fn get_status(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, IngressError> {
    let command_id = parse_id("Request", &id)?;
    let tenant_id = tenant.0.id;
    let (outcome, dead_letter) = blocking(&app, move |conn| {
        if let Some(o) = commands::find_tenant_outcome(conn, tenant_id, command_id)? {
            return Ok((Some(o), None));
        }
        Ok((
            None,
            dead_letters::find_by_command(conn, tenant_id, command_id)?,
        ))
    })
    .await?;
    if let Some(outcome) = outcome {
        return Ok(from_outcome(&outcome));
    }
    if let Some(letter) = dead_letter {
        let discarded = letter.status == dead_letters::DISCARDED;
        return Err(ScimError::dead_lettered(letter.id, discarded).into());
    }
    if minted_recently(command_id) {
        return Ok(pending(&app, tenant_id, command_id));
    }
    Err(ScimError::not_found(format!("Request {id} not found")).into())
}

/// Whether `id` is a UUIDv7 from the last `PENDING_FOR` (or a little
/// ahead, for clock skew between ingresses).
fn minted_recently(id: Uuid) -> bool {
    let Some(ts) = id.get_timestamp() else {
        return false;
    };
    let (secs, nanos) = ts.to_unix();
    let Some(minted) = chrono::DateTime::from_timestamp(secs as i64, nanos) else {
        return false;
    };
    let now = chrono::Utc::now();
    minted > now - PENDING_FOR && minted < now + chrono::Duration::minutes(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recent_v7_ids_count_as_pending() {
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (chrono::Utc::now() - chrono::Duration::days(2)).timestamp() as u64,
            0,
        ));
        let cases = [
            (Uuid::now_v7(), true),
            (Uuid::new_v4(), false),
            (Uuid::nil(), false),
            (old, false),
        ];
        for (id, expected) in cases {
            assert_eq!(minted_recently(id), expected, "{id}");
        }
    }
}
