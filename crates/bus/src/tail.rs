//! Reading what is on topics now: the last messages of every partition
//! (the outbox relay, taking over, looks for what its predecessor
//! published) or all of them (tools and tests). Blocking: call it off the
//! runtime.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::{standalone_consumer_config, BusError, KafkaSettings};

/// A message as read off a topic, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// Name and value of each header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Message {
    /// One header's value as a string (`None` if absent or not UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    pub(crate) fn of(m: &BorrowedMessage<'_>) -> Self {
        Message {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// How much of each partition to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Everything from the partition's start.
    All,
    /// At most this many messages before the partition's end.
    Last(i64),
}

/// Hand every message of `topics` up to each partition's current end, as
/// deep as `depth` says, to `visit`, partition by partition in offset
/// order; each offset once (a broker may hand a batch back twice on a
/// re-fetch). `timeout` bounds each broker call; `patience` the whole read.
pub fn read_tails(
    kafka: &KafkaSettings,
    topics: &[&str],
    depth: Depth,
    timeout: Duration,
    patience: Duration,
    mut visit: impl FnMut(Message),
) -> Result<(), BusError> {
    let consumer: BaseConsumer =
        standalone_consumer_config(kafka, Duration::from_millis(20)).create()?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                if high > low {
                    let from = match depth {
                        Depth::All => low,
                        Depth::Last(n) => (high - n).max(low),
                    };
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(from))?;
                    ends.insert((topic.to_string(), p.id()), high);
                }
            }
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + patience;
    let mut seen = HashSet::new();
    while !ends.is_empty() {
        if Instant::now() > deadline {
            let topics = ends.keys().map(|(t, _)| t.as_str()).collect::<Vec<_>>();
            return Err(BusError::TailTimeout(topics.join(", ")));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg?;
        let key = (msg.topic().to_string(), msg.partition());
        let at_end = ends.get(&key).is_some_and(|h| msg.offset() + 1 >= *h);
        if seen.insert((key.clone(), msg.offset())) {
            visit(Message::of(&msg));
        }
        if at_end {
            ends.remove(&key);
        }
    }
    Ok(())
}

/// Every message on `topic` up to its current end.
pub fn read_topic(
    kafka: &KafkaSettings,
    topic: &str,
    patience: Duration,
) -> Result<Vec<Message>, BusError> {
    let mut out = Vec::new();
    read_tails(
        kafka,
        &[topic],
        Depth::All,
        Duration::from_secs(10),
        patience,
        |m| out.push(m),
    )?;
    Ok(out)
}

/// The low and high watermarks of each partition of `topic` and, with
/// `group`, the offset that group committed there (`None`: nothing yet).
pub fn offsets(
    kafka: &KafkaSettings,
    topic: &str,
    group: Option<&str>,
    timeout: Duration,
) -> Result<Vec<PartitionOffsets>, BusError> {
    let mut config = standalone_consumer_config(kafka, Duration::from_millis(20));
    if let Some(group) = group {
        config.set("group.id", group);
    }
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut out = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            out.push(PartitionOffsets {
                partition: p.id(),
                low,
                high,
                committed: None,
            });
            tpl.add_partition(topic, p.id());
        }
    }
    out.sort_by_key(|p| p.partition);
    if group.is_some() {
        let committed = consumer.committed_offsets(tpl, timeout)?;
        for e in committed.elements() {
            if let (Some(p), Offset::Offset(o)) = (
                out.iter_mut().find(|p| p.partition == e.partition()),
                e.offset(),
            ) {
                p.committed = Some(o);
            }
        }
    }
    Ok(out)
}

/// One partition's offsets (`offsets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
}
