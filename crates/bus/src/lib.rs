//! The one owner of Kafka. Nothing else in scimflow names rdkafka: the
//! ingress and the processor reach the broker only through what this crate
//! offers, in their terms.
//!
//! - The wire contract: topic names (`Topics`), header names (`headers`),
//!   the producer's partitioner (`partition_for`) and a message's size as
//!   the producer counts it (`message_size`).
//! - Topics: created, or checked when the operator owns them
//!   (`ensure_topics`).
//! - Publishing (`Publisher`): a command and its reply topic, a partition's
//!   `CommandBatch`, a batch's replies, outbox rows; any message, for tools.
//! - Consuming: the processor's group membership and decoded commands with
//!   the offsets to commit once they are applied (`CommandSource`), an
//!   ingress's reply topic from its end (`ReplyStream`), a topic's tail or
//!   whole content (`tail`).
//! - The librdkafka statistics and build facts that feed `/metrics`
//!   (`stats`), and the readiness facts (`Membership`, `Publisher::reachable`).
//! - An in-memory broker with the same API (`fake`), so the handlers and
//!   the consumer run without one in tests.
//!
//! Every client gets the operator's librdkafka properties (`KafkaSettings`,
//! `KAFKA_PROPERTY_*`: TLS, SASL, tuning) on top of the design's own, which
//! `settings` refuses to let anyone override (configuration reads them). Workarounds for the local
//! broker are not here: the local stack sets them through the same
//! properties (scripts/run, the test harness).
//!
//! It must not decide what a command means or does: it moves bytes, keys
//! and headers, and splits a `CommandBatch` message into its commands.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

pub mod fake;
mod publish;
mod replies;
pub mod settings;
mod source;
pub mod stats;
pub mod tail;

pub use publish::{Outgoing, Publisher};
pub use replies::ReplyStream;
pub use settings::KafkaSettings;
pub use source::{CommandSource, IdleWatchdog, Inbound, Membership, Paused, Received};
pub use tail::Message;

/// What the Kafka client library logs below warnings is noise at the
/// service's default level: the log filter directive that quiets it.
pub const CLIENT_LOG_DIRECTIVE: &str = "rdkafka=warn";

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
    /// W3C Trace Context, on commands (the ingress request's span) and on
    /// change events (the processor span that applied the command), so
    /// one write is one trace. Read and written by `trace_context`.
    pub use scimflow_core::trace_context::{TRACEPARENT, TRACESTATE};
    pub const DLQ_REASON: &str = "scimflow-dlq-reason";
    pub const DLQ_ATTEMPTS: &str = "scimflow-dlq-attempts";
    pub const DLQ_ORIGINAL_TOPIC: &str = "scimflow-dlq-original-topic";
    pub const DLQ_ORIGINAL_PARTITION: &str = "scimflow-dlq-original-partition";
    pub const DLQ_ORIGINAL_OFFSET: &str = "scimflow-dlq-original-offset";
    pub const DLQ_ORIGINAL_KEY: &str = "scimflow-dlq-original-key";
}

/// Build headers from name/value pairs.
pub(crate) fn make_headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
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

/// Every client's base: the brokers, then the operator's properties
/// (which may override a default set by the caller afterwards; see
/// `with_properties`).
fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    c
}

/// The operator's properties, last, so they override scimflow's tuning
/// defaults; the properties the design owns were refused by configuration.
fn with_properties(mut c: ClientConfig, kafka: &KafkaSettings) -> ClientConfig {
    for (name, value) in &kafka.properties {
        c.set(name, value);
    }
    c
}

/// A durable, batching producer: acks from all in-sync replicas,
/// idempotence (no duplicates or reordering on retry, which P2 needs), and
/// a short linger so concurrent requests share a produce request.
///
/// `max_message_bytes` (`Config::max_message_bytes`) is its
/// `message.max.bytes`: the one size every producer, topic and request
/// body limit follows from. Callers measure a message with
/// [`message_size`] before producing it, so a message the producer would
/// refuse is never handed to it.
pub(crate) fn producer_config(kafka: &KafkaSettings, max_message_bytes: usize) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("message.max.bytes", max_message_bytes.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // librdkafka's default, named because `partition_for` must match it.
        .set("partitioner", "consistent_random")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string());
    with_properties(c, kafka)
}

/// Consumers keep librdkafka's fetch sizes: a broker hands over a record
/// batch larger than `max.partition.fetch.bytes` when it is the first one
/// (Kafka since KIP-74; tansu answers every fetch with at least one
/// record), so a message of up to `message.max.bytes` is always read.
///
/// A consumer-group member that never commits on its own: the processor
/// commits offsets only after the DB transaction that applied them (P1).
/// The broker may hold a fetch that finds nothing for `kafka.fetch_wait`.
pub(crate) fn group_consumer_config(kafka: &KafkaSettings, group: &str) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        .set(
            "fetch.wait.max.ms",
            kafka.fetch_wait.as_millis().to_string(),
        );
    with_properties(c, kafka)
}

