//! The consume → apply → reply → commit loop.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use scimflow_shared::command::{CommandBatch, Outcome, ReplyBatch};
use scimflow_shared::config::Config;
use scimflow_shared::store::{self, PgPool};
use scimflow_shared::ScimError;

use crate::batch::{run_batch, BatchSettings, Disposition, Inbound};
use crate::fair::{Position, Window};
use crate::{health, metrics, relay};

/// Failed attempts of one batch before commands that keep failing with a
/// database error are dead-lettered one by one instead.
const ATTEMPTS_BEFORE_ISOLATING: u32 = 5;

/// How far the processor reads ahead of what it has applied, in batches:
/// the span over which tenants share its capacity fairly (`fair.rs`).
const WINDOW_BATCHES: usize = 10;

/// Run the processor until `shutdown` turns true: finish the batch in
/// hand, commit it, leave the group.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let pool = store::connect_pool(&config.database_url, config.db_pool_size.min(8))
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
    let producer: bus::Producer = bus::producer_config(&config.kafka)
        .create_with_context(bus::ClientStats)
        .context("creating the Kafka producer")?;

    let relay = tokio::spawn(relay::run(
        config.database_url.clone(),
        config.kafka.clone(),
        producer.clone(),
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

    let topics = Arc::new(topics);
    let mut inbox = Inbox {
        window: Window::default(),
        revoked,
    };
    let window_max = config.batch_max.saturating_mul(WINDOW_BATCHES);
    let mut last_gauges = std::time::Instant::now();
    let mut watchdog = IdleWatchdog::default();
    let mut watchdog_tick = tokio::time::interval(IdleWatchdog::INTERVAL);
    loop {
        // Asked to stop with commands still read ahead: leave them; they are
        // not committed, so the partitions' next owner reads them again.
        if *shutdown.borrow() {
            break;
        }
        if inbox.window.is_empty() {
            let first = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                m = consumer.recv() => m,
                _ = watchdog_tick.tick() => {
                    watchdog.check(&consumer, &topics.commands());
                    // Idle: refresh the gauges, or they keep the last busy
                    // moment's lag and backlog.
                    observe_lag(&consumer, &pool, &inbox.window).await;
                    continue;
                }
            };
            match first {
                Ok(m) => inbox.receive(&m),
                Err(e) => {
                    tracing::warn!(error = %e, "kafka receive error");
                    continue;
                }
            }
        }
        // Linger for a full batch; past that, read ahead only what has
        // already arrived, up to the window.
        let linger_until = tokio::time::Instant::now() + config.batch_linger;
        while inbox.window.len() < window_max {
            let until = if inbox.window.len() >= config.batch_max {
                tokio::time::Instant::now()
            } else {
                linger_until
            };
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(Ok(m)) => inbox.receive(&m),
                Ok(Err(e)) => tracing::warn!(error = %e, "kafka receive error"),
                Err(_) => break,
            }
        }
        inbox.forget_revoked();
        let batch: Vec<Received> = inbox
            .window
            .take_batch(config.batch_max)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if batch.is_empty() {
            continue;
        }
        tracing::debug!(
            size = batch.len(),
            still_waiting = inbox.window.len(),
            "batch taken"
        );
        let inbound: Vec<Inbound> = batch.iter().map(|r| r.inbound.clone()).collect();
        let Some(dispositions) = apply_with_retries(
            &consumer,
            &pool,
            &topics,
            inbound.clone(),
            &mut shutdown,
            &mut inbox,
        )
        .await
        else {
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
        send_replies(&producer, &reply_to, &dispositions);
        inbox.forget_revoked();
        commit(&consumer, &topics.commands(), &inbound, &inbox.window);
        if last_gauges.elapsed() >= GAUGE_INTERVAL {
            last_gauges = std::time::Instant::now();
            observe_lag(&consumer, &pool, &inbox.window).await;
        }
    }
    tracing::info!("processor stopping: leaving the consumer group");
    consumer.unsubscribe();
    let _ = relay.await;
    Ok(())
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
            self.window.push(at, Received { inbound, reply_to });
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

/// Apply a batch, retrying database failures with exponential backoff and
/// jitter. Between attempts the assigned partitions are paused and the
/// consumer keeps polling, so a long outage does not exceed
/// `max.poll.interval.ms` and evict this member; anything already fetched
/// is kept in the `inbox` window. Returns `None` only when asked to shut
/// down before the batch succeeded.
async fn apply_with_retries(
    consumer: &StreamConsumer<GroupContext>,
    pool: &PgPool,
    topics: &Arc<Topics>,
    batch: Vec<Inbound>,
    shutdown: &mut watch::Receiver<bool>,
    inbox: &mut Inbox,
) -> Option<Vec<Disposition>> {
    let batch = Arc::new(batch);
    let mut backoff = ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let mut attempt: u32 = 0;
    let mut paused: Option<TopicPartitionList> = None;
    let result = loop {
        let (pool, topics, batch2) = (pool.clone(), topics.clone(), batch.clone());
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            run_batch(
                &mut conn,
                &batch2,
                &BatchSettings {
                    topics: &topics,
                    isolate_failures: attempt >= ATTEMPTS_BEFORE_ISOLATING,
                    attempt,
                },
            )
        })
        .await;
        match result {
            Ok(Ok(dispositions)) => {
                metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
                break Some(dispositions);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, attempt, size = batch.len(), "batch failed; retrying");
                // A lost connection is not the commands' fault: keep retrying
                // without counting towards isolation.
                if !e.is_connection_lost() {
                    attempt += 1;
                }
            }
            Err(join) => {
                tracing::error!(error = %join, "batch task failed; retrying");
                attempt += 1;
            }
        }
        metrics::RETRIES.inc();
        if paused.is_none() {
            if let Ok(assignment) = consumer.assignment() {
                if let Err(e) = consumer.pause(&assignment) {
                    tracing::warn!(error = %e, "could not pause partitions");
                }
                paused = Some(assignment);
            }
        }
        let wait = backoff.next_backoff().unwrap_or(Duration::from_secs(5));
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return None,
                _ = tokio::time::sleep_until(until) => break,
                m = consumer.recv() => match m {
                    Ok(m) => inbox.receive(&m),
                    Err(e) => tracing::warn!(error = %e, "kafka receive error while retrying"),
                },
            }
        }
    };
    if let Some(assignment) = paused {
        if let Err(e) = consumer.resume(&assignment) {
            tracing::warn!(error = %e, "could not resume partitions");
        }
    }
    result
}

/// One reply message per reply topic for the whole batch (`ReplyBatch`),
/// outcomes in command order.
fn send_replies(
    producer: &bus::Producer,
    reply_to: &[Option<String>],
    dispositions: &[Disposition],
) {
    let mut by_topic: BTreeMap<&str, Vec<Cow<'_, Outcome>>> = BTreeMap::new();
    for (topic, disposition) in reply_to.iter().zip(dispositions) {
        let Some(topic) = topic else { continue };
        let outcome = match disposition {
            Disposition::Answered(o) => Cow::Borrowed(o),
            Disposition::DeadLettered {
                command_id: Some(id),
                dead_letter_id,
            } => Cow::Owned(Outcome::from_error(
                *id,
                &ScimError::internal(format!(
                    "the request could not be applied and is held for an operator (dead letter {dead_letter_id})"
                )),
            )),
            Disposition::DeadLettered { command_id: None, .. } => continue,
        };
        by_topic.entry(topic).or_default().push(outcome);
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
