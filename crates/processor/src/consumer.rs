//! The consumer loop, as small stages over one batch at a time:
//!
//! 1. **receive**: messages off the command topic, split into commands
//!    (`commands_of`), into the read-ahead window, bounded by count and
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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use scimflow_shared::bus::{self, headers, Topics};
use scimflow_shared::command::{self, CommandBatch, Outcome, ReplyBatch, ReplyShape};
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
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
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

    let group = GroupContext::default();
    let revoked = group.revoked.clone();
    let assignment = group.assignment.clone();
    let consumer: StreamConsumer<GroupContext> =
        bus::group_consumer_config(&config.kafka, &config.consumer_group)
            .create_with_context(group)
            .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&topics.commands()])
        .context("subscribing to the command topic")?;
    let producer: bus::Producer = bus::producer_config(&config.kafka, config.max_message_bytes)
        .create_with_context(bus::ClientStats)
        .context("creating the Kafka producer")?;

    let relay = tokio::spawn(relay::run(
        config.database_url.clone(),
        config.kafka.clone(),
        producer.clone(),
        config.max_message_bytes,
        shutdown.clone(),
    ));
    tracing::info!(group = %config.consumer_group, topic = %topics.commands(), "processor started");

    metrics::init();
    let readiness = scimflow_shared::metrics::Readiness::new();
    health::follow(
        pool.clone(),
        assignment,
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

    let mut pipeline = Pipeline {
        consumer,
        producer,
        pool,
        topics: Arc::new(topics),
        inbox: Inbox {
            window: Window::default(),
            revoked,
        },
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
            let first = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                m = pipeline.consumer.recv() => m,
                _ = watchdog_tick.tick() => {
                    watchdog.check(&pipeline.consumer, &pipeline.topics.commands());
                    // Idle: refresh the gauges, or they keep the last busy
                    // moment's lag and backlog.
                    pipeline.observe_lag().await;
                    continue;
                }
            };
            match first {
                Ok(m) => pipeline.inbox.receive(&m),
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
        reply(&pipeline.producer, &reply_to, &dispositions);
        pipeline.inbox.forget_revoked();
        commit(
            &pipeline.consumer,
            &pipeline.topics.commands(),
            &inbound,
            &pipeline.inbox.window,
        );
        if last_gauges.elapsed() >= GAUGE_INTERVAL {
            last_gauges = std::time::Instant::now();
            pipeline.observe_lag().await;
        }
    }
    tracing::info!("processor stopping: leaving the consumer group");
    pipeline.consumer.unsubscribe();
    let _ = relay.await;
    Ok(())
}

/// What the stages share: the clients, and the window of commands read
/// ahead.
struct Pipeline {
    consumer: StreamConsumer<GroupContext>,
    producer: bus::Producer,
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
            match tokio::time::timeout_at(until, self.consumer.recv()).await {
                Ok(Ok(m)) => self.inbox.receive(&m),
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
                    waits.resume(&self.consumer);
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
                    waits.resume(&self.consumer);
                    return done;
                }
                _ => {
                    if failure != Failure::Outage {
                        attempt.failed += 1;
                    }
                }
            }
            if waits.wait(&self.consumer, &mut self.inbox, shutdown).await {
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
                if waits.wait(&self.consumer, &mut self.inbox, shutdown).await {
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
            if waits.wait(&self.consumer, &mut self.inbox, shutdown).await {
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
        observe_lag(&self.consumer, &self.pool, &self.inbox.window).await
    }
}

/// The back-off between attempts. While it waits, the assigned partitions
/// are paused and the consumer keeps polling, so a long outage does not
/// exceed `max.poll.interval.ms` and evict this member; anything already
/// fetched is kept in the window.
struct Waits {
    backoff: ExponentialBackoff,
    paused: Option<TopicPartitionList>,
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
        consumer: &StreamConsumer<GroupContext>,
        inbox: &mut Inbox,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if self.paused.is_none() {
            if let Ok(assignment) = consumer.assignment() {
                if let Err(e) = consumer.pause(&assignment) {
                    tracing::warn!(error = %e, "could not pause partitions");
                }
                self.paused = Some(assignment);
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
                m = consumer.recv() => match m {
                    Ok(m) => inbox.receive(&m),
                    Err(e) => tracing::warn!(error = %e, "kafka receive error while retrying"),
                },
            }
        }
    }

    fn resume(&mut self, consumer: &StreamConsumer<GroupContext>) {
        if let Some(assignment) = self.paused.take() {
            if let Err(e) = consumer.resume(&assignment) {
                tracing::warn!(error = %e, "could not resume partitions");
            }
        }
    }
}

/// Rejoins the group when this member has no partitions while commands
/// wait on partitions whose committed offsets have not moved for a while:
/// work nobody is doing. Real Kafka reassigns a dead member's partitions by
/// itself; tansu 0.6 can leave a member that joined while a crashed leader
/// was still within its session timeout with an empty assignment for good
/// (ARCHITECTURE.md). A member with no partitions and no stuck work never
/// rejoins, so idle spare processors cause no rebalances.
#[derive(Default)]
struct IdleWatchdog {
    stuck: HashMap<i32, (i64, std::time::Instant)>,
}

