//! /Users: writes are validated here, then published and answered with the
//! processor's outcome; reads come from PostgreSQL.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;

use scimflow_shared::rules::identity::identity_email;
use scimflow_shared::rules::roles::parse_role_values;
use scimflow_shared::scim::bulk::{Method, ResourceKind};
use scimflow_shared::scim::query::{ListParams, Projection};
use scimflow_shared::scim::user::{normalize_user, UserView};
use scimflow_shared::store::groups as group_store;
use scimflow_shared::store::users::{self, UserRow};
use scimflow_shared::store::{PgPooled, StoreError};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::{conditional, listing};
use crate::write::{command, parse_body, parse_id, submit};
use crate::{blocking, AppState, IngressError};

/// Validate a POST/PUT body as far as it can be without the stored state,
/// so a bad request is refused before it reaches Kafka.
pub(crate) fn validate_user_body(body: &Value) -> Result<(), IngressError> {
    let input = normalize_user(body)?;
    identity_email(&input.attrs)?;
    if let Some(roles) = &input.roles {
        parse_role_values(roles)?;
    }
    Ok(())
}

pub async fn create(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::User, Method::Post, None, || parse_body(body))?;
    submit(&app, &tenant, &headers, command).await
}

pub async fn replace(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::User, Method::Put, Some(&id), || {
        parse_body(body)
    })?;
    submit(&app, &tenant, &headers, command).await
}

pub async fn patch(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::User, Method::Patch, Some(&id), || {
        parse_body(body)
    })?;
    submit(&app, &tenant, &headers, command).await
}

pub async fn delete(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::User, Method::Delete, Some(&id), || {
        Ok(Value::Null)
    })?;
    submit(&app, &tenant, &headers, command).await
}

/// Render rows, with their groups when the projection wants them.
fn render(
    conn: &mut PgPooled,
    rows: &[UserRow],
    base: &str,
    projection: &Projection,
) -> Result<Vec<(UserView, Value)>, StoreError> {
    let mut views: Vec<UserView> = rows.iter().map(UserRow::view).collect::<Result<_, _>>()?;
    if projection.wants("groups") && !views.is_empty() {
        let ids: Vec<Uuid> = views.iter().map(|v| v.id).collect();
        for (user, group, name) in group_store::groups_of_users(conn, &ids)? {
            if let Some(v) = views.iter_mut().find(|v| v.id == user) {
                v.groups.push((group, name));
            }
        }
    }
    Ok(views
        .into_iter()
        .map(|v| {
            let body = projection.apply(v.render(base));
            (v, body)
        })
        .collect())
}

pub async fn get_one(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, IngressError> {
    let user_id = parse_id("User", &id)?;
    let projection = ListParams::from_query(&params)?.projection;
    let tenant_id = tenant.0.id;
    let base = app.config.scim_base_url(tenant_id);
    let found = blocking(&app, move |conn| {
        let Some(row) = users::find_live(conn, tenant_id, user_id, false)? else {
            return Ok(None);
        };
        Ok(render(conn, &[row], &base, &projection)?.pop())
    })
    .await?;
    let (view, body) = found.ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    Ok(conditional(&headers, &view.etag(), &body))
}

/// The users matching `params`: (total, rendered page).
pub async fn find(
    app: &AppState,
    tenant_id: Uuid,
    params: ListParams,
) -> Result<(i64, Vec<Value>), IngressError> {
    let base = app.config.scim_base_url(tenant_id);
    let (total, resources) = blocking(app, move |conn| {
        Ok(match users::list(conn, tenant_id, &params)? {
            Ok((total, rows)) => Ok((total, render(conn, &rows, &base, &params.projection)?)),
            Err(e) => Err(e),
        })
    })
    .await??;
    Ok((total, resources.into_iter().map(|(_, body)| body).collect()))
}

pub async fn list(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, IngressError> {
    listing(ListParams::from_query(&params)?, |p| {
        find(&app, tenant.0.id, p)
    })
    .await
}

pub async fn post_search(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let params = ListParams::from_search_body(&parse_body(body)?)?;
    listing(params, |p| find(&app, tenant.0.id, p)).await
}
