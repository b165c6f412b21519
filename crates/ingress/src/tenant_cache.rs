//! The tenants this ingress has authenticated, kept in memory so that a
//! request does not cost a database lookup of its token (T2).
//!
//! Correctness rests on PostgreSQL notifications: every committed change to
//! a tenant row (rotation, suspension, plan, deletion) empties the cache, so
//! an old token stops working as soon as the notification arrives (a few
//! milliseconds). The cache serves only while its listening connection is
//! up; when that connection fails, changes could be missed, so the cache
//! empties and every request goes to the database until it is back.
//!
//! A lookup that started before a change must not put the old row back
//! after the change emptied the cache: each miss carries the cache's
//! generation, and a fill from an older generation is dropped.
//!
//! Token hashes no active tenant has are remembered too, for
//! [`UNKNOWN_FOR`], so a client repeating a wrong token costs no lookup.
//! The same notifications forget them: a tenant created, resumed or given
//! a new token is a change, so its token works as soon as the change
//! commits, and a lookup that raced the change cannot remember the token
//! as unknown (the generation again).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use scimflow_shared::store::tenants::{TenantChanges, TenantRow};

/// How often the listener looks for notifications: the longest an old
/// token keeps working after its change commits.
const POLL: Duration = Duration::from_millis(10);
/// How often the listening connection is proven alive.
const CHECK: Duration = Duration::from_secs(5);
/// How long the cache stays off before listening again after a failure.
const RECONNECT: Duration = Duration::from_secs(2);
/// How long a token hash no active tenant has is answered from memory.
/// Changes forget it sooner; this only bounds how long a hash is kept.
const UNKNOWN_FOR: Duration = Duration::from_secs(60);
/// Most unknown token hashes remembered; past it, expired ones are
/// dropped, and if that is not enough, all of them (each client with a
/// new random token already costs a lookup, and the per-address limit on
/// failures bounds those).
const MAX_UNKNOWN: usize = 10_000;

#[derive(Default)]
pub struct TenantCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// True only while a listener is connected and has not missed changes.
    live: bool,
    generation: u64,
    by_token_hash: HashMap<String, Arc<TenantRow>>,
    /// Token hashes with no active tenant, until when they are known so.
    unknown: HashMap<String, Instant>,
}

/// The answer of [`TenantCache::get`].
pub enum Cached {
    Hit(Arc<TenantRow>),
    /// No active tenant has this token (looked up less than
    /// [`UNKNOWN_FOR`] ago, and nothing changed since).
    Unknown,
    /// Look it up, then [`TenantCache::fill`] or
    /// [`TenantCache::fill_unknown`] with this ticket.
    Miss(Ticket),
}

/// The generation a lookup started in.
#[derive(Clone, Copy)]
pub struct Ticket(Option<u64>);

impl TenantCache {
    pub fn get(&self, token_hash: &str) -> Cached {
        self.get_at(token_hash, Instant::now())
    }

    fn get_at(&self, token_hash: &str, now: Instant) -> Cached {
        let Ok(inner) = self.inner.read() else {
            return Cached::Miss(Ticket(None));
        };
        if !inner.live {
            return Cached::Miss(Ticket(None));
        }
        if let Some(row) = inner.by_token_hash.get(token_hash) {
            return Cached::Hit(Arc::clone(row));
        }
        match inner.unknown.get(token_hash) {
            Some(until) if now < *until => Cached::Unknown,
            _ => Cached::Miss(Ticket(Some(inner.generation))),
        }
    }

    /// Remember that no active tenant has this token, unless the cache
    /// changed since the lookup started (or was not live then).
    pub fn fill_unknown(&self, ticket: Ticket, token_hash: String) {
        self.fill_unknown_at(ticket, token_hash, Instant::now());
    }

