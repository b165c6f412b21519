//! The processor's source of commands: one member of the consumer group on
//! the command topic. It hands over each message split into its commands
//! (`Inbound`, one per command of a `CommandBatch`), each carrying the
//! partition and offset that are its commit token, and commits only the
//! offsets it is given, never on its own: the processor commits once the
//! transaction that applied everything below them has committed (P1).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{Offset, TopicPartitionList};
use scimflow_core::command::CommandBatch;

use crate::fake::{FakeBus, Subscription};
use crate::tail::Message;
use crate::{group_consumer_config, headers, BusError, KafkaSettings};
use scimflow_core::trace_context::{self, TraceContext};

/// A command as it came off the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// The W3C trace context the message carried, if well-formed.
    pub trace: Option<TraceContext>,
}

/// The commands of one message, and the topic their outcomes go to.
#[derive(Debug, Clone)]
pub struct Received {
    pub reply_to: Option<String>,
    pub commands: Vec<Inbound>,
}

impl Received {
    /// The commands of a message: one, or those of a `CommandBatch`, each
    /// with its own key and sharing the message's offset. A batch that
    /// does not split is kept whole, to be dead-lettered as undecodable.
    pub fn of(m: Message) -> Self {
        let reply_to = m.header(headers::REPLY_TO).map(str::to_string);
        let trace =
            trace_context::extract(m.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        let inbound = |key: Option<String>, payload: Vec<u8>| Inbound {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
            key,
            payload,
            trace: trace.clone(),
        };
        if CommandBatch::is_batch(&m.payload) {
            match CommandBatch::split(&m.payload) {
                Ok(commands) if !commands.is_empty() => {
                    let commands = commands
                        .into_iter()
                        .map(|(key, envelope)| inbound(Some(key), envelope))
                        .collect();
                    return Received { reply_to, commands };
                }
                Ok(_) => tracing::warn!(offset = m.offset, "an empty command batch"),
                Err(e) => {
                    tracing::warn!(error = %e, offset = m.offset, "an undecodable command batch")
                }
            }
        }
        let whole = inbound(m.key.clone(), Vec::new());
        let commands = vec![Inbound {
            payload: m.payload,
            ..whole
        }];
        Received { reply_to, commands }
    }
}

/// This member's partitions of the command topic, as the last rebalance
/// left them (`None` until the first assignment), and those it lost since
/// the consumer loop last looked. Rebalances run inside `recv`.
#[derive(Debug, Default, Clone)]
pub struct Membership {
    assigned: Arc<Mutex<Option<BTreeSet<i32>>>>,
    revoked: Arc<Mutex<BTreeSet<i32>>>,
}

impl Membership {
    /// The eager protocol hands a member its whole assignment at once.
    pub fn assigned(&self, partitions: impl IntoIterator<Item = i32>) {
        if let Ok(mut a) = self.assigned.lock() {
            *a = Some(partitions.into_iter().collect());
        }
    }

    pub fn revoked(&self, partitions: impl IntoIterator<Item = i32> + Clone) {
        if let Ok(mut r) = self.revoked.lock() {
            r.extend(partitions.clone());
        }
        if let Ok(mut a) = self.assigned.lock() {
            if let Some(set) = a.as_mut() {
                for p in partitions {
                    set.remove(&p);
                }
            }
        }
    }

