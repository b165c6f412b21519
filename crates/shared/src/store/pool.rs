//! Pooled connections that are checked only when there is a reason to
//! doubt them. r2d2 either checks every checkout (a `SELECT 1` round trip
//! per request, a third of a lookup's database work) or never; this
//! manager checks a connection when it was idle for longer than
//! [`TRUSTED_FOR`] or any query on it failed since its last check.
//!
//! The price: after a database restart, a connection that was busy until
//! then fails the one request that finds it dead (the ingress answers 503,
//! the processor retries its batch) before the next checkout replaces it.
//!
//! Every connection gets a `statement_timeout`, so no statement (a
//! pathological filter, a lock held by someone else) holds a pooled
//! connection for longer.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{Connection, InstrumentationEvent, SimpleConnection};
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Error, ManageConnection};

/// How long after its last use a connection is handed out unchecked.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

pub struct Manager {
    inner: ConnectionManager<PgConnection>,
    statement_timeout: Duration,
}

impl Manager {
    pub fn new(url: &str, statement_timeout: Duration) -> Self {
        Self {
            inner: ConnectionManager::new(url),
            statement_timeout,
        }
    }
}

/// A pooled PostgreSQL connection; use it as a `PgConnection`.
pub struct Checked {
    conn: PgConnection,
    /// Set by the connection's instrumentation when a query fails.
    failed: Arc<AtomicBool>,
    trusted_until: Instant,
}

impl Deref for Checked {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Checked {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl ManageConnection for Manager {
    type Connection = Checked;
    type Error = Error;

    fn connect(&self) -> Result<Checked, Error> {
        let mut conn = self.inner.connect()?;
        conn.batch_execute(&format!(
            "SET statement_timeout = {}",
            self.statement_timeout.as_millis().max(1)
        ))
        .map_err(Error::QueryError)?;
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::FinishQuery { error: Some(_), .. } = event {
                flag.store(true, Ordering::Relaxed);
            }
        });
        Ok(Checked {
            conn,
            failed,
            trusted_until: Instant::now() + TRUSTED_FOR,
        })
    }

    fn is_valid(&self, c: &mut Checked) -> Result<(), Error> {
        if !c.failed.load(Ordering::Relaxed) && Instant::now() < c.trusted_until {
            return Ok(());
        }
        self.inner.is_valid(&mut c.conn)?;
        c.failed.store(false, Ordering::Relaxed);
        c.trusted_until = Instant::now() + TRUSTED_FOR;
        Ok(())
    }

    /// Called as a connection goes back to the pool.
    fn has_broken(&self, c: &mut Checked) -> bool {
        c.trusted_until = Instant::now() + TRUSTED_FOR;
        self.inner.has_broken(&mut c.conn)
    }
}
