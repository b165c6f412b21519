//! Tenant authentication (T2, T3): the bearer token must belong to the
//! tenant named in the URL. Any failure is the same 401, so a caller learns
//! nothing about other tenants. Tokens are never logged.
//!
//! Tokens are looked up by hash in the tenant cache first, then in the
//! database (see `tenant_cache.rs` for why a cached answer is current); a
//! hash no active tenant has is remembered as unknown for a while, so a
//! repeated wrong token costs no lookup. Failures are counted per client
//! address (`limits::AuthFailures`): past the limit the address gets 429
//! with Retry-After, and its unknown tokens are not looked up, while a
//! token the cache knows still works from it (many clients may share an
//! address). Behind proxies named in `SCIMFLOW_TRUSTED_PROXIES`, the
//! client is the one their `X-Forwarded-For` names.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use uuid::Uuid;

use scimflow_shared::config::IpRange;
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

/// The client a request's failed authentications count against: the
/// peer (none when served without connection info, as in router tests:
/// all such requests count as one client), or, when the peer is a trusted
/// proxy, the client its `X-Forwarded-For` names.
fn client_address(parts: &Parts, trusted: &[IpRange]) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<crate::lingering::ClientAddr>>()
        .map(|c| c.0 .0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    forwarded_client(peer, &parts.headers, trusted)
}

/// The last address in `X-Forwarded-For` (every instance of the header,
/// in order) that is not a trusted proxy, if `peer` is one; else `peer`.
/// Only what trusted proxies appended is believed: anything left of it
/// is the client's own to write. An entry that is not an address ends
/// the walk at the last address believed.
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|r| r.contains(a));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                client = addr;
                if !is_trusted(addr) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A failed authentication: 401, or 429 once the address is over its limit.
fn refuse(state: &AppState, addr: IpAddr) -> IngressError {
    match state.auth_failures.fail(addr, Instant::now()) {
        Ok(()) => unauthorized(),
        Err(wait) => IngressError::AuthThrottled(wait),
    }
}

impl FromRequestParts<AppState> for AuthedTenant {
    type Rejection = IngressError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let addr = client_address(parts, &state.config.trusted_proxies);
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
            .ok_or_else(|| refuse(state, addr))?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| refuse(state, addr))?;
        let url_tenant = params
            .get("tenant_id")
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(|| refuse(state, addr))?;
        let tenant = lookup(state, addr, token::hash(&presented)).await?;
        match tenant {
            Some(t)
                if t.id == url_tenant
                    && t.is_active()
                    && token::verify(&presented, &t.token_hash) =>
            {
                crate::trace::record_tenant(t.id);
                state
                    .limiter
                    .take(t.id, Instant::now())
                    .map_err(IngressError::RateLimited)?;
                if let Some(slot) = parts.extensions.get::<crate::metrics::TenantSlot>() {
                    if let Ok(mut s) = slot.0.lock() {
                        *s = Some(t.id);
                    }
                }
                Ok(AuthedTenant(t))
            }
            _ => Err(refuse(state, addr)),
        }
    }
}

/// The tenant whose token hashes to `hash`, if any. An address over its
/// failure limit gets no database lookup.
async fn lookup(
    state: &AppState,
    addr: IpAddr,
    hash: String,
) -> Result<Option<Arc<TenantRow>>, IngressError> {
    let ticket = match state.tenants.get(&hash) {
        Cached::Hit(row) => {
            TENANT_CACHE_LOOKUPS.with_label_values(&["hit"]).inc();
            return Ok(Some(row));
        }
        Cached::Unknown => {
            TENANT_CACHE_LOOKUPS.with_label_values(&["unknown"]).inc();
            return Ok(None);
        }
        Cached::Miss(ticket) => ticket,
    };
    state
        .auth_failures
        .check(addr, Instant::now())
        .map_err(IngressError::AuthThrottled)?;
    TENANT_CACHE_LOOKUPS.with_label_values(&["miss"]).inc();
    let (found, hash) = blocking(state, move |conn| {
        Ok((
            tenants::find_by_token_hash(conn, &hash)?.map(Arc::new),
            hash,
        ))
    })
    .await?;
    // Only active tenants are remembered: one entry per tenant whatever
    // tokens callers send, and a resumed tenant's token works at once
    // (its resumption is a change, which forgets the unknown hashes).
    match found.as_ref().filter(|row| row.is_active()) {
        Some(row) => state.tenants.fill(ticket, hash, Arc::clone(row)),
        None => state.tenants.fill_unknown(ticket, hash),
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_shared::config::parse_ip_ranges;

    #[test]
    fn a_trusted_proxy_names_the_client_and_nobody_else_does() {
        let trusted = parse_ip_ranges("10.0.0.0/8").expect("ranges");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // (peer, X-Forwarded-For headers, the client counted)
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", &["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", &["198.51.100.1, 10.0.0.3"], "198.51.100.1"),
            ("10.0.0.2", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", &["198.51.100.1, garbage"], "10.0.0.2"),
            ("10.0.0.2", &["10.0.0.4"], "10.0.0.4"),
        ];
        for (peer, xff, client) in cases {
            let mut headers = HeaderMap::new();
            for v in *xff {
                headers.append("x-forwarded-for", v.parse().expect("header"));
            }
            assert_eq!(
                forwarded_client(ip(peer), &headers, &trusted),
                ip(client),
                "{peer} {xff:?}"
            );
        }
    }
}
