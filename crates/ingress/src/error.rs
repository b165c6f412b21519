//! The one place where failures become HTTP responses. Every response
//! body here is a SCIM Error with `application/scim+json`.
//!
//! What an IdP is told to retry is 503 or 429 with `Retry-After`: both Okta
//! and Entra ID back off and retry on those. A request that ran out of time
//! is a 503 too rather than a 504: the ingress is the server the IdP
//! talks to, not a gateway, and a write that timed out may still apply, so
//! the answer is "not known yet, retry", exactly as at the reply deadline.

use std::time::Duration;

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
    RateLimited(Duration),
    /// This client address failed to authenticate too often; retry after
    /// this long.
    #[error("too many failed authentications")]
    AuthThrottled(Duration),
    /// The ingress serves this many requests already (`SCIMFLOW_MAX_IN_FLIGHT`).
    #[error("at capacity")]
    Overloaded(usize),
    /// The request took longer than `SCIMFLOW_REQUEST_TIMEOUT_MS`.
    #[error("request timeout")]
    TimedOut(Duration),
}

impl From<scimflow_shared::rules::roles::RoleViolation> for IngressError {
    fn from(v: scimflow_shared::rules::roles::RoleViolation) -> Self {
        IngressError::Scim(v.into())
    }
}

/// Whole seconds to wait, at least one.
fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let (err, retry) = match self {
            IngressError::RateLimited(wait) => {
                let secs = retry_secs(wait);
                let err = ScimError::new(
                    429,
                    None,
                    format!("too many requests for this tenant; retry after {secs} s"),
                );
                return too_many(err, secs);
            }
            IngressError::AuthThrottled(wait) => {
                let secs = retry_secs(wait);
                let err = ScimError::new(
                    429,
                    None,
                    format!(
                        "too many failed authentications from this address; retry after {secs} s"
                    ),
                );
                return too_many(err, secs);
            }
            IngressError::Overloaded(limit) => (
                ScimError::unavailable(format!(
                    "the service is handling its limit of {limit} requests at once; retry later"
                )),
                true,
            ),
            IngressError::TimedOut(after) => (
                ScimError::unavailable(format!(
                    "the request did not finish within {} ms; a write may still be applied, retry later",
                    after.as_millis()
                )),
                true,
            ),
            IngressError::Scim(e) => (e, false),
            IngressError::Store(e) if e.is_statement_timeout() => {
                tracing::warn!(error = %e, "a database statement timed out");
                (
                    ScimError::unavailable(
                        "a database statement took longer than its timeout; retry later",
                    ),
                    true,
                )
            }
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
        resp.extensions_mut().insert(crate::activity::ErrorNote {
            scim_type: err.scim_type.map(|t| t.as_str().to_string()),
            detail: err.detail.clone(),
        });
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

/// 429 with `Retry-After` in whole seconds.
fn too_many(err: ScimError, secs: u64) -> Response {
    let mut resp = scim_json(StatusCode::TOO_MANY_REQUESTS, &err.to_body());
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub async fn not_found() -> IngressError {
    IngressError::Scim(ScimError::not_found("no such endpoint"))
}