impl IdleWatchdog {
    const INTERVAL: Duration = Duration::from_secs(5);
    /// Twice the session timeout: longer than any healthy rebalance.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn check(&mut self, consumer: &StreamConsumer<GroupContext>, topic: &str) {
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned > 0 {
            self.stuck.clear();
            return;
        }
        let timeout = Duration::from_millis(500);
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), timeout) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
        let Ok(committed) = consumer.committed_offsets(tpl, timeout) else {
            return;
        };
        let now = std::time::Instant::now();
        let mut abandoned = false;
        for e in committed.elements() {
            let Ok((low, high)) = consumer.fetch_watermarks(topic, e.partition(), timeout) else {
                continue;
            };
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            if at >= high {
                self.stuck.remove(&e.partition());
                continue;
            }
            let since = self.stuck.entry(e.partition()).or_insert((at, now));
            if since.0 != at {
                *since = (at, now);
            } else if now.duration_since(since.1) > Self::PATIENCE {
                abandoned = true;
            }
        }
        if abandoned {
            tracing::warn!(
                "commands wait on partitions nobody consumes; rejoining the consumer group"
            );
            self.stuck.clear();
            consumer.unsubscribe();
            if let Err(e) = consumer.subscribe(&[topic]) {
                tracing::error!(error = %e, "could not rejoin the consumer group");
            }
        }
    }
}

/// How often lag and outbox backlog are measured (they cost a broker and a
/// database round trip).
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Command topic lag per assigned partition, and the outbox backlog.
/// Commands read ahead into the window count as lag: they are not applied.
async fn observe_lag(
    consumer: &StreamConsumer<GroupContext>,
    pool: &PgPool,
    window: &Window<Received>,
) {
    if let Ok(positions) = consumer.position() {
        for e in positions.elements() {
            let applied_up_to = window
                .commit_offset(e.partition())
                .map(Offset::Offset)
                .unwrap_or(e.offset());
            if let (Offset::Offset(pos), Ok((_, high))) = (
                applied_up_to,
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500)),
            ) {
                metrics::LAG
                    .with_label_values(&[&e.partition().to_string()])
                    .set((high - pos).max(0));
            }
        }
    }
    let pool = pool.clone();
    if let Ok(Ok(n)) =
        tokio::task::spawn_blocking(move || -> Result<i64, scimflow_shared::store::StoreError> {
            let mut conn = pool.get()?;
            scimflow_shared::store::commands::outbox_backlog(&mut conn)
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
    revoked: Arc<Mutex<BTreeSet<i32>>>,
}

impl Inbox {
    /// Rebalances run inside `recv`, so anything revoked is forgotten before
    /// the message that `recv` returned (possibly a redelivery from the
    /// committed offset of a partition just assigned again) is added.
    fn receive(&mut self, m: &BorrowedMessage<'_>) {
        self.forget_revoked();
        let reply_to = bus::header(m.headers(), headers::REPLY_TO);
        for inbound in commands_of(m) {
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
        let revoked: Vec<i32> = match self.revoked.lock() {
            Ok(mut set) => std::mem::take(&mut *set).into_iter().collect(),
            Err(_) => return,
        };
        if !revoked.is_empty() {
            self.window.revoke(&revoked);
        }
    }
}

/// Logs partition assignments (which processor owns which partitions is
/// the first thing to know when commands are not being applied) and
/// records revocations for the `Inbox`.
#[derive(Default)]
struct GroupContext {
    revoked: Arc<Mutex<BTreeSet<i32>>>,
    /// For `/readyz` (`health`).
    assignment: health::Assignment,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        scimflow_shared::metrics::observe_kafka_statistics(&statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let list = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| e.partition().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assignment
                    .assigned(tpl.elements().iter().map(|e| e.partition()));
                tracing::info!(partitions = %list(tpl), "partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                if let Ok(mut revoked) = self.revoked.lock() {
                    revoked.extend(tpl.elements().iter().map(|e| e.partition()));
                }
                self.assignment
                    .revoked(tpl.elements().iter().map(|e| e.partition()));
                tracing::info!(partitions = %list(tpl), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The commands of a message: one, or those of a `CommandBatch`, each with
/// its own key and sharing the message's offset. A batch that does not
/// split is kept whole, to be dead-lettered as undecodable.
fn commands_of(m: &BorrowedMessage<'_>) -> Vec<Inbound> {
    let payload = m.payload().unwrap_or_default();
    let inbound = |key: Option<String>, payload: Vec<u8>| Inbound {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key,
        payload,
    };
    if CommandBatch::is_batch(payload) {
        match CommandBatch::split(payload) {
            Ok(commands) if !commands.is_empty() => {
                return commands
                    .into_iter()
                    .map(|(key, envelope)| inbound(Some(key), envelope))
                    .collect();
            }
            Ok(_) => tracing::warn!(offset = m.offset(), "an empty command batch"),
            Err(e) => {
                tracing::warn!(error = %e, offset = m.offset(), "an undecodable command batch")
            }
        }
    }
    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
    vec![inbound(key, payload.to_vec())]
}

/// Reply: one message per reply topic for the whole batch
/// (`ReplyBatch`), outcomes in command order, each small enough to go.
fn reply(producer: &bus::Producer, reply_to: &[Option<String>], dispositions: &[Disposition]) {
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
            // A reply topic has one partition, which its ingress reads.
            let record = FutureRecord::<(), _>::to(topic)
                .partition(0)
                .payload(&payload);
            // A lost reply costs the IdP a 503 and a retry, never data: the
            // outcomes are already committed.
            if let Err((e, _)) = producer.send_result(record) {
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
fn commit(
    consumer: &StreamConsumer<GroupContext>,
    topic: &str,
    batch: &[Inbound],
    window: &Window<Received>,
) {
    let partitions: BTreeSet<i32> = batch.iter().map(|m| m.partition).collect();
    let mut tpl = TopicPartitionList::new();
    for partition in partitions {
        // None: revoked meanwhile; its new owner commits it.
        let Some(offset) = window.commit_offset(partition) else {
            continue;
        };
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(error = %e, "bad offset");
        }
    }
    if tpl.count() == 0 {
        return;
    }
    // If this commit is lost (a rebalance, a crash), the commands are
    // delivered again and answered from their dedup records (P3).
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
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
