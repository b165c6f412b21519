//! `/admin/v1`: the service functions over HTTP, JSON in and out, every
//! error an RFC 9457 problem (`application/problem+json`). Every route but
//! the OpenAPI document needs the admin bearer token. Bad input changes
//! nothing: it is refused before a service function runs, or by the
//! function before it writes.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use scimflow_shared::config::{AdminTokenHash, Config};
use scimflow_shared::store::{PgPool, StoreError};

use crate::service::dead_letters::{
    self, DeadLetterDetail, DeadLetterView, ReplayWhat, ResolutionView,
};
use crate::service::tenants::{
    self, ActivityEntry, Created, NewTenant, ProvisioningStatus, TenantView,
};
use crate::service::users::{self, UserRecord, UserRef};
use crate::service::{Page, ServiceError};

pub const PROBLEM_JSON: &str = "application/problem+json";
/// The largest request body: every request is a few small fields.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Who admin API actions are recorded as, unless `X-Scimflow-Actor` says.
const DEFAULT_ACTOR: &str = "admin-api";

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub token: AdminTokenHash,
}

/// An RFC 9457 problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:scimflow:problem:<kind>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    #[error("no such endpoint")]
    NoRoute,
    #[error("this method is not allowed here")]
    Method,
    #[error("{0}")]
    Unavailable(&'static str),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = match &self {
            ApiError::Service(ServiceError::NotFound(_)) | ApiError::NoRoute => {
                (StatusCode::NOT_FOUND, "not-found", "Not found")
            }
            ApiError::Service(ServiceError::Invalid(_)) | ApiError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            ApiError::Service(ServiceError::Conflict(_)) => {
                (StatusCode::CONFLICT, "conflict", "Conflict")
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            ApiError::Method => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Service(ServiceError::Store(_) | ServiceError::Interrupted)
            | ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
        };
        let detail = match &self {
            ApiError::Service(ServiceError::Store(e)) => {
                tracing::warn!(error = %e, "database error while serving an admin request");
                "the database did not answer; retry later".to_string()
            }
            other => other.to_string(),
        };
        let body = Problem {
            kind: format!("urn:scimflow:problem:{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// A JSON body; any way it is wrong is a 400 problem.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Body(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Query parameters; any way they are wrong is a 400 problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Path parameters; a malformed id is a 400 problem.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

async fn db<T: Send + 'static>(
    app: &ApiState,
    f: impl FnOnce(&mut diesel::PgConnection, &Config) -> crate::service::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::service::on_pool(&app.pool, &app.config, f).await?)
}

/// The bearer token, compared by hash in constant time. Never logged.
async fn authenticate(State(app): State<ApiState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| t.len() <= 512);
    match token {
        Some(t) if app.token.verify(t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Who an action is recorded as: `X-Scimflow-Actor` (a visible name of
/// at most 100 characters, `service::actor_name`), else `admin-api`.
fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-scimflow-actor")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::service::actor_name)
        .map(|a| format!("admin-api:{a}"))
        .unwrap_or_else(|| DEFAULT_ACTOR.into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Entries to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Entries per page (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    pub total: i64,
    pub offset: i64,
    pub items: Vec<TenantView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturesRequest {
    /// Plan features: `voice`, `listener`.
    #[schema(max_items = 16)]
    pub features: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeaturesView {
    pub tenant_id: Uuid,
    pub features: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub tenant_id: Uuid,
    /// The new bearer token, shown this once; the old one no longer works.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResumedView {
    pub tenant: TenantView,
    /// Dead letters held while suspended, now replayed in order.
    pub replayed: Vec<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Must be true: deleting purges every row of the tenant.
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgedView {
    pub users: usize,
    pub groups: usize,
    pub history: usize,
    pub commands: usize,
    pub dead_letters: usize,
    pub activity: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    pub tenant_id: Uuid,
    pub purged: PurgedView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// A status (`409`) or a class (`4xx`).
    #[param(max_length = 3)]
    pub status: Option<String>,
    /// Only requests about this user.
    pub user_id: Option<Uuid>,
    /// Only the entries of this IdP request id.
    #[param(max_length = 128)]
    pub request_id: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Entries per page (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first.
    pub items: Vec<ActivityEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only this tenant's letters.
    pub tenant_id: Option<Uuid>,
    /// Every letter, not only open and replaying ones.
    pub all: Option<bool>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayOpenRequest {
    /// Only this tenant's open letters.
    pub tenant_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses(
        (status = 201, description = "Created; the token is shown this once", body = Created),
        (status = 200, description = "A live tenant already has this external_ref", body = Created),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_tenant(
    State(app): State<ApiState>,
    Body(new): Body<NewTenant>,
) -> Result<Response, ApiError> {
    let created = db(&app, move |conn, config| tenants::create(conn, config, new)).await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(created)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants", params(PageQuery),
    responses(
        (status = 200, body = TenantPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_tenants(
    State(app): State<ApiState>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<TenantPage>, ApiError> {
    let page = Page::new(q.offset, q.limit)?;
    let (total, items) = db(&app, move |conn, config| tenants::list(conn, config, page)).await?;
    Ok(axum::Json(TenantPage {
        total,
        offset: page.offset,
        items,
    }))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, body = TenantView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_tenant(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TenantView>, ApiError> {
    Ok(axum::Json(
        db(&app, move |conn, config| tenants::get(conn, config, id)).await?,
    ))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant_id}/features", tag = "tenants",
    params(("tenant_id" = Uuid, Path)), request_body = FeaturesRequest,
    responses(
        (status = 200, body = FeaturesView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_features(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
    Body(req): Body<FeaturesRequest>,
) -> Result<axum::Json<FeaturesView>, ApiError> {
    let features = db(&app, move |conn, _| {
        tenants::set_features(conn, id, &req.features)
    })
    .await?;
    Ok(axum::Json(FeaturesView {
        tenant_id: id,
        features,
    }))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant_id}/token", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The new token, shown this once", body = TokenView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_token(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TokenView>, ApiError> {
    let token = db(&app, move |conn, _| tenants::rotate_token(conn, id)).await?;
    Ok(axum::Json(TokenView {
        tenant_id: id,
        token,
    }))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant_id}/suspend", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Suspended: its token is refused, its commands held", body = TenantView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn suspend(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TenantView>, ApiError> {
    Ok(axum::Json(
        db(&app, move |conn, config| {
            tenants::suspend(conn, id)?;
            tenants::get(conn, config, id)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant_id}/resume", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, body = ResumedView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn resume(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<axum::Json<ResumedView>, ApiError> {
    let who = actor(&headers);
    Ok(axum::Json(
        db(&app, move |conn, config| {
            let replayed = tenants::resume(conn, id, &who)?;
            Ok(ResumedView {
                tenant: tenants::get(conn, config, id)?,
                replayed,
            })
        })
        .await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)), request_body = DeleteRequest,
    responses(
        (status = 200, description = "Deleted: token revoked, data purged", body = DeletedView),
        (status = 400, description = "Not confirmed, or a bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_tenant(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<axum::Json<DeletedView>, ApiError> {
    // No body at all is an unconfirmed delete (400), like `false`.
    let confirmed = if body.is_empty() {
        false
    } else {
        serde_json::from_slice::<DeleteRequest>(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
            .confirm
    };
    let p = db(&app, move |conn, config| {
        tenants::delete(conn, config, id, confirmed)
    })
    .await?;
    Ok(axum::Json(DeletedView {
        tenant_id: id,
        purged: PurgedView {
            users: p.users,
            groups: p.groups,
            history: p.history,
            commands: p.commands,
            dead_letters: p.dead_letters,
            activity: p.activity,
        },
    }))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant_id}/status", tag = "provisioning",
    params(("tenant_id" = Uuid, Path)),
    responses(
        (status = 200, body = ProvisioningStatus),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn status(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ProvisioningStatus>, ApiError> {
    Ok(axum::Json(
        db(&app, move |conn, config| tenants::status(conn, config, id)).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant_id}/activity", tag = "provisioning",
    params(("tenant_id" = Uuid, Path), ActivityQuery),
    responses(
        (status = 200, body = ActivityPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn activity(
    State(app): State<ApiState>,
    Path(id): Path<Uuid>,
    Query(q): Query<ActivityQuery>,
) -> Result<axum::Json<ActivityPage>, ApiError> {
    let limit = q.limit.unwrap_or(crate::service::DEFAULT_PAGE);
    let items = db(&app, move |conn, config| {
        tenants::activity(
            conn,
            config,
            id,
            tenants::ActivityFilter {
                status: q.status,
                user_id: q.user_id,
                request_id: q.request_id,
                since: q.since,
                until: q.until,
                before: q.before,
                limit: q.limit,
            },
        )
    })
    .await?;
    let next_before = if items.len() as i64 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(axum::Json(ActivityPage { items, next_before }))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant_id}/users/{user}", tag = "provisioning",
    params(("tenant_id" = Uuid, Path), ("user" = String, Path, description = "The user's id, its identity email, or its userName (a live user)")),
    responses(
        (status = 200, body = UserRecord),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn user(
    State(app): State<ApiState>,
    Path((tenant, who)): Path<(Uuid, String)>,
) -> Result<axum::Json<UserRecord>, ApiError> {
    let who = UserRef::parse(&who)?;
    Ok(axum::Json(
        db(&app, move |conn, config| {
            users::show(conn, config, tenant, &who, None)
        })
        .await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/dead-letters", tag = "dead letters", params(DeadLetterQuery),
    responses(
        (status = 200, body = DeadLetterPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_dead_letters(
    State(app): State<ApiState>,
    Query(q): Query<DeadLetterQuery>,
) -> Result<axum::Json<DeadLetterPage>, ApiError> {
    let page = Page::new(q.offset, q.limit)?;
    let all = q.all.unwrap_or(false);
    let items = db(&app, move |conn, _| {
        dead_letters::list(conn, q.tenant_id, all, page)
    })
    .await?;
    Ok(axum::Json(DeadLetterPage { items }))
}

#[utoipa::path(get, path = "/admin/v1/dead-letters/{id}", tag = "dead letters",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = DeadLetterDetail),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn show_dead_letter(
    State(app): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<DeadLetterDetail>, ApiError> {
    Ok(axum::Json(
        db(&app, move |conn, _| dead_letters::show(conn, id)).await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/dead-letters/{id}/replay", tag = "dead letters",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "What was replayed, and what was skipped and why", body = ResolutionView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay(
    State(app): State<ApiState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<axum::Json<ResolutionView>, ApiError> {
    let who = actor(&headers);
    Ok(axum::Json(
        db(&app, move |conn, _| {
            dead_letters::replay(conn, ReplayWhat::Ids(vec![id]), &who)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/dead-letters/replay", tag = "dead letters",
    request_body = ReplayOpenRequest,
    responses(
        (status = 200, description = "Every open letter (of a tenant) replayed, in order", body = ResolutionView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_open(
    State(app): State<ApiState>,
    headers: HeaderMap,
    Body(req): Body<ReplayOpenRequest>,
) -> Result<axum::Json<ResolutionView>, ApiError> {
    let who = actor(&headers);
    Ok(axum::Json(
        db(&app, move |conn, _| {
            dead_letters::replay(
                conn,
                ReplayWhat::AllOpen {
                    tenant: req.tenant_id,
                },
                &who,
            )
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/dead-letters/{id}/discard", tag = "dead letters",
    params(("id" = i64, Path)), request_body = DiscardRequest,
    responses(
        (status = 200, body = ResolutionView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn discard(
    State(app): State<ApiState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Body(req): Body<DiscardRequest>,
) -> Result<axum::Json<ResolutionView>, ApiError> {
    let who = actor(&headers);
    Ok(axum::Json(
        db(&app, move |conn, _| {
            dead_letters::discard(conn, id, &req.reason, &who)
        })
        .await?,
    ))
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scimflow admin API",
        description = "Tenants (SCIM connections), their provisioning status and activity, users' records, and dead letters. Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(
        create_tenant, list_tenants, get_tenant, set_features, rotate_token, suspend, resume,
        delete_tenant, status, activity, user, list_dead_letters, show_dead_letter, replay,
        replay_open, discard
    ),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of `/admin/v1`, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn openapi_json() -> Response {
    match openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => {
            ApiError::Unavailable("the OpenAPI document could not be rendered").into_response()
        }
    }
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::Method
}

pub fn router(state: ApiState) -> Router {
    let authed = Router::new()
        .route("/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/tenants/{tenant_id}",
            get(get_tenant).delete(delete_tenant),
        )
        .route("/tenants/{tenant_id}/features", put(set_features))
        .route("/tenants/{tenant_id}/token", post(rotate_token))
        .route("/tenants/{tenant_id}/suspend", post(suspend))
        .route("/tenants/{tenant_id}/resume", post(resume))
        .route("/tenants/{tenant_id}/status", get(status))
        .route("/tenants/{tenant_id}/activity", get(activity))
        .route("/tenants/{tenant_id}/users/{user}", get(user))
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/replay", post(replay_open))
        .route("/dead-letters/{id}", get(show_dead_letter))
        .route("/dead-letters/{id}/replay", post(replay))
        .route("/dead-letters/{id}/discard", post(discard))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    Router::new()
        .route("/admin/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(|| async { "ok" }))
        .nest("/admin/v1", authed)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serve `/admin/v1`, and the pages `pages` makes (the support console),
/// on `SCIMFLOW_ADMIN_API_ADDR` until `shutdown`.
pub async fn run(
    config: Config,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    pages: impl FnOnce(ApiState) -> Router,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let token = config
        .admin_token
        .clone()
        .context("the admin API needs SCIMFLOW_ADMIN_TOKEN or SCIMFLOW_ADMIN_TOKEN_SHA256")?;
    let pool = scimflow_shared::store::connect_pool(
        &config.database_url,
        config.db_pool_size,
        config.db_statement_timeout,
    )
    .context("connecting to PostgreSQL")?;
    let addr = config.admin_api_addr;
    let state = ApiState {
        pool,
        config: Arc::new(config),
        token,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin API listener {addr}"))?;
    tracing::info!(%addr, "admin API listening");
    let app = router(state.clone()).merge(pages(state));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving the admin API")?;
    tracing::info!("admin API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(&openapi().to_json().expect("json")).expect("parse");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/admin/v1/tenants",
            "/admin/v1/tenants/{tenant_id}",
            "/admin/v1/tenants/{tenant_id}/features",
            "/admin/v1/tenants/{tenant_id}/token",
            "/admin/v1/tenants/{tenant_id}/suspend",
            "/admin/v1/tenants/{tenant_id}/resume",
            "/admin/v1/tenants/{tenant_id}/status",
            "/admin/v1/tenants/{tenant_id}/activity",
            "/admin/v1/tenants/{tenant_id}/users/{user}",
            "/admin/v1/dead-letters",
            "/admin/v1/dead-letters/replay",
            "/admin/v1/dead-letters/{id}",
            "/admin/v1/dead-letters/{id}/replay",
            "/admin/v1/dead-letters/{id}/discard",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
    }

    #[test]
    fn errors_are_problems_with_their_status() {
        let cases = [
            (ApiError::Unauthorized, 401),
            (ApiError::NoRoute, 404),
            (ServiceError::NotFound("no tenant".into()).into(), 404),
            (ServiceError::Invalid("bad".into()).into(), 400),
            (ServiceError::Conflict("taken".into()).into(), 409),
            (ApiError::BadRequest("bad json".into()), 400),
            (ApiError::Method, 405),
            (ApiError::Unavailable("down"), 503),
        ];
        for (err, status) in cases {
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(
                resp.headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.as_bytes()),
                Some(PROBLEM_JSON.as_bytes())
            );
        }
    }

    #[test]
    fn the_actor_is_bounded_and_named_as_the_api() {
        let mut h = HeaderMap::new();
        assert_eq!(actor(&h), "admin-api");
        h.insert("x-scimflow-actor", HeaderValue::from_static("support:ada"));
        assert_eq!(actor(&h), "admin-api:support:ada");
        h.insert(
            "x-scimflow-actor",
            HeaderValue::from_str(&"x".repeat(101)).expect("header"),
        );
        assert_eq!(actor(&h), "admin-api");
    }
}