/// A consumer outside any group, for assigned partitions (reply topics,
/// tools that read a topic from the start).
pub(crate) fn standalone_consumer_config(
    kafka: &KafkaSettings,
    fetch_wait: Duration,
) -> ClientConfig {
    let mut c = client_config(kafka);
    c.set("group.id", "scimflow-standalone")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string());
    with_properties(c, kafka)
}

/// An admin client (topic creation and checks).
pub(crate) fn admin_config(kafka: &KafkaSettings) -> ClientConfig {
    with_properties(client_config(kafka), kafka)
}

/// The context of every long-lived client: librdkafka's statistics (when
/// the operator sets `statistics.interval.ms`) become metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClientStats;

impl ClientContext for ClientStats {
    fn stats(&self, statistics: Statistics) {
        stats::observe_statistics(&statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for ClientStats {}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("could not create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    /// Not allowed to create topics, and the ones an operator should have
    /// created are not all there as configured.
    #[error("not allowed to create topics ({code}), and the pre-created topics do not match: {problems}")]
    TopicsNotReady {
        code: RDKafkaErrorCode,
        problems: String,
    },
    /// The topic has no partitions yet (just created, or missing).
    #[error("topic {0} has no partitions yet")]
    NoPartitions(String),
    /// Reading a topic's tail did not reach its end in time.
    #[error("could not read the end of {0} in time")]
    TailTimeout(String),
    #[error("a broker task failed: {0}")]
    Task(String),
    /// The in-memory bus refuses what Kafka would refuse.
    #[error("the in-memory bus: {0}")]
    Fake(String),
}

/// A refusal that means "you may not create topics": the operator creates
/// them, and startup checks they are there instead.
fn is_authorization_failure(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}

/// What is wrong with pre-created topics: each wanted topic that the
/// broker does not have (`None`), or has with another partition count.
pub fn topic_problems(wanted: &[(String, i32)], found: &[(String, Option<i32>)]) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|(name, partitions)| {
            let has = found.iter().find(|(n, _)| n == name).and_then(|(_, p)| *p);
            match has {
                None => Some(format!(
                    "{name} is missing ({partitions} partitions wanted)"
                )),
                Some(p) if p != *partitions => Some(format!(
                    "{name} has {p} partitions, {partitions} configured"
                )),
                Some(_) => None,
            }
        })
        .collect()
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
/// count differs). When the broker refuses to let scimflow create topics
/// (an operator manages them), check instead that they all exist with the
/// configured partition counts.
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    topics: &[(String, i32)],
    max_message_bytes: usize,
) -> Result<(), BusError> {
    let admin: AdminClient<DefaultClientContext> = admin_config(kafka).create()?;
    let topic_max = (max_message_bytes + BATCH_FRAMING).to_string();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(kafka.topic_replication),
            )
            .set("max.message.bytes", &topic_max)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // The request is retried; a refusal of a topic itself is not, nor a
    // refusal to let this principal create topics at all.
    let results = retry_at_startup("creating topics", || async {
        match admin.create_topics(new.iter(), &opts).await {
            Err(KafkaError::AdminOp(code)) if is_authorization_failure(code) => Ok(Err(code)),
            other => other.map(Ok),
        }
    })
    .await?;
    let results = match results {
        Ok(results) => results,
        Err(code) => return verify_precreated(admin, topics.to_vec(), code).await,
    };
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
            Err((_, code)) if is_authorization_failure(code) => {
                return verify_precreated(admin, topics.to_vec(), code).await
            }
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

/// Every topic must exist with its configured partitions, since nobody
/// here may create or change it; the error names each one that does not.
async fn verify_precreated(
    admin: AdminClient<DefaultClientContext>,
    topics: Vec<(String, i32)>,
    code: RDKafkaErrorCode,
) -> Result<(), BusError> {
    tracing::info!(%code, "not allowed to create topics; checking that they exist");
    let admin = std::sync::Arc::new(admin);
    let found = retry_at_startup("reading the topics' metadata", || {
        let (admin, names): (_, Vec<String>) = (
            admin.clone(),
            topics.iter().map(|(n, _)| n.clone()).collect(),
        );
        async move {
            // Metadata calls block: off the runtime.
            tokio::task::spawn_blocking(move || {
                names
                    .into_iter()
                    .map(|name| {
                        partition_count(admin.inner(), &name, Duration::from_secs(5))
                            .map(|p| (name, p))
                    })
                    .collect::<Result<Vec<_>, KafkaError>>()
            })
            .await
            .unwrap_or_else(|_| Err(KafkaError::Canceled))
        }
    })
    .await?;
    let problems = topic_problems(&topics, &found);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BusError::TopicsNotReady {
            code,
            problems: problems.join("; "),
        })
    }
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
pub(crate) fn partition_count<C: ClientContext>(
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
        let producer: BaseProducer = producer_config(&KafkaSettings::new("127.0.0.1:1"), max)
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
    fn operator_properties_reach_every_client_and_the_design_keeps_its_own() {
        let kafka = KafkaSettings::new("b:9092")
            .with_property("security.protocol", "SASL_SSL")
            .with_property("linger.ms", "20");
        let clients = [
            ("producer", producer_config(&kafka, 1_000_000)),
            ("group consumer", group_consumer_config(&kafka, "g")),
            (
                "standalone consumer",
                standalone_consumer_config(&kafka, kafka.fetch_wait),
            ),
            ("admin", admin_config(&kafka)),
        ];
        for (client, config) in &clients {
            assert_eq!(config.get("bootstrap.servers"), Some("b:9092"), "{client}");
            assert_eq!(
                config.get("security.protocol"),
                Some("SASL_SSL"),
                "{client}"
            );
            assert_eq!(config.get("linger.ms"), Some("20"), "{client}");
            assert_eq!(
                config.get("broker.address.family"),
                None,
                "{client}: a local-broker setting"
            );
        }
        let producer = &clients[0].1;
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        let group = &clients[1].1;
        assert_eq!(group.get("enable.auto.commit"), Some("false"));
        assert_eq!(group.get("group.id"), Some("g"));
    }

    /// librdkafka refuses these at creation when built without OpenSSL or
    /// SASL (`OpenSSL not available at build time`): the build must carry
    /// them for clusters that require TLS and SCRAM.
    #[test]
    fn clients_can_be_configured_for_tls_and_sasl() {
        for (protocol, mechanism) in [
            ("SSL", None),
            ("SASL_SSL", Some("SCRAM-SHA-512")),
            ("SASL_SSL", Some("SCRAM-SHA-256")),
            ("SASL_SSL", Some("PLAIN")),
        ] {
            let mut kafka = KafkaSettings::new("127.0.0.1:1")
                .with_property("security.protocol", protocol)
                .with_property("ssl.endpoint.identification.algorithm", "https");
            if let Some(m) = mechanism {
                kafka = kafka
                    .with_property("sasl.mechanisms", m)
                    .with_property("sasl.username", "u")
                    .with_property("sasl.password", "p");
            }
            let made: Result<rdkafka::producer::BaseProducer, _> =
                producer_config(&kafka, 1_000_000).create();
            assert!(made.is_ok(), "{protocol} {mechanism:?}: {:?}", made.err());
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

    #[test]
    fn precreated_topics_are_checked_by_name_and_partition_count() {
        let wanted = vec![
            ("s.commands".to_string(), 8),
            ("s.replies.i".to_string(), 1),
            ("s.commands.dlq".to_string(), 8),
        ];
        // (what the broker has, the problems named)
        type Found = Vec<(String, Option<i32>)>;
        let cases: Vec<(Found, Vec<&str>)> = vec![
            (
                vec![
                    ("s.commands".into(), Some(8)),
                    ("s.replies.i".into(), Some(1)),
                    ("s.commands.dlq".into(), Some(8)),
                ],
                vec![],
            ),
            (
                vec![
                    ("s.commands".into(), Some(12)),
                    ("s.replies.i".into(), None),
                    ("s.commands.dlq".into(), Some(8)),
                ],
                vec![
                    "s.commands has 12 partitions, 8 configured",
                    "s.replies.i is missing (1 partitions wanted)",
                ],
            ),
            (
                vec![],
                vec![
                    "s.commands is missing (8 partitions wanted)",
                    "s.replies.i is missing (1 partitions wanted)",
                    "s.commands.dlq is missing (8 partitions wanted)",
                ],
            ),
        ];
        for (found, expected) in cases {
            assert_eq!(topic_problems(&wanted, &found), expected, "{found:?}");
        }
        let e = BusError::TopicsNotReady {
            code: RDKafkaErrorCode::TopicAuthorizationFailed,
            problems: topic_problems(&wanted, &[]).join("; "),
        };
        assert!(e.to_string().starts_with("not allowed to create topics (TopicAuthorizationFailed (Broker: Topic authorization failed)), and the pre-created topics do not match: s.commands is missing"), "{e}");
        assert!(is_authorization_failure(
            RDKafkaErrorCode::ClusterAuthorizationFailed
        ));
        assert!(!is_authorization_failure(
            RDKafkaErrorCode::TopicAlreadyExists
        ));
    }
}
