//! The consumer loop, as small stages over one batch at a time:
//!
//! 1. **receive**: messages off the command topic, split into commands
//!    (`scimflow_bus::Received`), into the read-ahead window, bounded by count and
//!    bytes (`Pipeline::fill`);
//! 2. **window**: the next batch, shared fairly between tenants (`fair`);
//! 3. **apply**: one transaction, retried, isolated or dead-lettered as
//!    `policy::decide` says (`Pipeline::apply`);
//! 4. **reply**: the outcomes to each ingress waiting for them (`reply`);
//! 5. **commit**: the offsets below which everything is applied (`commit`).
//!
//! Sentry's arroyo (its strategies and `DlqPolicy`) is the model: each
//! stage does one thing, and what happens to a message that fails is one
//! policy's decision, not the loop's.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use scimflow_bus::{self as bus, CommandSource, IdleWatchdog, Paused, Publisher, Topics};
use tokio::sync::watch;

use scimflow_shared::command::{self, Outcome, ReplyBatch, ReplyShape};
use scimflow_shared::config::Config;
use scimflow_shared::store::{self, PgPool, StoreError};

use crate::batch::{
    dead_letter_alone, panic_message, run_batch, BatchError, BatchSettings, Disposition, Inbound,
};
use crate::fair::{Position, Window};
use crate::policy::{decide, Attempt, Decision, Failure, HoldState, Mode};
use crate::{health, metrics, relay};

/// How far the processor reads ahead of what it has applied, in batches:
/// the span over which tenants share its capacity fairly (`fair.rs`).
const WINDOW_BATCHES: usize = 10;

/// Run the processor until `shutdown` turns true: finish the batch in
/// hand, commit it, leave the group.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let pool = store::connect_pool(
        &config.database_url,
        config.db_pool_size.min(8),
        config.db_statement_timeout,
    )
    .context("connecting to PostgreSQL")?;
    let topics = Topics::new(&config.topic_prefix);
    bus::ensure_topics(
        &config.kafka,
        &[
            (topics.commands(), config.command_partitions),
            (topics.dead_letters(), config.command_partitions),
            (topics.user_changes(), config.command_partitions),
            (topics.group_changes(), config.command_partitions),
        ],
        config.max_message_bytes,
    )
    .await
    .context("creating topics")?;

    let source =
        CommandSource::subscribe(&config.kafka, &config.consumer_group, &topics.commands())
            .context("joining the consumer group on the command topic")?;
    let publisher = Publisher::connect(&config.kafka, config.max_message_bytes)
        .context("creating the Kafka producer")?;

    let relay = tokio::spawn(relay::run(
        config.database_url.clone(),
        config.kafka.clone(),
        publisher.clone(),
        config.max_message_bytes,
        shutdown.clone(),
    ));
    tracing::info!(group = %config.consumer_group, topic = %topics.commands(), "processor started");

    metrics::init();
    bus::stats::observe_build_info();
    let readiness = scimflow_shared::metrics::Readiness::new();
    health::follow(
        pool.clone(),
        source.membership(),
        readiness.clone(),
        shutdown.clone(),
    );
    scimflow_shared::metrics::serve_admin(
        config.processor_admin_addr,
        pool.clone(),
        readiness,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("binding the admin listener {}", config.processor_admin_addr))?;

    consume(&config, pool, source, publisher, shutdown).await;
    let _ = relay.await;
    Ok(())
}

