//! What can go wrong while serving a request. `response.rs` turns each of
//! these into its HTTP response.

use std::time::Duration;

use scimflow_shared::store::StoreError;
use scimflow_shared::ScimError;

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

pub async fn not_found() -> IngressError {
    IngressError::Scim(ScimError::not_found("no such endpoint"))
}
