//! The activity log's recorder: every SCIM request of an authenticated
//! tenant becomes an entry (time, method, resource, status, request id,
//! user id when known, and for a refusal the SCIM error's scimType and
//! detail; never a body or a token), which the admin API shows.
//!
//! Recording must never slow or fail a request: entries go through a
//! bounded channel to one background task that inserts them in batches
//! (gathered for up to `LINGER`, committed without waiting for the WAL
//! flush); when the channel is full an entry is dropped and counted
//! (`scimflow_activity_dropped_total`). The same task prunes the log to
//! `SCIMFLOW_ACTIVITY_MAX_ROWS` per tenant and `SCIMFLOW_ACTIVITY_MAX_AGE_HOURS`.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::LOCATION;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use prometheus::IntCounter;
use tokio::sync::mpsc;
use uuid::Uuid;

use scimflow_shared::store::activity::{self, NewActivity};
use scimflow_shared::store::PgPool;

use crate::metrics::TenantSlot;
use crate::AppState;

/// Entries waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Entries per insert, at most.
const BATCH: usize = 500;
/// How often the log is pruned (each tenant that made requests since).
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// How long a batch may gather entries after its first: under load one
/// insert carries hundreds of entries instead of a handful.
const LINGER: Duration = Duration::from_millis(100);

pub static DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    let c = IntCounter::new(
        "scimflow_activity_dropped_total",
        "Activity log entries dropped because the recorder was behind (or the database refused them)",
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(c.clone()));
    c
});

/// A SCIM error's type and detail, left on the response by the one place
/// that renders errors, for the log.
#[derive(Debug, Clone)]
pub struct ErrorNote {
    pub scim_type: Option<String>,
    pub detail: String,
}

/// Where the requests' entries go.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<NewActivity>,
}

impl Recorder {
    /// Start the writer; it ends once every `Recorder` is dropped and
    /// what was queued is written.
    pub fn start(
        pool: PgPool,
        max_rows: i64,
        max_age: Duration,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        LazyLock::force(&DROPPED);
        let (tx, rx) = mpsc::channel(QUEUE);
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(7));
        let task = tokio::spawn(write_batches(rx, pool, max_rows, max_age));
        (Recorder { tx }, task)
    }

    fn record(&self, entry: NewActivity) {
        if self.tx.try_send(entry).is_err() {
            DROPPED.inc();
        }
    }
}

async fn write_batches(
    mut rx: mpsc::Receiver<NewActivity>,
    pool: PgPool,
    max_rows: i64,
    max_age: chrono::Duration,
) {
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut last_prune = Instant::now();
    loop {
        // Wake up at least once per pruning interval, so an idle
        // ingress still prunes what it wrote.
        let mut batch = match tokio::time::timeout(PRUNE_EVERY, rx.recv()).await {
            Ok(Some(first)) => vec![first],
            Ok(None) => break,
            Err(_) => Vec::new(),
        };
        let gather_until = tokio::time::Instant::now() + LINGER;
        while !batch.is_empty() && batch.len() < BATCH {
            match tokio::time::timeout_at(gather_until, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        seen.extend(batch.iter().map(|e| e.tenant_id));
        let prune: Option<Vec<Uuid>> = (last_prune.elapsed() >= PRUNE_EVERY).then(|| {
            last_prune = Instant::now();
            seen.drain().collect()
        });
        if batch.is_empty() && prune.is_none() {
            continue;
        }
        let n = batch.len() as u64;
        let pool = pool.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            if !batch.is_empty() {
                activity::insert_batch(&mut conn, &batch)?;
            }
            if let Some(tenants) = prune {
                activity::prune(&mut conn, &tenants, max_rows, max_age)?;
            }
            Ok::<_, scimflow_shared::store::StoreError>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, entries = n, "activity log entries not written");
                DROPPED.inc_by(n);
            }
            Err(_) => DROPPED.inc_by(n),
        }
    }
}