/// The consumer loop over `source`, replying through `publisher`, until
/// `shutdown` turns true; then it leaves the group. `run` calls it once it
/// has joined; tests run it on the in-memory bus (`scimflow_bus::fake`).
pub async fn consume(
    config: &Config,
    pool: PgPool,
    source: CommandSource,
    publisher: Publisher,
    mut shutdown: watch::Receiver<bool>,
) {
    let topics = Topics::new(&config.topic_prefix);
    let mut pipeline = Pipeline {
        inbox: Inbox {
            window: Window::default(),
            membership: source.membership(),
        },
        source,
        publisher,
        pool,
        topics: Arc::new(topics),
        batch_max: config.batch_max,
        batch_linger: config.batch_linger,
        window_max: config.batch_max.saturating_mul(WINDOW_BATCHES),
        window_bytes: config.read_ahead_bytes,
    };
    let mut last_gauges = std::time::Instant::now();
    let mut watchdog = IdleWatchdog::default();
    let mut watchdog_tick = tokio::time::interval(IdleWatchdog::INTERVAL);
    loop {
        // Asked to stop with commands still read ahead: leave them; they are
        // not committed, so the partitions' next owner reads them again.
        if *shutdown.borrow() {
            break;
        }
        if pipeline.inbox.window.is_empty() {
            // The stop branch yields nothing it borrowed, so the loop's
            // future stays Send (its guard would be held across the other
            // branches' awaits).
            let stop = async {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            let first = tokio::select! {
                _ = stop => break,
                m = pipeline.source.recv() => m,
                _ = watchdog_tick.tick() => {
                    pipeline.source.rejoin_if_abandoned(&mut watchdog);
                    // Idle: refresh the gauges, or they keep the last busy
                    // moment's lag and backlog.
                    pipeline.observe_lag().await;
                    continue;
                }
            };
            match first {
                Ok(m) => pipeline.inbox.receive(m),
                Err(e) => {
                    tracing::warn!(error = %e, "kafka receive error");
                    continue;
                }
            }
        }
        pipeline.fill().await;
        let batch = pipeline.take_batch();
        if batch.is_empty() {
            continue;
        }
        let inbound: Vec<Inbound> = batch.iter().map(|r| r.inbound.clone()).collect();
        let Some(dispositions) = pipeline.apply(&inbound, &mut shutdown).await else {
            // Shutting down mid-retry: nothing committed, nothing acknowledged;
            // the next owner of these partitions starts from the same offsets.
            break;
        };
        metrics::BATCH_SIZE.observe(inbound.len() as f64);
        metrics::COMMANDS.inc_by(inbound.len() as u64);
        let dead = dispositions
            .iter()
            .filter(|d| matches!(d, Disposition::DeadLettered { .. }))
            .count();
        metrics::DEAD_LETTERS.inc_by(dead as u64);
        let reply_to: Vec<Option<String>> = batch.iter().map(|r| r.reply_to.clone()).collect();
        reply(&pipeline.publisher, &reply_to, &dispositions);
        pipeline.inbox.forget_revoked();
        commit(&pipeline.source, &inbound, &pipeline.inbox.window);
        if last_gauges.elapsed() >= GAUGE_INTERVAL {
            last_gauges = std::time::Instant::now();
            pipeline.observe_lag().await;
        }
    }
    tracing::info!("processor stopping: leaving the consumer group");
    pipeline.source.leave();
}

/// What the stages share: the clients, and the window of commands read
/// ahead.
struct Pipeline {
    source: CommandSource,
    publisher: Publisher,
    pool: PgPool,
    topics: Arc<Topics>,
    inbox: Inbox,
    batch_max: usize,
    batch_linger: Duration,
    /// Read-ahead bounds: commands, and payload bytes.
    window_max: usize,
    window_bytes: usize,
}

impl Pipeline {
    /// Receive: linger for a full batch; past that, read ahead only what
    /// has already arrived, while the window has room.
    async fn fill(&mut self) {
        let linger_until = tokio::time::Instant::now() + self.batch_linger;
        while self
            .inbox
            .window
            .has_room(self.window_max, self.window_bytes)
        {
            let until = if self.inbox.window.len() >= self.batch_max {
                tokio::time::Instant::now()
            } else {
                linger_until
            };
            match tokio::time::timeout_at(until, self.source.recv()).await {
                Ok(Ok(m)) => self.inbox.receive(m),
                Ok(Err(e)) => tracing::warn!(error = %e, "kafka receive error"),
                Err(_) => break,
            }
        }
    }

    /// Window: the next batch, round-robin across tenants.
    fn take_batch(&mut self) -> Vec<Received> {
        self.inbox.forget_revoked();
        let batch: Vec<Received> = self
            .inbox
            .window
            .take_batch(self.batch_max)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if !batch.is_empty() {
            tracing::debug!(
                size = batch.len(),
                still_waiting = self.inbox.window.len(),
                waiting_bytes = self.inbox.window.bytes(),
                "batch taken"
            );
        }
        batch
    }

    /// Apply: run the batch until it commits, as `policy::decide` says:
    /// retried whole with back-off, then isolated (each command behind its
    /// own boundary, so the one that fails is dead-lettered), then one
    /// command at a time. Outages are retried without end. Returns `None`
    /// only when asked to shut down first.
    async fn apply(
        &mut self,
        batch: &[Inbound],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<Disposition>> {
        let mut attempt = Attempt {
            failed: 0,
            mode: Mode::Whole,
        };
        let mut waits = Waits::new();
        loop {
            let started = std::time::Instant::now();
            let e = match self.attempt(batch, attempt).await {
                Ok(dispositions) => {
                    metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
                    waits.resume(&self.source);
                    return Some(dispositions);
                }
                Err(e) => e,
            };
            let failure = e.failure();
            let decision = decide(attempt, failure, HoldState::Free);
            tracing::warn!(error = %e, ?failure, ?decision, failed = attempt.failed, mode = ?attempt.mode, size = batch.len(), "batch failed");
            metrics::RETRIES.inc();
            match decision {
                Decision::Isolate if attempt.mode == Mode::Whole => {
                    attempt = Attempt {
                        failed: attempt.failed + 1,
                        mode: Mode::Isolated,
                    };
                    continue;
                }
                Decision::Isolate => {
                    let done = self.one_by_one(batch, &mut waits, shutdown).await;
                    waits.resume(&self.source);
                    return done;
                }
                _ => {
                    if failure != Failure::Outage {
                        attempt.failed += 1;
                    }
                }
            }
            if waits.wait(&self.source, &mut self.inbox, shutdown).await {
                return None;
            }
        }
    }

    /// Each command as a batch of its own: a failure an isolated batch
    /// could not pin on one command is pinned on it here, and it is
    /// dead-lettered alone, in a transaction of its own.
    async fn one_by_one(
        &mut self,
        batch: &[Inbound],
        waits: &mut Waits,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<Disposition>> {
        let mut out = Vec::with_capacity(batch.len());
        for msg in batch {
            let mut attempt = Attempt {
                failed: 0,
                mode: Mode::Alone,
            };
            loop {
                let e = match self.attempt(std::slice::from_ref(msg), attempt).await {
                    Ok(d) => {
                        out.extend(d);
                        break;
                    }
                    Err(e) => e,
                };
                let failure = e.failure();
                let decision = decide(attempt, failure, HoldState::Free);
                tracing::warn!(error = %e, ?failure, ?decision, failed = attempt.failed, offset = msg.offset, "command failed alone");
                if matches!(decision, Decision::DeadLetter | Decision::Hold) {
                    out.push(
                        self.dead_letter_alone(msg, attempt, &e, waits, shutdown)
                            .await?,
                    );
                    break;
                }
                if failure != Failure::Outage {
                    attempt.failed += 1;
                }
                if waits.wait(&self.source, &mut self.inbox, shutdown).await {
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A dead letter for `msg` in a transaction of its own; recording it
    /// is retried like an outage (it is one, if it fails).
    async fn dead_letter_alone(
        &mut self,
        msg: &Inbound,
        attempt: Attempt,
        error: &BatchError,
        waits: &mut Waits,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Disposition> {
        let detail = error.to_string();
        loop {
            let (pool, topics, msg2, detail2) = (
                self.pool.clone(),
                self.topics.clone(),
                msg.clone(),
                detail.clone(),
            );
            let recorded = tokio::task::spawn_blocking(move || {
                let mut conn = pool.get()?;
                dead_letter_alone(&mut conn, &topics, attempt, &msg2, &detail2)
            })
            .await;
            match recorded {
                Ok(Ok(d)) => return Some(d),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not record a dead letter; retrying")
                }
                Err(e) => tracing::error!(error = %e, "recording a dead letter failed; retrying"),
            }
            if waits.wait(&self.source, &mut self.inbox, shutdown).await {
                return None;
            }
        }
    }

    /// One attempt at a batch, on a blocking thread. A panic anywhere in
    /// it is caught and returned as the batch's failure; the connection it
    /// held is discarded (the pool drops a connection given back while
    /// panicking or inside a transaction).
    async fn attempt(
        &self,
        batch: &[Inbound],
        attempt: Attempt,
    ) -> Result<Vec<Disposition>, BatchError> {
        let (pool, topics, batch) = (self.pool.clone(), self.topics.clone(), batch.to_vec());
        tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| {
                let mut conn = pool.get().map_err(StoreError::from)?;
                run_batch(
                    &mut conn,
                    &batch,
                    &BatchSettings {
                        topics: &topics,
                        attempt,
                    },
                )
            }))
            .unwrap_or_else(|panic| Err(BatchError::Panic(panic_message(&*panic))))
        })
        .await
        .unwrap_or_else(|join| Err(BatchError::Panic(join.to_string())))
    }

    /// Command topic lag per assigned partition, and the outbox backlog.
    /// Commands read ahead into the window count as lag: they are not
    /// applied.
    async fn observe_lag(&self) {
        observe_lag(&self.source, &self.pool, &self.inbox.window).await
    }
}

/// The back-off between attempts. While it waits, the assigned partitions
/// are paused and the consumer keeps polling, so a long outage does not
/// exceed `max.poll.interval.ms` and evict this member; anything already
/// fetched is kept in the window.
struct Waits {
    backoff: ExponentialBackoff,
    paused: Option<Paused>,
}

impl Waits {
    fn new() -> Self {
        Waits {
            backoff: ExponentialBackoff {
                initial_interval: Duration::from_millis(50),
                max_interval: Duration::from_secs(5),
                max_elapsed_time: None,
                ..ExponentialBackoff::default()
            },
            paused: None,
        }
    }

    /// Wait out the next back-off; true when asked to shut down.
    async fn wait(
        &mut self,
        source: &CommandSource,
        inbox: &mut Inbox,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if self.paused.is_none() {
            match source.pause() {
                Ok(paused) => self.paused = Some(paused),
                Err(e) => tracing::warn!(error = %e, "could not pause partitions"),
            }
        }
        let wait = self
            .backoff
            .next_backoff()
            .unwrap_or(Duration::from_secs(5));
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return true,
                _ = tokio::time::sleep_until(until) => return false,
                m = source.recv() => match m {
                    Ok(m) => inbox.receive(m),
                    Err(e) => tracing::warn!(error = %e, "kafka receive error while retrying"),
                },
            }
        }
    }

    fn resume(&mut self, source: &CommandSource) {
        if let Some(paused) = self.paused.take() {
            if let Err(e) = source.resume(paused) {
                tracing::warn!(error = %e, "could not resume partitions");
            }
        }
    }
}

/// How often lag and outbox backlog are measured (they cost a broker and a
/// database round trip).
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Command topic lag per assigned partition, and the outbox backlog.
/// Commands read ahead into the window count as lag: they are not applied.
async fn observe_lag(source: &CommandSource, pool: &PgPool, window: &Window<Received>) {
    for (partition, lag) in source.lag(|p| window.commit_offset(p)) {
        metrics::LAG
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }
    let pool = pool.clone();
    if let Ok(Ok(n)) =
        tokio::task::spawn_blocking(move || -> Result<i64, scimflow_shared::store::StoreError> {
            let mut conn = pool.get()?;
            scimflow_shared::store::outbox::outbox_backlog(&mut conn)
        })
        .await
    {
        metrics::OUTBOX_BACKLOG.set(n);
    }
}

/// A command as received, owned, with the reply topic from its message's
/// headers.
struct Received {
    inbound: Inbound,
    reply_to: Option<String>,
}

/// Received commands waiting to be applied, and the partitions this member
/// lost since they were received.
struct Inbox {
    window: Window<Received>,
    membership: bus::Membership,
}

impl Inbox {
    /// Rebalances run inside `recv`, so anything revoked is forgotten before
    /// the message that `recv` returned (possibly a redelivery from the
    /// committed offset of a partition just assigned again) is added.
    fn receive(&mut self, m: bus::Received) {
        self.forget_revoked();
        let reply_to = m.reply_to;
        for inbound in m.commands {
            let at = Position {
                partition: inbound.partition,
                offset: inbound.offset,
                tenant: Position::tenant_of(inbound.key.as_deref()),
            };
            let reply_to = reply_to.clone();
            let bytes = inbound.payload.len();
            self.window.push(at, Received { inbound, reply_to }, bytes);
        }
    }

    fn forget_revoked(&mut self) {
        let revoked = self.membership.take_revoked();
        if !revoked.is_empty() {
            self.window.revoke(&revoked);
        }
    }
}

/// Reply: one message per reply topic for the whole batch
/// (`ReplyBatch`), outcomes in command order, each small enough to go.
fn reply(publisher: &Publisher, reply_to: &[Option<String>], dispositions: &[Disposition]) {
    let mut by_topic: BTreeMap<&str, Vec<Cow<'_, Outcome>>> = BTreeMap::new();
    for (topic, disposition) in reply_to.iter().zip(dispositions) {
        let Some(topic) = topic else { continue };
        let outcome = match disposition {
            Disposition::Answered(o) => Cow::Borrowed(o),
            Disposition::DeadLettered {
                command_id: Some(id),
                dead_letter_id,
            } => Cow::Owned(Outcome::dead_lettered(*id, *dead_letter_id)),
            Disposition::DeadLettered {
                command_id: None, ..
            } => continue,
        };
        by_topic
            .entry(topic)
            .or_default()
            .push(fit_for_reply(outcome, ReplyBatch::MAX_BYTES));
    }
    for (topic, outcomes) in by_topic {
        let messages =
            match ReplyBatch::encode(outcomes.iter().map(|o| &**o), ReplyBatch::MAX_BYTES) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "could not encode replies");
                    continue;
                }
            };
        for payload in messages {
            // A lost reply costs the IdP a 503 and a retry, never data: the
            // outcomes are already committed.
            if let Err(e) = publisher.publish_replies(topic, &payload) {
                tracing::warn!(error = %e, "could not enqueue a reply");
            }
        }
    }
}