    /// The current assignment (`None`: none yet).
    pub fn assignment(&self) -> Option<BTreeSet<i32>> {
        self.assigned.lock().ok().and_then(|a| a.clone())
    }

    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<i32> {
        match self.revoked.lock() {
            Ok(mut set) => std::mem::take(&mut *set).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Logs partition assignments (which processor owns which partitions is
/// the first thing to know when commands are not being applied) and
/// records them in the `Membership`.
struct GroupContext(Membership);

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        crate::stats::observe_statistics(&statistics);
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
        let partitions = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| e.partition())
                .collect::<Vec<_>>()
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.0.assigned(partitions(tpl));
                tracing::info!(partitions = %list(tpl), "partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                self.0.revoked(partitions(tpl));
                tracing::info!(partitions = %list(tpl), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The command topic as one group member reads it.
pub struct CommandSource {
    via: Via,
    topic: String,
    membership: Membership,
}

enum Via {
    Kafka(StreamConsumer<GroupContext>),
    Fake(FakeSource),
}

struct FakeSource {
    bus: FakeBus,
    group: String,
    cursor: tokio::sync::Mutex<Subscription>,
}

/// Partitions paused while the processor backs off (`CommandSource::pause`).
pub struct Paused(Option<TopicPartitionList>);

impl CommandSource {
    /// Join `group` on `topic`.
    pub fn subscribe(kafka: &KafkaSettings, group: &str, topic: &str) -> Result<Self, BusError> {
        let membership = Membership::default();
        let consumer: StreamConsumer<GroupContext> = group_consumer_config(kafka, group)
            .create_with_context(GroupContext(membership.clone()))?;
        consumer.subscribe(&[topic])?;
        Ok(CommandSource {
            via: Via::Kafka(consumer),
            topic: topic.to_string(),
            membership,
        })
    }

    /// The only member of `group` on `topic` of the in-memory bus: every
    /// partition is its own, read from the group's committed offsets.
    pub fn fake(bus: &FakeBus, group: &str, topic: &str) -> Self {
        let membership = Membership::default();
        membership.assigned(0..bus.partitions(topic));
        CommandSource {
            via: Via::Fake(FakeSource {
                bus: bus.clone(),
                group: group.to_string(),
                cursor: tokio::sync::Mutex::new(bus.cursor_after_commits(group, topic)),
            }),
            topic: topic.to_string(),
            membership,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The assignment as rebalances leave it (readiness, revocations).
    pub fn membership(&self) -> Membership {
        self.membership.clone()
    }

    /// The next message, split into its commands.
    pub async fn recv(&self) -> Result<Received, BusError> {
        let message = match &self.via {
            Via::Kafka(c) => Message::of(&c.recv().await?),
            Via::Fake(f) => f.cursor.lock().await.next().await,
        };
        Ok(Received::of(message))
    }

    /// Commit, per partition, the offset of the next command to read (all
    /// below it applied). Asynchronous: a lost commit means a redelivery,
    /// which dedup answers (P3).
    pub fn commit(&self, offsets: &[(i32, i64)]) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        match &self.via {
            Via::Kafka(c) => {
                let mut tpl = TopicPartitionList::new();
                for (partition, offset) in offsets {
                    tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))?;
                }
                c.commit(&tpl, CommitMode::Async)?;
                Ok(())
            }
            Via::Fake(f) => {
                f.bus.commit(&f.group, &self.topic, offsets);
                Ok(())
            }
        }
    }

    /// Stop fetching from the assigned partitions while still polling, so
    /// a long back-off does not exceed `max.poll.interval.ms`.
    pub fn pause(&self) -> Result<Paused, BusError> {
        match &self.via {
            Via::Kafka(c) => {
                let assignment = c.assignment()?;
                c.pause(&assignment)?;
                Ok(Paused(Some(assignment)))
            }
            Via::Fake(_) => Ok(Paused(None)),
        }
    }

    pub fn resume(&self, paused: Paused) -> Result<(), BusError> {
        match (&self.via, paused.0) {
            (Via::Kafka(c), Some(assignment)) => Ok(c.resume(&assignment)?),
            _ => Ok(()),
        }
    }

    /// Per assigned partition, how many messages lie past `applied(partition)`
    /// (or past the consumer's position where that says nothing).
    pub fn lag(&self, applied: impl Fn(i32) -> Option<i64>) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        match &self.via {
            Via::Kafka(c) => {
                let Ok(positions) = c.position() else {
                    return out;
                };
                for e in positions.elements() {
                    let applied_up_to = applied(e.partition())
                        .map(Offset::Offset)
                        .unwrap_or(e.offset());
                    if let (Offset::Offset(pos), Ok((_, high))) = (
                        applied_up_to,
                        c.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500)),
                    ) {
                        out.push((e.partition(), (high - pos).max(0)));
                    }
                }
            }
            Via::Fake(f) => {
                for p in 0..f.bus.partitions(&self.topic) {
                    let high = f.bus.high_watermark(&self.topic, p);
                    let at = applied(p)
                        .or_else(|| f.bus.committed(&f.group, &self.topic, p))
                        .unwrap_or(0);
                    out.push((p, (high - at).max(0)));
                }
            }
        }
        out
    }

    /// Rejoin the group when this member has no partitions while commands
    /// wait on partitions whose committed offsets have not moved for
    /// `watchdog`'s patience (see `IdleWatchdog`).
    pub fn rejoin_if_abandoned(&self, watchdog: &mut IdleWatchdog) {
        let Via::Kafka(consumer) = &self.via else {
            return;
        };
        let topic = self.topic.as_str();
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned > 0 {
            watchdog.stuck.clear();
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
                watchdog.stuck.remove(&e.partition());
                continue;
            }
            let since = watchdog.stuck.entry(e.partition()).or_insert((at, now));
            if since.0 != at {
                *since = (at, now);
            } else if now.duration_since(since.1) > IdleWatchdog::PATIENCE {
                abandoned = true;
            }
        }
        if abandoned {
            tracing::warn!(
                "commands wait on partitions nobody consumes; rejoining the consumer group"
            );
            watchdog.stuck.clear();
            consumer.unsubscribe();
            if let Err(e) = consumer.subscribe(&[topic]) {
                tracing::error!(error = %e, "could not rejoin the consumer group");
            }
        }
    }

