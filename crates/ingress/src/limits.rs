//! What bounds the work one ingress takes on:
//! - per-tenant rate limiting: a token bucket per tenant, so one customer's
//!   burst cannot take the ingress from the others; a /Bulk request costs
//!   a token per operation. Past it, 429 with Retry-After (both IdPs back
//!   off and retry on that);
//! - failed authentication per client address (`AuthFailures`): past the
//!   limit, 429 instead of another token lookup;
//! - requests in flight (`in_flight`): past the limit, 503 at once, never a
//!   queue that grows with the overload;
//! - time per request (`deadline`): 503 past it.
//!
//! The body size is bounded in `body.rs`, statements by PostgreSQL's
//! `statement_timeout` (`store::connect_pool`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::{AppState, IngressError};

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct TenantRateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl TenantRateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        TenantRateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `tenant` at `now`; when there is none, how long
    /// until there will be.
    pub fn take(&self, tenant: Uuid, now: Instant) -> Result<(), Duration> {
        self.take_n(tenant, 1, now)
    }

    /// Take `n` tokens for one request. A request
    /// of more than the burst needs a full bucket and leaves it in debt,
    /// repaid at the rate before the tenant's next request: the sustained
    /// rate holds whatever the request sizes.
    pub fn take_n(&self, tenant: Uuid, n: u32, now: Instant) -> Result<(), Duration> {
        self.take_within(tenant, n, f64::from(n).min(self.burst), now)
    }

    /// Take `n` more tokens for a request that took one already (a /Bulk
    /// request's further operations): the request as a whole needs no
    /// more than a full bucket.
    pub fn take_more(&self, tenant: Uuid, n: u32, now: Instant) -> Result<(), Duration> {
        self.take_within(tenant, n, f64::from(n).min(self.burst - 1.0), now)
    }

    /// Take `n` tokens if the bucket holds `needed`.
    fn take_within(&self, tenant: Uuid, n: u32, needed: f64, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned lock must not take the service down
        };
        let bucket = buckets.entry(tenant).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= needed {
            bucket.tokens -= f64::from(n);
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (needed - bucket.tokens) / self.rate,
            ))
        }
    }
}

/// Most client addresses tracked at once; past it, addresses not yet seen
/// are not counted until old windows expire (the limit fails open rather
/// than grow without bound).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Failed authentications per client address, in fixed windows. IPv6
/// addresses count per /64, which one host can hop around in.
pub struct AuthFailures {
    limit: u32,
    window: Duration,
    by_address: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    pub fn new(limit: u32, window: Duration) -> Self {
        AuthFailures {
            limit,
            window,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `addr` may still try (`Err`: how long until it may).
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.by_address.lock() else {
            return Ok(());
        };
        match map.get_mut(&client_key(addr)) {
            Some(entry) => self.over(entry, now),
            None => Ok(()),
        }
    }

    /// Count a failure of `addr`; `Err` (how long to wait) once it is over
    /// the limit, this failure included.
    pub fn fail(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.by_address.lock() else {
            return Ok(());
        };
        let key = client_key(addr);
        if !map.contains_key(&key) && map.len() >= MAX_TRACKED_ADDRESSES {
            let window = self.window;
            map.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if map.len() >= MAX_TRACKED_ADDRESSES {
                return Ok(());
            }
        }
        let entry = map.entry(key).or_insert((now, 0));
        // Start a new window if the old one is over, then count.
        let _ = self.over(entry, now);
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > self.limit {
            Err(self.remaining(entry.0, now))
        } else {
            Ok(())
        }
    }

    fn over(&self, entry: &mut (Instant, u32), now: Instant) -> Result<(), Duration> {
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            Err(self.remaining(entry.0, now))
        } else {
            Ok(())
        }
    }

    fn remaining(&self, start: Instant, now: Instant) -> Duration {
        (start + self.window).saturating_duration_since(now)
    }
}

/// The address a client is counted under: IPv4 as is (an IPv4-mapped IPv6
/// address too), IPv6 by its /64 prefix.
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Probes answer whatever the load: they are cheap (`/readyz` is cached),
/// and an orchestrator must not take a busy ingress for a dead one.
fn is_probe(req: &Request) -> bool {
    matches!(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        Some("/healthz" | "/readyz")
    )
}

/// At most `SCIMFLOW_MAX_IN_FLIGHT` requests at once; the next one gets
/// 503 with Retry-After at once instead of waiting in a queue that would
/// hold its body and grow with the overload.
pub async fn in_flight(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if is_probe(&req) {
        return next.run(req).await;
    }
    match app.in_flight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => IngressError::Overloaded(app.config.max_in_flight).into_response(),
    }
}

