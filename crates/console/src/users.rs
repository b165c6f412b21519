//! A user as support sees them: found by email, userName or id; their
//! record, roles, groups, and the history of their changes, each linked
//! to the IdP request that made it in the activity log.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use uuid::Uuid;

use scimflow_admin::service::users::{self, UserRef};
use scimflow_admin::service::{on_pool, tenants};

use crate::fields::Fields;
use crate::page::{link, render, tenant_id, when, ConsoleError, Frame, PageResult};
use crate::session::Session;
use crate::ConsoleState;

/// The most recent changes a user's page lists.
const MAX_HISTORY: i64 = 200;

pub async fn find(
    State(state): State<ConsoleState>,
    _session: Session,
    Path(tenant): Path<String>,
    query: Fields,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let named = query
        .text("q")
        .ok_or_else(|| {
            ConsoleError::BadRequest("name a user: an email, a userName or an id".into())
        })?
        .to_string();
    let user = on_pool(&state.pool, &state.config, move |conn, config| {
        tenants::get(conn, config, id)?;
        users::find(conn, id, &UserRef::parse(&named)?)
    })
    .await?;
    Ok(Redirect::to(&format!("/console/tenants/{id}/users/{user}")).into_response())
}

struct Change {
    time: String,
    change: String,
    before: String,
    after: String,
    request_id: String,
    request_link: Option<String>,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    frame: Frame,
    tenant_id: Uuid,
    tenant_name: String,
    user_id: Uuid,
    user_name: String,
    state: &'static str,
    primary: String,
    permission: String,
    scim_managed: bool,
    groups: Vec<String>,
    record: String,
    history: Vec<Change>,
}

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path((tenant, user)): Path<(String, String)>,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let user_id = Uuid::parse_str(&user).map_err(|_| ConsoleError::NotFound)?;
    let (view, record) = on_pool(&state.pool, &state.config, move |conn, config| {
        Ok((
            tenants::get(conn, config, id)?,
            users::show(conn, config, id, &UserRef::Id(user_id), Some(MAX_HISTORY))?,
        ))
    })
    .await?;
    let user_name = record.user["userName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let state_name = if record.deleted_at.is_some() {
        "deleted"
    } else if record.user["active"].as_bool() == Some(false) {
        "inactive"
    } else {
        "active"
    };
    let activity = format!("/console/tenants/{id}/activity");
    let history = record
        .history
        .iter()
        .rev()
        .map(|h| Change {
            time: when(&h.occurred_at),
            change: h.change.clone(),
            before: h.before.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            after: h.after.to_string(),
            request_id: h.request_id.clone().unwrap_or_default(),
            request_link: h
                .request_id
                .as_deref()
                .map(|r| link(&activity, &[("request", r)])),
        })
        .collect();
    render(
        StatusCode::OK,
        &UserPage {
            frame: Frame::of(&session),
            tenant_id: id,
            tenant_name: view.name,
            user_id,
            user_name,
            state: state_name,
            primary: record.roles.primary.clone(),
            permission: record.roles.permission.clone(),
            scim_managed: record.scim_managed,
            groups: record
                .groups
                .iter()
                .map(|g| g.display_name.clone())
                .collect(),
            record: serde_json::to_string_pretty(&record.user).unwrap_or_default(),
            history,
        },
    )
}
