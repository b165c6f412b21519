//! An in-memory bus for tests: topics of numbered partitions that keep
//! every message, committed offsets per group, and the producer's
//! partitioner (`partition_for`). `Publisher::fake`, `ReplyStream::fake`
//! and `CommandSource::fake` use it exactly where the services use Kafka,
//! so handlers and the consumer run without a broker. It has no
//! rebalances, no delivery failures unless told (`refuse`), and no
//! message size limit: tests of those go through the real broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::publish::Outgoing;
use crate::tail::Message;
use crate::{partition_for, BusError};

/// A handle on one in-memory broker; clones share it.
#[derive(Clone, Default)]
pub struct FakeBus(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    committed: HashMap<(String, String, i32), i64>,
    down: bool,
    refusing: bool,
}

struct Topic {
    partitions: i32,
    /// Every message, in the order appended.
    log: Vec<Message>,
}

impl FakeBus {
    pub fn new() -> Self {
        FakeBus::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create `topic` with `partitions` (a topic first used without being
    /// created has one).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.state()
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| Topic {
                partitions: partitions.max(1),
                log: Vec::new(),
            });
    }

    /// From now on publishing fails (`true`) or works again.
    pub fn refuse(&self, refusing: bool) {
        self.state().refusing = refusing;
    }

    /// The broker answers metadata requests (`false`: unreachable).
    pub fn set_up(&self, up: bool) {
        self.state().down = !up;
    }

    pub(crate) fn is_up(&self) -> bool {
        !self.state().down
    }

    pub fn partitions(&self, topic: &str) -> i32 {
        self.state().topics.get(topic).map_or(1, |t| t.partitions)
    }

    /// Every message on `topic`, in the order appended.
    pub fn messages(&self, topic: &str) -> Vec<Message> {
        self.state()
            .topics
            .get(topic)
            .map(|t| t.log.clone())
            .unwrap_or_default()
    }

    pub(crate) fn append(&self, m: &Outgoing<'_>) -> Result<(i32, i64), BusError> {
        let mut state = self.state();
        if state.refusing || state.down {
            return Err(BusError::Fake(format!("publishing to {} refused", m.topic)));
        }
        let topic = state
            .topics
            .entry(m.topic.to_string())
            .or_insert_with(|| Topic {
                partitions: 1,
                log: Vec::new(),
            });
        let partition = match (m.partition, m.key) {
            (Some(p), _) => p,
            (None, Some(key)) if !key.is_empty() => partition_for(key, topic.partitions),
            (None, _) => 0,
        };
        if partition < 0 || partition >= topic.partitions {
            return Err(BusError::Fake(format!(
                "{} has no partition {partition}",
                m.topic
            )));
        }
        let offset = topic
            .log
            .iter()
            .filter(|x| x.partition == partition)
            .count() as i64;
        topic.log.push(Message {
            topic: m.topic.to_string(),
            partition,
            offset,
            key: m.key.map(str::to_string),
            payload: m.payload.to_vec(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        });
        drop(state);
        self.0.changed.notify_waiters();
        Ok((partition, offset))
    }

    pub(crate) fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) {
        let mut state = self.state();
        for (partition, offset) in offsets {
            state
                .committed
                .insert((group.to_string(), topic.to_string(), *partition), *offset);
        }
    }

    /// The offset `group` committed on `topic`'s `partition`, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.state()
            .committed
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// The offset the next message on `partition` will get.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> i64 {
        self.state().topics.get(topic).map_or(0, |t| {
            t.log.iter().filter(|m| m.partition == partition).count() as i64
        })
    }

    /// Messages appended to `topic` from now on, in order.
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let next = self.state().topics.get(topic).map_or(0, |t| t.log.len());
        Subscription {
            bus: self.clone(),
            topic: topic.to_string(),
            next,
            from: HashMap::new(),
        }
    }

    /// Every message of `topic`, from its start.
    pub fn subscribe_from_start(&self, topic: &str) -> Subscription {
        Subscription {
            bus: self.clone(),
            topic: topic.to_string(),
            next: 0,
            from: HashMap::new(),
        }
    }

    pub(crate) fn cursor_after_commits(&self, group: &str, topic: &str) -> Subscription {
        let from = self
            .state()
            .committed
            .iter()
            .filter(|((g, t, _), _)| g == group && t == topic)
            .map(|((_, _, p), o)| (*p, *o))
            .collect();
        Subscription {
            bus: self.clone(),
            topic: topic.to_string(),
            next: 0,
            from,
        }
    }
}

/// A reader of one topic of the in-memory bus, in append order, skipping
/// what lies below the offsets it starts from.
pub struct Subscription {
    bus: FakeBus,
    topic: String,
    next: usize,
    from: HashMap<i32, i64>,
}

impl Subscription {
    /// The next message; waits for one to be appended.
    pub async fn next(&mut self) -> Message {
        loop {
            let notified = self.bus.0.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.bus.state();
                if let Some(topic) = state.topics.get(&self.topic) {
                    while let Some(m) = topic.log.get(self.next) {
                        self.next += 1;
                        if self.from.get(&m.partition).is_none_or(|o| m.offset >= *o) {
                            return m.clone();
                        }
                    }
                }
            }
            notified.await;
        }
    }
}
