//! The broker as a test sees it, through the bus's own clients: the
//! stack's topics, reading them back, and producing raw messages.

use std::time::Duration;

use serde_json::Value;

use super::{eventually, Stack, LOCAL_BROKER_SETTINGS};

impl Stack {
    /// The Kafka settings the stack's processes get, for a test's own
    /// clients built through `bus`.
    pub fn kafka_settings(&self) -> scimflow_bus::KafkaSettings {
        let mut kafka = scimflow_bus::KafkaSettings::new(&self.kafka);
        kafka.topic_replication = 1;
        for (setting, value) in LOCAL_BROKER_SETTINGS {
            if let Some(name) = setting.strip_prefix("KAFKA_PROPERTY_") {
                kafka = kafka.with_property(&name.to_ascii_lowercase().replace('_', "."), value);
            }
        }
        kafka
    }

    /// The topic prefix of this stack.
    pub fn prefix(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Wait until the outbox relay has published everything committed.
    pub async fn outbox_drained(&self) {
        eventually("the outbox to drain", Duration::from_secs(120), || {
            let n = self.count("SELECT count(*) AS n FROM outbox");
            async move { (n == 0).then_some(()) }
        })
        .await;
    }

    /// Every message on `topic` up to its current end, in partition order.
    pub fn read_topic(&self, topic: &str) -> Vec<TopicMessage> {
        scimflow_bus::tail::read_topic(&self.kafka_settings(), topic, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("reading {topic}: {e}"))
            .into_iter()
            .map(|m| TopicMessage {
                partition: m.partition,
                offset: m.offset,
                key: m.key,
                payload: m.payload,
                headers: m
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
            })
            .collect()
    }

    /// Put raw bytes on a topic, as a misbehaving producer would.
    pub async fn produce_raw(&self, topic: &str, key: &str, payload: &[u8]) {
        self.produce_many(topic, &[(key.to_string(), payload.to_vec())])
            .await;
    }

    /// Put messages on a topic, in order, through one producer.
    pub async fn produce_many(&self, topic: &str, messages: &[(String, Vec<u8>)]) {
        let producer = scimflow_bus::Publisher::connect(&self.kafka_settings(), 1_000_000)
            .expect("test producer");
        let messages: Vec<scimflow_bus::Outgoing<'_>> = messages
            .iter()
            .map(|(key, payload)| scimflow_bus::Outgoing::to(topic, payload).key(key))
            .collect();
        producer
            .publish_all(&messages, Duration::from_secs(60))
            .await
            .expect("produce");
    }
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct TopicMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl TopicMessage {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