/// At most `SCIMFLOW_REQUEST_TIMEOUT_MS` per request, its body included;
/// then 503 with Retry-After. What was in hand is dropped (a write that was
/// published still applies; its outcome stays in PostgreSQL).
pub async fn deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = app.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(ms = limit.as_millis() as u64, "request timed out");
            let mut resp = IngressError::TimedOut(limit).into_response();
            resp.extensions_mut().insert(TimedOut);
            resp
        }
    }
}

/// Marks the answer to a request that ran out of time: what is left of its
/// body is not waited for (`body::limit` closes the connection instead).
#[derive(Clone, Copy)]
pub struct TimedOut;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_rate_waits_and_others_do_not() {
        let limiter = TenantRateLimiter::new(10.0, 5.0);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.take(a, t0).is_ok());
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(
            limiter.take(b, t0).is_ok(),
            "another tenant has its own bucket"
        );
        assert!(
            limiter.take(a, t0 + Duration::from_millis(100)).is_ok(),
            "refilled at the rate"
        );
        assert!(limiter.take(a, t0 + Duration::from_millis(100)).is_err());
        for _ in 0..5 {
            assert!(
                limiter.take(a, t0 + Duration::from_secs(10)).is_ok(),
                "refills up to the burst"
            );
        }
        assert!(
            limiter.take(a, t0 + Duration::from_secs(10)).is_err(),
            "and no further"
        );
    }

    #[test]
    fn a_bulk_request_costs_a_token_per_operation() {
        // rate 10/s, burst 20. (tokens taken before, n asked, granted,
        // tokens left if granted or the wait if not)
        let cases: &[(u32, u32, bool, f64)] = &[
            (0, 20, true, 0.0),      // the whole burst
            (0, 5, true, 15.0),      // part of it
            (10, 11, false, 0.1),    // 10 left, 11 needed: 0.1 s
            (0, 1000, true, -980.0), // more than the burst: a full bucket, then debt
            (1, 1000, false, 0.1),   // not a full bucket
        ];
        for &(before, n, granted, after) in cases {
            let limiter = TenantRateLimiter::new(10.0, 20.0);
            let (t, t0) = (Uuid::from_u128(1), Instant::now());
            if before > 0 {
                limiter.take_n(t, before, t0).expect("tokens");
            }
            match limiter.take_n(t, n, t0) {
                Ok(()) => {
                    assert!(granted, "{before} then {n}");
                    let left = limiter.buckets.lock().expect("lock")[&t].tokens;
                    assert!((left - after).abs() < 1e-9, "{before} then {n}: {left}");
                }
                Err(wait) => {
                    assert!(!granted, "{before} then {n}");
                    assert!((wait.as_secs_f64() - after).abs() < 1e-9, "{wait:?}");
                }
            }
        }
        // A /Bulk request took one token when it authenticated: the rest
        // of a request larger than the burst needs the rest of the bucket.
        let limiter = TenantRateLimiter::new(10.0, 20.0);
        let (t, t0) = (Uuid::from_u128(1), Instant::now());
        limiter.take(t, t0).expect("a token");
        limiter
            .take_more(t, 999, t0)
            .expect("the rest of a full bucket");
        assert!(limiter.take_more(t, 1, t0).is_err());
        let limiter = TenantRateLimiter::new(10.0, 20.0);
        limiter.take_n(t, 2, t0).expect("tokens");
        limiter
            .take_more(t, 999, t0)
            .expect_err("not a full bucket");
        // A debt is repaid at the rate before the next request.
        let limiter = TenantRateLimiter::new(10.0, 20.0);
        let (t, t0) = (Uuid::from_u128(1), Instant::now());
        limiter.take_n(t, 100, t0).expect("a full bucket");
        let wait = limiter.take(t, t0).expect_err("in debt");
        assert!((wait.as_secs_f64() - 8.1).abs() < 1e-9, "{wait:?}");
        assert!(limiter.take(t, t0 + Duration::from_millis(8100)).is_ok());
    }

    #[test]
    fn failed_authentication_is_limited_per_address_and_window() {
        let failures = AuthFailures::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(failures.check(a, t0).is_ok());
            assert!(failures.fail(a, t0).is_ok(), "within the limit: 401");
        }
        assert_eq!(
            failures.check(a, t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50)),
            "the limit reached: wait for the window"
        );
        assert!(failures.fail(a, t0).is_err(), "one more is over");
        assert!(failures.check(b, t0).is_ok(), "another address is not held");
        assert!(
            failures.check(a, t0 + Duration::from_secs(60)).is_ok(),
            "a new window"
        );
        assert!(failures.fail(a, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn addresses_count_as_the_client_they_stand_for() {
        let cases = [
            ("192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::"),
            ("::1", "::"),
        ];
        for (addr, key) in cases {
            let addr: IpAddr = addr.parse().expect("ip");
            let key: IpAddr = key.parse().expect("ip");
            assert_eq!(client_key(addr), key, "{addr}");
        }
    }
}
