//! The one place where failures become HTTP responses. Every response
//! body here is a SCIM Error with `application/scim+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use scimflow_shared::store::StoreError;
use scimflow_shared::ScimError;

use crate::response::scim_json;

/// Seconds an IdP should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(&'static str),
    /// The tenant is over its rate; retry after this long.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
}

impl From<scimflow_shared::rules::roles::RoleViolation> for IngressError {
    fn from(v: scimflow_shared::rules::roles::RoleViolation) -> Self {
        IngressError::Scim(v.into())
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let (err, retry) = match self {
            IngressError::RateLimited(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let err = ScimError::new(
                    429,
                    None,
                    format!("too many requests for this tenant; retry after {secs} s"),
                );
                let mut resp = scim_json(StatusCode::TOO_MANY_REQUESTS, &err.to_body());
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return resp;
            }
            IngressError::Scim(e) => (e, false),
            IngressError::Store(e) => {
                tracing::warn!(error = %e, "database error while serving a request");
                (
                    ScimError::unavailable("the service is temporarily unavailable; retry later"),
                    true,
                )
            }
            IngressError::Unavailable(what) => {
                (ScimError::unavailable(format!("{what}; retry later")), true)
            }
        };
        let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = scim_json(status, &err.to_body());
        if retry || err.status == 503 || err.status == 429 {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if err.status == 401 {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub async fn not_found() -> IngressError {
    IngressError::Scim(ScimError::not_found("no such endpoint"))
}
