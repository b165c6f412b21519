//! /Groups (L6): the same write path as /Users; reads load members only
//! when they are asked for (`excludedAttributes=members` skips them).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;

use scimflow_shared::scim::bulk::{Method, ResourceKind};
use scimflow_shared::scim::group::{GroupView, MemberView};
use scimflow_shared::scim::query::{ListParams, Projection};
use scimflow_shared::store::groups::{self as store, GroupRow};
use scimflow_shared::store::{PgPooled, StoreError};
use scimflow_shared::ScimError;

use crate::auth::AuthedTenant;
use crate::response::{conditional, listing};
use crate::write::{command, parse_body, parse_id, submit};
use crate::{blocking, AppState, IngressError};

pub async fn create(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::Group, Method::Post, None, || parse_body(body))?;
    submit(&app, &tenant, &headers, command).await
}

pub async fn replace(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let command = command(ResourceKind::Group, Method::Put, Some(&id), || {
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
    let command = command(ResourceKind::Group, Method::Patch, Some(&id), || {
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
    let command = command(ResourceKind::Group, Method::Delete, Some(&id), || {
        Ok(Value::Null)
    })?;
    submit(&app, &tenant, &headers, command).await
}

fn render(
    conn: &mut PgPooled,
    rows: &[GroupRow],
    base: &str,
    projection: &Projection,
) -> Result<Vec<(GroupView, Value)>, StoreError> {
    let mut members: HashMap<Uuid, Vec<MemberView>> = HashMap::new();
    let with_members = projection.wants("members");
    if with_members && !rows.is_empty() {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        for (group, member) in store::members_of(conn, &ids)? {
            members.entry(group).or_default().push(member);
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let view = r.view(with_members.then(|| members.remove(&r.id).unwrap_or_default()));
            let body = projection.apply(view.render(base));
            (view, body)
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
    let group_id = parse_id("Group", &id)?;
    let projection = ListParams::from_query(&params)?.projection;
    let tenant_id = tenant.0.id;
    let base = app.config.scim_base_url(tenant_id);
    let found = blocking(&app, move |conn| {
        let Some(row) = store::find(conn, tenant_id, group_id, false)? else {
            return Ok(None);
        };
        Ok(render(conn, &[row], &base, &projection)?.pop())
    })
    .await?;
    let (view, body) =
        found.ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?;
    Ok(conditional(&headers, &view.etag(), &body))
}

/// The groups matching `params`: (total, rendered page).
pub async fn find(
    app: &AppState,
    tenant_id: Uuid,
    params: ListParams,
) -> Result<(i64, Vec<Value>), IngressError> {
    let base = app.config.scim_base_url(tenant_id);
    let (total, resources) = blocking(app, move |conn| {
        Ok(match store::list(conn, tenant_id, &params)? {
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
