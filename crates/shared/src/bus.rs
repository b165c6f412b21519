//! The one place that names Kafka topics and headers and configures
//! rdkafka clients. The ingress and the processor build every producer,
//! consumer and topic through here, so the wire contract is in one file.
//!
//! Settings that exist because of the local broker (tansu 0.6) rather than
//! because of the design are marked `tansu:`; see ARCHITECTURE.md.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;

/// Topic names, all under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Topics {
            prefix: prefix.to_string(),
        }
    }
    /// Commands from every ingress to the processors, keyed by
    /// `tenant/resource` (see `CommandEnvelope::partition_key`).
    pub fn commands(&self) -> String {
        format!("{}.commands", self.prefix)
    }
    /// Outcomes for one ingress instance (request-reply).
    pub fn replies(&self, instance_id: &str) -> String {
        format!("{}.replies.{instance_id}", self.prefix)
    }
    /// Commands that could not be applied (P4).
    pub fn dead_letters(&self) -> String {
        format!("{}.commands.dlq", self.prefix)
    }
    /// Committed user changes for downstream services (P5).
    pub fn user_changes(&self) -> String {
        format!("{}.user-changes", self.prefix)
    }
    /// Committed group changes for downstream services (P5).
    pub fn group_changes(&self) -> String {
        format!("{}.group-changes", self.prefix)
    }
}

/// Header names. Values are UTF-8 strings. What a message's payload
/// already says (a command's id, tenant and request id are in its
/// `CommandEnvelope`) is not repeated in a header.
pub mod headers {
    /// On a command that wants an answer: the ingress's reply topic.
    pub const REPLY_TO: &str = "scimflow-reply-to";
    /// On every message the outbox relay publishes: the outbox row's id, so
    /// a relay taking over can tell what its predecessor already published.
    pub const OUTBOX_ID: &str = "scimflow-outbox-id";
    /// On a message the relay published without its payload because it was
    /// larger than a message may be (`"true"`).
    pub const TRUNCATED: &str = "scimflow-truncated";
    pub const DLQ_REASON: &str = "scimflow-dlq-reason";
    pub const DLQ_ATTEMPTS: &str = "scimflow-dlq-attempts";
    pub const DLQ_ORIGINAL_TOPIC: &str = "scimflow-dlq-original-topic";
    pub const DLQ_ORIGINAL_PARTITION: &str = "scimflow-dlq-original-partition";
    pub const DLQ_ORIGINAL_OFFSET: &str = "scimflow-dlq-original-offset";
    pub const DLQ_ORIGINAL_KEY: &str = "scimflow-dlq-original-key";
}

/// Build headers from name/value pairs.
pub fn make_headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
}

/// Read one header as a string.
pub fn header<H: Headers>(headers: Option<&H>, name: &str) -> Option<String> {
    let headers = headers?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}

/// The partition of the command topic a message with `key` goes to: what
/// librdkafka's `consistent_random` partitioner (set in `producer_config`)
/// computes for a non-empty key, CRC-32 of the key modulo the partition
/// count. The ingress puts several commands in one message only when their
/// keys give the same partition, so it must agree with the producer.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let partitions = partitions.max(1) as u32;
    (crc32fast::hash(key.as_bytes()) % partitions) as i32
}

/// How long a producer keeps trying to deliver a message. Bounded, so a
/// relay taking over knows when a dead predecessor's messages can no
/// longer land.
pub const MESSAGE_TIMEOUT_MS: u32 = 10_000;

/// What librdkafka counts against `message.max.bytes` for one message
/// (`rd_kafka_msg_max_wire_size`): the record's framing (at most 36 bytes
/// of varints and attributes), the key, the value, and each header's name
/// and value with their two length varints. A message of more is refused
/// by the producer itself (`MSG_SIZE_TOO_LARGE`), whatever the broker says.
pub fn message_size(key_len: usize, payload_len: usize, headers: &[(&str, &str)]) -> usize {
    const RECORD_FRAMING: usize = 36;
    const HEADER_FRAMING: usize = 10;
    RECORD_FRAMING
        + key_len
        + payload_len
        + headers
            .iter()
            .map(|(k, v)| HEADER_FRAMING + k.len() + v.len())
            .sum::<usize>()
}

/// What a record batch adds to its records on the broker: a topic's
/// `max.message.bytes` counts the whole batch.
const BATCH_FRAMING: usize = 1024;

/// A durable, batching producer: acks from all in-sync replicas,
/// idempotence (no duplicates or reordering on retry, which P2 needs), and
/// a short linger so concurrent requests share a produce request.
///
/// `max_message_bytes` (`Config::max_message_bytes`) is its
/// `message.max.bytes`: the one size every producer, topic and request
/// body limit follows from. Callers measure a message with
/// [`message_size`] before producing it, so a message the producer would
/// refuse is never handed to it.
pub fn producer_config(brokers: &str, max_message_bytes: usize) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("message.max.bytes", max_message_bytes.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // librdkafka's default, named because `partition_for` must match it.
        .set("partitioner", "consistent_random")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        // tansu: compressed batches are not relied on; plain batches work.
        .set("compression.type", "none")
        // tansu: advertise and resolve IPv4 loopback only.
        .set("broker.address.family", "v4");
    c
}

