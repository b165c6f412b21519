//! Per-tenant rate limiting: a token bucket per tenant, so one customer's
//! burst cannot take the ingress from the others. Past it, 429 with
//! Retry-After (both IdPs back off and retry on that).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

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
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

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
}