/// An outcome that fits in a reply message of `max_bytes`. A larger one
/// (the producer would refuse it, and the IdP would wait for nothing):
/// a success goes back without its resource, which the IdP can GET (its
/// status, ETag and Location stay); an error with a short body of the same
/// status. Either way the stored outcome is whole.
fn fit_for_reply(outcome: Cow<'_, Outcome>, max_bytes: usize) -> Cow<'_, Outcome> {
    // The envelope `{"outcomes":[...]}` around one outcome.
    const FRAME: usize = 16;
    let size = serde_json::to_vec(&*outcome).map_or(usize::MAX, |v| v.len());
    if size + FRAME <= max_bytes {
        return outcome;
    }
    let outcome = outcome.into_owned();
    tracing::warn!(command_id = %outcome.command_id, size, "an outcome too large to reply with; sent without its body");
    let detail = "the answer was too large to send back; the change, if any, is committed";
    match outcome.disposition.error() {
        None => Cow::Owned(outcome.shaped(ReplyShape::WithoutResource)),
        Some(error) => Cow::Owned(Outcome {
            disposition: command::Disposition::Rejected(error.reduced(detail)),
            ..outcome
        }),
    }
}

/// Commit, for every partition in the batch, the offset below which
/// everything is applied (`Window::commit_offset`). Called only after the
/// batch's transaction committed.
fn commit(source: &CommandSource, batch: &[Inbound], window: &Window<Received>) {
    let partitions: BTreeSet<i32> = batch.iter().map(|m| m.partition).collect();
    // None: revoked meanwhile; its new owner commits it.
    let offsets: Vec<(i32, i64)> = partitions
        .into_iter()
        .filter_map(|p| window.commit_offset(p).map(|o| (p, o)))
        .collect();
    // If this commit is lost (a rebalance, a crash), the commands are
    // delivered again and answered from their dedup records (P3).
    if let Err(e) = source.commit(&offsets) {
        tracing::warn!(error = %e, "offset commit failed; the batch will be redelivered and deduplicated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_shared::command::Disposition;
    use scimflow_shared::ScimError;
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn an_outcome_too_large_for_a_reply_goes_back_without_its_body() {
        let outcome = |status: u16, pad: usize| {
            let disposition = match status {
                201 => Disposition::Created,
                200 => Disposition::Ok,
                _ => Disposition::Rejected(ScimError::new(status, None, "x".repeat(pad))),
            };
            Outcome {
                command_id: Uuid::from_u128(1),
                disposition,
                resource: Some(json!({"id": "1", "pad": "x".repeat(pad)})),
                etag: Some("W/\"3\"".into()),
                location: Some("http://h/Users/1".into()),
            }
        };
        // (status, body padding, most bytes, body kept whole)
        let cases: &[(u16, usize, usize, bool)] = &[
            (201, 10, 1024, true),
            (200, 10, 1024, true),
            (201, 5_000, 1024, false),
            (200, 600 * 1024, ReplyBatch::MAX_BYTES, false),
            (400, 10, 1024, true),
            (400, 5_000, 1024, false),
        ];
        for &(status, pad, max, whole) in cases {
            let original = outcome(status, pad);
            let fitted = fit_for_reply(Cow::Borrowed(&original), max).into_owned();
            assert_eq!(fitted == original, whole, "{status} with {pad} bytes");
            // What goes back always fits, and keeps the status, the ETag
            // and the Location the IdP needs to GET the resource.
            let encoded = ReplyBatch::encode([&fitted], max).expect("encodes");
            assert!(
                encoded.iter().all(|m| m.len() <= max),
                "{status} with {pad} bytes"
            );
            assert_eq!(
                (fitted.status(), &fitted.etag, &fitted.location),
                (original.status(), &original.etag, &original.location)
            );
            if status >= 400 && !whole {
                let body = fitted.disposition.error().map(|e| e.to_body());
                assert_eq!(
                    body.as_ref().map(|b| &b["status"]),
                    Some(&json!(status.to_string()))
                );
            }
        }
    }
}