    /// Leave the group (its partitions go to the other members at once).
    pub fn leave(&self) {
        if let Via::Kafka(c) = &self.via {
            c.unsubscribe();
        }
    }
}

/// What `CommandSource::rejoin_if_abandoned` remembers between checks.
/// Real Kafka reassigns a dead member's partitions by itself; tansu 0.6
/// can leave a member that joined while a crashed leader was still within
/// its session timeout with an empty assignment for good (docs). A member
/// with no partitions and no stuck work never rejoins, so idle spare
/// processors cause no rebalances.
#[derive(Default)]
pub struct IdleWatchdog {
    stuck: HashMap<i32, (i64, std::time::Instant)>,
}

impl IdleWatchdog {
    pub const INTERVAL: Duration = Duration::from_secs(5);
    /// Twice the session timeout: longer than any healthy rebalance.
    pub const PATIENCE: Duration = Duration::from_secs(20);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_removes_partitions_and_a_new_assignment_replaces_them() {
        let a = Membership::default();
        assert_eq!(a.assignment(), None);
        a.assigned([0, 1, 2]);
        a.revoked([1]);
        assert_eq!(a.assignment(), Some(BTreeSet::from([0, 2])));
        a.revoked([0, 2]);
        assert_eq!(a.assignment(), Some(BTreeSet::new()));
        a.assigned([3]);
        assert_eq!(a.assignment(), Some(BTreeSet::from([3])));
        assert_eq!(
            a.take_revoked(),
            vec![0, 1, 2],
            "what the consumer loop forgets"
        );
        assert!(a.take_revoked().is_empty());
    }

    fn message(key: Option<&str>, payload: &[u8], headers: Vec<(String, Vec<u8>)>) -> Message {
        Message {
            topic: "p.commands".into(),
            partition: 3,
            offset: 41,
            key: key.map(str::to_string),
            payload: payload.to_vec(),
            headers,
        }
    }

    /// A message becomes its commands: one, or each of a `CommandBatch`
    /// with its own key, all at the message's position (its commit
    /// token); a batch that does not split stays whole, to be
    /// dead-lettered as undecodable. The reply topic comes from the header.
    #[test]
    fn a_message_becomes_its_commands_at_its_position() {
        let reply = vec![(headers::REPLY_TO.to_string(), b"p.replies.i".to_vec())];
        let batch = CommandBatch::encode([("t/a", &b"{\"a\":1}"[..]), ("t/b", &b"{\"b\":2}"[..])])
            .expect("a batch");
        // (message, expected (key, payload) per command, reply topic)
        type Case = (
            Message,
            Vec<(Option<&'static str>, Vec<u8>)>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                message(Some("t/r"), b"{\"v\":1}", reply.clone()),
                vec![(Some("t/r"), b"{\"v\":1}".to_vec())],
                Some("p.replies.i"),
            ),
            (
                message(None, &batch, reply.clone()),
                vec![
                    (Some("t/a"), b"{\"a\":1}".to_vec()),
                    (Some("t/b"), b"{\"b\":2}".to_vec()),
                ],
                Some("p.replies.i"),
            ),
            (
                message(None, br#"{"commands":[{"key":1}]}"#, vec![]),
                vec![(None, br#"{"commands":[{"key":1}]}"#.to_vec())],
                None,
            ),
            (
                message(
                    Some("k"),
                    b"x",
                    vec![(headers::REPLY_TO.into(), vec![0xff])],
                ),
                vec![(Some("k"), b"x".to_vec())],
                None,
            ),
        ];
        for (m, expected, reply_to) in cases {
            let received = Received::of(m.clone());
            assert_eq!(received.reply_to.as_deref(), reply_to, "{m:?}");
            let got: Vec<(Option<&str>, Vec<u8>)> = received
                .commands
                .iter()
                .map(|c| (c.key.as_deref(), c.payload.clone()))
                .collect();
            assert_eq!(got, expected, "{m:?}");
            for c in &received.commands {
                assert_eq!(
                    (c.topic.as_str(), c.partition, c.offset),
                    ("p.commands", 3, 41)
                );
            }
        }
    }
}