/// Consumers keep librdkafka's fetch sizes: a broker hands over a record
/// batch larger than `max.partition.fetch.bytes` when it is the first one
/// (Kafka since KIP-74; tansu answers every fetch with at least one
/// record), so a message of up to `message.max.bytes` is always read.
///
/// A consumer-group member that never commits on its own: the processor
/// commits offsets only after the DB transaction that applied them (P1/P3).
///
/// `fetch_wait`: how long the broker may hold a fetch that finds nothing
/// (`Config::kafka_fetch_wait`).
pub fn group_consumer_config(brokers: &str, group: &str, fetch_wait: Duration) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
        .set("broker.address.family", "v4");
    c
}

/// A consumer outside any group, for assigned partitions (reply topics,
/// tools that read a topic from the start).
pub fn standalone_consumer_config(brokers: &str, fetch_wait: Duration) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", "scimflow-standalone")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
        .set("broker.address.family", "v4");
    c
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("could not create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Run a broker call at startup again, with exponential backoff and
/// jitter, for up to a minute: a broker that is starting or busy times
/// requests out, and a topic created a moment ago may have no leader yet
/// (Kafka propagates metadata asynchronously). Past that, the last error.
pub async fn retry_at_startup<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = ExponentialBackoff {
        initial_interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: Some(Duration::from_secs(60)),
        ..ExponentialBackoff::default()
    };
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => match backoff.next_backoff() {
                Some(wait) => {
                    tracing::warn!(error = %e, what, "broker call failed at startup; retrying");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e),
            },
        }
    }
}

/// Create topics that do not exist yet, taking messages of up to
/// `max_message_bytes` (`max.message.bytes`, which counts a record batch);
/// existing ones are left as they are (with a warning if their partition
/// count differs).
pub async fn ensure_topics(
    brokers: &str,
    topics: &[(String, i32)],
    max_message_bytes: usize,
) -> Result<(), BusError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4");
    let admin: AdminClient<DefaultClientContext> = cfg.create()?;
    let topic_max = (max_message_bytes + BATCH_FRAMING).to_string();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(1))
                .set("max.message.bytes", &topic_max)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // The request is retried; a refusal of a topic itself is not.
    let results =
        retry_at_startup("creating topics", || admin.create_topics(new.iter(), &opts)).await?;
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
            Err((topic, code)) => return Err(BusError::CreateTopic { topic, code }),
        }
    }
    // Partitions are fixed when a topic is created: say so when the
    // setting no longer describes the topic (the setting alone would
    // mislead whoever reads it). Metadata calls block: off the runtime.
    let existing: Vec<(String, i32)> = topics
        .iter()
        .filter(|(n, _)| existing.contains(n))
        .cloned()
        .collect();
    let _ = tokio::task::spawn_blocking(move || warn_on_other_partition_counts(&admin, &existing))
        .await;
    Ok(())
}

fn warn_on_other_partition_counts(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[(String, i32)],
) {
    for (name, wanted) in topics {
        let Ok(Some(has)) = partition_count(admin.inner(), name, Duration::from_secs(5)) else {
            continue;
        };
        if has != *wanted {
            tracing::warn!(
                topic = %name,
                partitions = has,
                configured = wanted,
                "the topic exists with a different partition count; the setting applies only to new topics"
            );
        }
    }
}

/// How many partitions `topic` has, as the broker says (`None`: it has
/// none yet). Blocks on a metadata request: call it off the runtime.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, rdkafka::error::KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::{BaseProducer, BaseRecord};
    use rdkafka::types::RDKafkaErrorCode;

    /// librdkafka refuses an oversized message when it is produced, before
    /// any broker is involved: a producer pointed at nothing tells.
    fn refused_as_too_large(
        max: usize,
        key: &str,
        payload_len: usize,
        hdrs: &[(&str, &str)],
    ) -> bool {
        let producer: BaseProducer = producer_config("127.0.0.1:1", max)
            .create()
            .expect("a producer");
        let payload = vec![b'x'; payload_len];
        let record = BaseRecord::<str, [u8]>::to("t")
            .key(key)
            .payload(&payload)
            .headers(make_headers(hdrs));
        match producer.send(record) {
            Ok(()) => false,
            Err((rdkafka::error::KafkaError::MessageProduction(code), _)) => {
                assert_eq!(code, RDKafkaErrorCode::MessageSizeTooLarge);
                true
            }
            Err((e, _)) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn message_size_is_what_the_producer_counts_or_more() {
        let max = 1_000_000;
        // (key, headers): the largest payload message_size allows is
        // accepted; without headers (counted exactly) one more byte is not.
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case<'_>] = &[
            ("", &[], true),
            ("tenant/resource", &[], true),
            (
                "k",
                &[(headers::REPLY_TO, "scimflow.replies.ingress-1")],
                false,
            ),
            ("k", &[("a", "1"), ("bb", "22")], false),
        ];
        for (key, hdrs, exact) in cases {
            let largest = max - message_size(key.len(), 0, hdrs);
            assert_eq!(message_size(key.len(), largest, hdrs), max);
            assert!(
                !refused_as_too_large(max, key, largest, hdrs),
                "{key:?} {hdrs:?}"
            );
            if *exact {
                assert!(refused_as_too_large(max, key, largest + 1, hdrs), "{key:?}");
            }
        }
    }
}
