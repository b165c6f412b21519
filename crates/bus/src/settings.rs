//! What every Kafka client is configured with (`KafkaSettings`), and the
//! rules for the operator's own librdkafka properties
//! (`KAFKA_PROPERTY_<NAME>`, NAME upper-cased with `.` as `_`): which
//! names they map to, which the design owns and refuses, and which values
//! are secrets. Configuration reads the settings; this module says what
//! they mean to the client.

use std::time::Duration;

/// Names starting with this pass a librdkafka property to every client.
pub const KAFKA_PROPERTY_PREFIX: &str = "KAFKA_PROPERTY_";

/// librdkafka properties scimflow sets itself because a guarantee rests on
/// them: passing them through is refused, with the guarantee.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "it is set by KAFKA_BROKERS"),
    ("metadata.broker.list", "it is set by KAFKA_BROKERS"),
    ("group.id", "it is set by SCIMFLOW_CONSUMER_GROUP: every processor must be in the one group that divides the command topic's partitions"),
    ("enable.auto.commit", "the processor commits an offset only after the database transaction that applied its command (P1)"),
    ("enable.auto.offset.store", "the processor stores an offset only after the database transaction that applied its command (P1)"),
    ("auto.offset.reset", "a new consumer group must start at the earliest command, or commands already on the topic are never applied"),
    ("enable.idempotence", "a retried send must not duplicate or reorder one resource's commands (P2)"),
    ("acks", "a write is acknowledged only once every in-sync replica has its command"),
    ("request.required.acks", "a write is acknowledged only once every in-sync replica has its command"),
    ("partitioner", "the ingress groups a /Bulk request's commands by the partition librdkafka's consistent_random partitioner picks for each key"),
    ("transactional.id", "scimflow does not use Kafka transactions: the database transaction and the outbox decide what happened"),
    ("isolation.level", "scimflow does not use Kafka transactions, so there is nothing for read_committed to hide"),
    ("message.timeout.ms", "an outbox relay taking over waits this bound (10 s) before publishing what its predecessor may still deliver"),
    ("delivery.timeout.ms", "an outbox relay taking over waits this bound (10 s) before publishing what its predecessor may still deliver"),
    ("fetch.wait.max.ms", "it is set by SCIMFLOW_KAFKA_FETCH_WAIT_MS"),
    ("message.max.bytes", "it is set by SCIMFLOW_MAX_MESSAGE_BYTES, which the request body limit and every topic's limit follow from"),
];

/// Whether a property's value is a secret, shown redacted
/// (`scimflow config check`, debug output).
pub fn is_secret_property(name: &str) -> bool {
    name.contains("password")
        || name.contains("secret")
        || name.contains(".pem")
        || name == "sasl.oauthbearer.config"
}

/// The Kafka clients' settings, given to every client builder here;
/// configuration fills them in.
#[derive(Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub brokers: String,
    /// `KAFKA_PROPERTY_*`: librdkafka properties for every client, by
    /// their librdkafka names, sorted.
    pub properties: Vec<(String, String)>,
    /// `SCIMFLOW_KAFKA_FETCH_WAIT_MS` (default 50): how long the broker may
    /// hold a consumer's fetch when it has nothing new (`fetch.wait.max.ms`)
    /// for the processor and the reply consumers. Kafka answers as soon as
    /// data arrives, so this only bounds idle polling there; tansu 0.6 holds
    /// every fetch this long, so against it this is latency per hop
    /// (docs/PERFORMANCE.md).
    pub fetch_wait: Duration,
    /// `SCIMFLOW_TOPIC_REPLICATION` (default -1, the broker's default
    /// replication factor): replicas of each topic scimflow creates.
    pub topic_replication: i32,
}

impl KafkaSettings {
    /// Defaults for `brokers`, no properties (tools and tests).
    pub fn new(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_string(),
            properties: Vec::new(),
            fetch_wait: Duration::from_millis(50),
            topic_replication: -1,
        }
    }

    pub fn with_property(mut self, name: &str, value: &str) -> Self {
        self.properties.retain(|(n, _)| n != name);
        self.properties.push((name.to_string(), value.to_string()));
        self
    }

    /// The properties with secrets replaced, for display.
    pub fn redacted_properties(&self) -> Vec<(String, String)> {
        self.properties
            .iter()
            .map(|(n, v)| {
                let v = if is_secret_property(n) {
                    "<redacted>".to_string()
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect()
    }
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("properties", &self.redacted_properties())
            .field("fetch_wait", &self.fetch_wait)
            .field("topic_replication", &self.topic_replication)
            .finish()
    }
}

/// The librdkafka name of a `KAFKA_PROPERTY_*` setting, or why it is
/// refused.
pub fn property_name(setting: &str) -> Result<String, String> {
    let name = setting
        .strip_prefix(KAFKA_PROPERTY_PREFIX)
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace('_', ".");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return Err(
            "expected KAFKA_PROPERTY_ and a librdkafka property name, upper-cased with '.' as '_'"
                .into(),
        );
    }
    if let Some((_, why)) = OWNED_PROPERTIES.iter().find(|(n, _)| *n == name) {
        return Err(format!("{name} is set by scimflow: {why}"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_by_name() {
        for (name, secret) in [
            ("sasl.password", true),
            ("ssl.key.password", true),
            ("ssl.keystore.password", true),
            ("ssl.key.pem", true),
            ("ssl.certificate.pem", true),
            ("sasl.oauthbearer.client.secret", true),
            ("sasl.oauthbearer.config", true),
            ("sasl.username", false),
            ("security.protocol", false),
            ("ssl.ca.location", false),
        ] {
            assert_eq!(is_secret_property(name), secret, "{name}");
        }
    }

    #[test]
    fn settings_map_to_property_names_or_are_refused_with_why() {
        // (setting, the property, or the start of why it is refused)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("KAFKA_PROPERTY_SASL_MECHANISMS", Ok("sasl.mechanisms")),
            ("KAFKA_PROPERTY_STATISTICS_INTERVAL_MS", Ok("statistics.interval.ms")),
            (
                "KAFKA_PROPERTY_",
                Err("expected KAFKA_PROPERTY_ and a librdkafka property name, upper-cased with '.' as '_'"),
            ),
            ("KAFKA_PROPERTY_SASL-PASSWORD", Err("expected KAFKA_PROPERTY_ and a librdkafka property name")),
            (
                "KAFKA_PROPERTY_ENABLE_AUTO_COMMIT",
                Err("enable.auto.commit is set by scimflow: the processor commits an offset only after"),
            ),
            ("KAFKA_PROPERTY_BOOTSTRAP_SERVERS", Err("bootstrap.servers is set by scimflow: it is set by KAFKA_BROKERS")),
        ];
        for (setting, expected) in cases {
            match (property_name(setting), expected) {
                (Ok(name), Ok(want)) => assert_eq!(name, *want, "{setting}"),
                (Err(why), Err(want)) => assert!(why.starts_with(want), "{setting}: {why}"),
                (got, _) => panic!("{setting}: {got:?}"),
            }
        }
    }
}