    fn fill_unknown_at(&self, ticket: Ticket, token_hash: String, now: Instant) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if !(inner.live && ticket.0 == Some(inner.generation)) {
            return;
        }
        if inner.unknown.len() >= MAX_UNKNOWN {
            inner.unknown.retain(|_, until| now < *until);
            if inner.unknown.len() >= MAX_UNKNOWN {
                inner.unknown.clear();
            }
        }
        inner.unknown.insert(token_hash, now + UNKNOWN_FOR);
    }

    /// Remember what a lookup found, unless the cache changed since the
    /// lookup started (or was not live then).
    pub fn fill(&self, ticket: Ticket, token_hash: String, row: Arc<TenantRow>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.live && ticket.0 == Some(inner.generation) {
            inner.by_token_hash.insert(token_hash, row);
        }
    }

    /// A tenant changed: forget everything (changes are rare; being exact
    /// about which entries to drop is not worth a bug).
    pub fn invalidate(&self) {
        self.reset(None);
    }

    /// Forget everything and start (true) or stop (false) serving.
    fn reset(&self, live: Option<bool>) {
        let mut inner = match self.inner.write() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.by_token_hash.clear();
        inner.unknown.clear();
        inner.generation += 1;
        if let Some(live) = live {
            inner.live = live;
        }
        crate::metrics::TENANT_CACHE_LIVE.set(i64::from(inner.live));
    }

    /// Keep the cache in step with the database until `shutdown`, on a
    /// thread of its own (the listening connection is a blocking one).
    pub fn follow_changes(
        self: &Arc<Self>,
        database_url: String,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let cache = Arc::clone(self);
        std::thread::Builder::new()
            .name("tenant-changes".into())
            .spawn(move || cache.listen(&database_url, &shutdown))
            .map(|_| ())
    }

    fn listen(&self, database_url: &str, shutdown: &watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match TenantChanges::listen(database_url) {
                Ok(mut changes) => {
                    self.reset(Some(true));
                    tracing::info!("tenant cache live");
                    let failure = self.follow(&mut changes, shutdown);
                    self.reset(Some(false));
                    match failure {
                        None => return,
                        Some(e) => {
                            tracing::warn!(error = %e, "tenant cache off: lost the change notifications")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tenant cache off: cannot listen for changes")
                }
            }
            std::thread::sleep(RECONNECT);
        }
    }

    /// Apply notifications until the connection fails (its error) or
    /// shutdown (None).
    fn follow(
        &self,
        changes: &mut TenantChanges,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<scimflow_shared::store::StoreError> {
        let mut checked = Instant::now();
        while !*shutdown.borrow() {
            match changes.take() {
                Ok(0) => {}
                Ok(_) => self.invalidate(),
                Err(e) => return Some(e),
            }
            if checked.elapsed() >= CHECK {
                if let Err(e) = changes.check() {
                    return Some(e);
                }
                checked = Instant::now();
            }
            std::thread::sleep(POLL);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> TenantRow {
        TenantRow {
            id: uuid::Uuid::now_v7(),
            name: name.into(),
            token_hash: format!("hash-{name}"),
            features: vec![],
            created_at: chrono::Utc::now(),
            token_rotated_at: None,
            suspended_at: None,
            deleted_at: None,
        }
    }

    fn hit(cache: &TenantCache, hash: &str) -> Option<String> {
        match cache.get(hash) {
            Cached::Hit(r) => Some(r.name.clone()),
            Cached::Miss(_) | Cached::Unknown => None,
        }
    }

    fn ticket(cache: &TenantCache, hash: &str) -> Ticket {
        match cache.get(hash) {
            Cached::Miss(t) => t,
            Cached::Hit(_) | Cached::Unknown => panic!("expected a miss"),
        }
    }

    fn unknown_at(cache: &TenantCache, hash: &str, now: Instant) -> bool {
        matches!(cache.get_at(hash, now), Cached::Unknown)
    }

    #[test]
    fn an_unknown_token_is_remembered_until_a_change_or_its_time_is_up() {
        // (live, change during the lookup, change after, seconds later,
        // still known unknown)
        let cases = [
            (true, false, false, 0, true),   // the common case
            (true, false, false, 59, true),  // within UNKNOWN_FOR
            (true, false, false, 60, false), // then looked up again
            (true, false, true, 0, false),   // a tenant changed: look again
            (true, true, false, 0, false),   // a change raced the lookup
            (false, false, false, 0, false), // no listener: never remembered
        ];
        for (live, during, after, secs, unknown) in cases {
            let cache = TenantCache::default();
            if live {
                cache.reset(Some(true));
            }
            let t0 = Instant::now();
            let t = ticket(&cache, "hash-x");
            if during {
                cache.invalidate();
            }
            cache.fill_unknown_at(t, "hash-x".into(), t0);
            if after {
                cache.invalidate();
            }
            assert_eq!(
                unknown_at(&cache, "hash-x", t0 + Duration::from_secs(secs)),
                unknown,
                "live {live}, change during {during}, after {after}, {secs} s later"
            );
        }
    }

    #[test]
    fn unknown_tokens_are_bounded_in_number() {
        let cache = TenantCache::default();
        cache.reset(Some(true));
        let t0 = Instant::now();
        for i in 0..MAX_UNKNOWN {
            let t = ticket(&cache, "h");
            cache.fill_unknown_at(t, format!("h{i}"), t0);
        }
        assert!(unknown_at(&cache, "h0", t0));
        // Full of live entries: they all go, the new one stays.
        let t = ticket(&cache, "h");
        cache.fill_unknown_at(t, "new".into(), t0);
        assert!(unknown_at(&cache, "new", t0));
        assert!(!unknown_at(&cache, "h0", t0));
        assert_eq!(cache.inner.read().expect("lock").unknown.len(), 1);
    }

    #[test]
    fn serves_only_while_live_and_only_what_it_was_given_since() {
        // (live before the lookup, change during the lookup, cached after)
        let cases = [
            (false, false, false), // no listener: never cache
            (true, false, true),   // the common case
            (true, true, false),   // a change raced the lookup: drop it
        ];
        for (live, change_during, cached) in cases {
            let cache = TenantCache::default();
            if live {
                cache.reset(Some(true));
            }
            let t = ticket(&cache, "hash-a");
            if change_during {
                cache.invalidate();
            }
            cache.fill(t, "hash-a".into(), Arc::new(row("a")));
            assert_eq!(
                hit(&cache, "hash-a").is_some(),
                cached,
                "live {live}, change during lookup {change_during}"
            );
        }
    }

    #[test]
    fn a_change_or_a_lost_listener_forgets_everything() {
        let cache = TenantCache::default();
        cache.reset(Some(true));
        let t = ticket(&cache, "hash-a");
        cache.fill(t, "hash-a".into(), Arc::new(row("a")));
        assert_eq!(hit(&cache, "hash-a").as_deref(), Some("a"));
        cache.invalidate();
        assert_eq!(hit(&cache, "hash-a"), None);

        let t = ticket(&cache, "hash-a");
        cache.fill(t, "hash-a".into(), Arc::new(row("a")));
        cache.reset(Some(false));
        assert_eq!(hit(&cache, "hash-a"), None, "not live: no answers");
        // A lookup that started while live and finishes after the listener
        // was lost and came back must not fill either.
        cache.reset(Some(true));
        let t = ticket(&cache, "hash-a");
        cache.reset(Some(false));
        cache.reset(Some(true));
        cache.fill(t, "hash-a".into(), Arc::new(row("a")));
        assert_eq!(hit(&cache, "hash-a"), None);
    }
}
