//! Tenant authentication (T2, T3): the bearer token must belong to the
//! tenant named in the URL. Any failure is the same 401, so a caller learns
//! nothing about other tenants. Tokens are never logged.
//!
//! Tokens are looked up by hash in the tenant cache first, then in the
//! database (see `tenant_cache.rs` for why a cached answer is current).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use scimflow_shared::store::tenants::{self, TenantRow};
use scimflow_shared::token;
use scimflow_shared::ScimError;

use crate::metrics::TENANT_CACHE_LOOKUPS;
use crate::tenant_cache::Cached;
use crate::{blocking, AppState, IngressError};

/// The tenant a request is authenticated as.
pub struct AuthedTenant(pub Arc<TenantRow>);

fn unauthorized() -> IngressError {
    ScimError::unauthorized("a valid bearer token for this SCIM endpoint is required").into()
}

impl FromRequestParts<AppState> for AuthedTenant {
    type Rejection = IngressError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().to_string())
            })
            .filter(|t| !t.is_empty() && t.len() <= 512)
            .ok_or_else(unauthorized)?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| unauthorized())?;
        let url_tenant = params
            .get("tenant_id")
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(unauthorized)?;
        let tenant = lookup(state, token::hash(&presented)).await?;
        match tenant {
            Some(t)
                if t.id == url_tenant
                    && t.is_active()
                    && token::verify(&presented, &t.token_hash) =>
            {
                crate::trace::record_tenant(t.id);
                state
                    .limiter
                    .take(t.id, std::time::Instant::now())
                    .map_err(IngressError::RateLimited)?;
                if let Some(slot) = parts.extensions.get::<crate::metrics::TenantSlot>() {
                    if let Ok(mut s) = slot.0.lock() {
                        *s = Some(t.id);
                    }
                }
                Ok(AuthedTenant(t))
            }
            _ => Err(unauthorized()),
        }
    }
}

/// The tenant whose token hashes to `hash`, if any.
async fn lookup(state: &AppState, hash: String) -> Result<Option<Arc<TenantRow>>, IngressError> {
    let ticket = match state.tenants.get(&hash) {
        Cached::Hit(row) => {
            TENANT_CACHE_LOOKUPS.with_label_values(&["hit"]).inc();
            return Ok(Some(row));
        }
        Cached::Miss(ticket) => ticket,
    };
    TENANT_CACHE_LOOKUPS.with_label_values(&["miss"]).inc();
    let (found, hash) = blocking(state, move |conn| {
        Ok((
            tenants::find_by_token_hash(conn, &hash)?.map(Arc::new),
            hash,
        ))
    })
    .await?;
    // Only active tenants are remembered: one entry per tenant whatever
    // tokens callers send, and a resumed tenant's token works at once.
    if let Some(row) = found.as_ref().filter(|row| row.is_active()) {
        state.tenants.fill(ticket, hash, Arc::clone(row));
    }
    Ok(found)
}
