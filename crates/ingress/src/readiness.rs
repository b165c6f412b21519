//! `/readyz` on the SCIM port: PostgreSQL answers and the broker gives
//! metadata (`health::probe`, the admin listener's check too). It is on
//! the public port, so anyone may ask it as often as they like: the checks
//! run at most once per [`INTERVAL`], and every other call in between is
//! answered with the last result. Concurrent calls at the end of an
//! interval wait for the one check under way rather than start their own.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::metrics::READINESS_CHECKS;
use crate::{AppState, IngressError};

/// How long a readiness result is served before it is checked again.
pub const INTERVAL: Duration = Duration::from_secs(1);

pub type Verdict = Result<(), &'static str>;

/// The last result and when it was found.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Verdict)>>,
}

impl Readiness {
    /// The last verdict if younger than [`INTERVAL`], else `check`'s.
    pub async fn get<F, Fut>(&self, now: impl Fn() -> Instant, check: F) -> Verdict
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Verdict>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, verdict)) = *last {
            if now().saturating_duration_since(at) < INTERVAL {
                return verdict;
            }
        }
        let verdict = check().await;
        *last = Some((now(), verdict));
        verdict
    }
}

pub async fn ready(app: &AppState) -> Result<&'static str, IngressError> {
    app.readiness
        .get(Instant::now, || check(app))
        .await
        .map(|()| "ready")
        .map_err(IngressError::Unavailable)
}

async fn check(app: &AppState) -> Verdict {
    READINESS_CHECKS.inc();
    crate::health::probe(&app.pool, &app.publisher, &app.topics.commands()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    #[tokio::test]
    async fn the_checks_run_at_most_once_per_interval() {
        let readiness = Readiness::default();
        let t0 = Instant::now();
        let clock = StdMutex::new(t0);
        let checks = AtomicUsize::new(0);
        // (milliseconds since the start, what the check would say,
        // checks run so far, verdict)
        let cases: &[(u64, Verdict, usize, Verdict)] = &[
            (0, Ok(()), 1, Ok(())),
            (10, Err("down"), 1, Ok(())), // served from the last check
            (999, Err("down"), 1, Ok(())),
            (1000, Err("down"), 2, Err("down")), // the interval is over
            (1500, Ok(()), 2, Err("down")),      // a failure is kept as long
            (2000, Ok(()), 3, Ok(())),
        ];
        for &(ms, says, ran, verdict) in cases {
            *clock.lock().expect("clock") = t0 + Duration::from_millis(ms);
            let got = readiness
                .get(
                    || *clock.lock().expect("clock"),
                    || async {
                        checks.fetch_add(1, Ordering::Relaxed);
                        says
                    },
                )
                .await;
            assert_eq!(got, verdict, "at {ms} ms");
            assert_eq!(checks.load(Ordering::Relaxed), ran, "at {ms} ms");
        }
    }
}