/// `/scim/v2/{tenant}/{endpoint}/{id}...`: the resource type and id.
fn resource(path: &str) -> (Option<String>, Option<String>) {
    let mut rest = path
        .strip_prefix("/scim/v2/")
        .unwrap_or_default()
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty());
    let kind = rest.next().map(|e| match e {
        "Users" => "User".to_string(),
        "Groups" => "Group".to_string(),
        other => other.to_string(),
    });
    (kind, rest.next().map(str::to_string))
}

/// The user a request is about: the id in the path, or the one a create
/// answered with.
fn user_of(kind: Option<&str>, id: Option<&str>, created: Option<&str>) -> Option<Uuid> {
    if kind != Some("User") {
        return None;
    }
    id.or_else(|| created.and_then(|l| l.rsplit('/').next()))
        .and_then(|i| Uuid::parse_str(i).ok())
}

/// Record the request once it is answered, if its tenant authenticated.
pub async fn record(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let occurred_at = Utc::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let slot = req.extensions().get::<TenantSlot>().cloned();
    let resp = next.run(req).await;
    let Some(tenant_id) = slot.and_then(|s| s.0.lock().ok().and_then(|t| *t)) else {
        return resp;
    };
    let (resource_type, resource_id) = resource(&path);
    let created = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
    let user_id = user_of(resource_type.as_deref(), resource_id.as_deref(), created);
    let note = resp.extensions().get::<ErrorNote>();
    app.activity.record(
        NewActivity {
            tenant_id,
            occurred_at,
            method,
            resource_type,
            resource_id,
            status: resp.status().as_u16() as i16,
            request_id,
            user_id,
            scim_type: note.and_then(|n| n.scim_type.clone()),
            detail: note.map(|n| n.detail.clone()),
        }
        .bounded(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, mut rx) = mpsc::channel(1);
        let recorder = Recorder { tx };
        let entry = || NewActivity {
            tenant_id: Uuid::nil(),
            occurred_at: Utc::now(),
            method: "GET".into(),
            resource_type: None,
            resource_id: None,
            status: 200,
            request_id: None,
            user_id: None,
            scim_type: None,
            detail: None,
        };
        let before = DROPPED.get();
        recorder.record(entry());
        recorder.record(entry());
        recorder.record(entry());
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "one queued");
        assert!(DROPPED.get() >= before + 2, "two dropped and counted");
    }

    #[test]
    fn a_path_names_its_resource_and_user() {
        let u = "0190a4b2-7c3e-7d1a-9f00-000000000001";
        let t = "0190a4b2-7c3e-7d1a-9f00-0000000000ff";
        let loc = format!("http://h/scim/v2/{t}/Users/{u}");
        // (path, Location, type, id, user)
        let cases = [
            (
                format!("/scim/v2/{t}/Users/{u}"),
                None,
                Some("User"),
                Some(u),
                Some(u),
            ),
            (
                format!("/scim/v2/{t}/Users"),
                Some(loc.as_str()),
                Some("User"),
                None,
                Some(u),
            ),
            (
                format!("/scim/v2/{t}/Users"),
                None,
                Some("User"),
                None,
                None,
            ),
            (
                format!("/scim/v2/{t}/Users/not-a-uuid"),
                None,
                Some("User"),
                Some("not-a-uuid"),
                None,
            ),
            (
                format!("/scim/v2/{t}/Groups/{u}"),
                None,
                Some("Group"),
                Some(u),
                None,
            ),
            (
                format!("/scim/v2/{t}/Bulk"),
                Some(loc.as_str()),
                Some("Bulk"),
                None,
                None,
            ),
            (format!("/scim/v2/{t}"), None, None, None, None),
            ("/healthz".to_string(), None, None, None, None),
        ];
        for (path, location, kind, id, user) in cases {
            let (k, i) = resource(&path);
            assert_eq!((k.as_deref(), i.as_deref()), (kind, id), "{path}");
            let got = user_of(k.as_deref(), i.as_deref(), location);
            assert_eq!(got.map(|g| g.to_string()).as_deref(), user, "{path}");
        }
    }
}
