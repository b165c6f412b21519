//! Publishing, in the services' terms. One producer per role, idempotent
//! with `acks=all` (`producer_config`); the in-memory bus stands in for it
//! in tests. A small enum rather than a trait object: the Kafka path is a
//! direct call.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::fake::FakeBus;
use crate::{make_headers, producer_config, BusError, ClientStats, KafkaSettings};

/// One message to publish. `partition: None` lets the producer's
/// partitioner place it by its key (`partition_for`).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a str>,
    pub payload: &'a [u8],
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Outgoing<'a> {
    pub fn to(topic: &'a str, payload: &'a [u8]) -> Self {
        Outgoing {
            topic,
            partition: None,
            key: None,
            payload,
            headers: &[],
        }
    }
    pub fn key(self, key: &'a str) -> Self {
        Outgoing {
            key: Some(key),
            ..self
        }
    }
    pub fn partition(self, partition: i32) -> Self {
        Outgoing {
            partition: Some(partition),
            ..self
        }
    }
    pub fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Outgoing { headers, ..self }
    }

    /// The producer's record of it.
    fn record(&self) -> FutureRecord<'a, str, [u8]> {
        let mut record = FutureRecord::<str, [u8]>::to(self.topic).payload(self.payload);
        if let Some(key) = self.key {
            record = record.key(key);
        }
        if let Some(partition) = self.partition {
            record = record.partition(partition);
        }
        if !self.headers.is_empty() {
            record = record.headers(make_headers(self.headers));
        }
        record
    }
}

/// A role's producer: Kafka, or the in-memory bus.
#[derive(Clone)]
pub struct Publisher(Via);

#[derive(Clone)]
enum Via {
    Kafka(FutureProducer<ClientStats>),
    Fake(FakeBus),
}

impl Publisher {
    /// The producer every role uses; `max_message_bytes` is its
    /// `message.max.bytes` (callers measure with `message_size` first).
    pub fn connect(kafka: &KafkaSettings, max_message_bytes: usize) -> Result<Self, BusError> {
        let producer =
            producer_config(kafka, max_message_bytes).create_with_context(ClientStats)?;
        Ok(Publisher(Via::Kafka(producer)))
    }

    /// A publisher onto the in-memory bus.
    pub fn fake(bus: &FakeBus) -> Self {
        Publisher(Via::Fake(bus.clone()))
    }

    /// Produce one message and wait for the broker's ack, or `timeout`:
    /// the partition and offset it got.
    pub async fn send(&self, m: Outgoing<'_>, timeout: Duration) -> Result<(i32, i64), BusError> {
        match &self.0 {
            Via::Kafka(p) => {
                let delivery = p.send(m.record(), timeout).await.map_err(|(e, _)| e)?;
                Ok((delivery.partition, delivery.offset))
            }
            Via::Fake(bus) => bus.append(&m),
        }
    }

    /// Enqueue one message without waiting for its ack.
    pub fn enqueue(&self, m: Outgoing<'_>) -> Result<(), BusError> {
        match &self.0 {
            Via::Kafka(p) => p
                .send_result(m.record())
                .map(|_| ())
                .map_err(|(e, _)| e.into()),
            Via::Fake(bus) => bus.append(&m).map(|_| ()),
        }
    }

    /// A command, keyed `tenant/resource`, with its headers (the reply
    /// topic if it wants an answer, its trace context). Waits for the ack.
    pub async fn publish_command(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(), BusError> {
        let m = Outgoing::to(topic, payload).key(key).headers(headers);
        self.send(m, timeout).await.map(|_| ())
    }

    /// A `CommandBatch` to the partition its commands' keys land in, with
    /// its headers (the reply topic, the trace context). Waits for the ack.
    pub async fn publish_command_batch(
        &self,
        topic: &str,
        partition: i32,
        payload: &[u8],
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(), BusError> {
        let m = Outgoing::to(topic, payload)
            .partition(partition)
            .headers(headers);
        self.send(m, timeout).await.map(|_| ())
    }

    /// A batch's replies to one ingress (a reply topic has one partition,
    /// which its ingress reads). Not awaited: a lost reply costs the IdP a
    /// 503 and a retry, never data.
    pub fn publish_replies(&self, reply_topic: &str, payload: &[u8]) -> Result<(), BusError> {
        self.enqueue(Outgoing::to(reply_topic, payload).partition(0))
    }

    /// Publish every message, enqueued in the order given (per-key order
    /// holds on an idempotent producer), and wait for every ack: the first
    /// failure, if any.
    pub async fn publish_all(
        &self,
        messages: &[Outgoing<'_>],
        timeout: Duration,
    ) -> Result<(), BusError> {
        // Futures are polled in order on their first poll, which is when
        // each message is enqueued.
        let pending = messages.iter().map(|m| self.send(*m, timeout));
        for delivery in futures::future::join_all(pending).await {
            delivery?;
        }
        Ok(())
    }

    /// How many partitions `topic` has, as the broker says.
    pub async fn partition_count(&self, topic: &str, timeout: Duration) -> Result<i32, BusError> {
        match &self.0 {
            Via::Kafka(p) => {
                let (p, topic) = (p.clone(), topic.to_string());
                // Metadata calls block: off the runtime.
                tokio::task::spawn_blocking(move || {
                    crate::partition_count(p.client(), &topic, timeout)?
                        .ok_or(BusError::NoPartitions(topic))
                })
                .await
                .map_err(|e| BusError::Task(e.to_string()))?
            }
            Via::Fake(bus) => Ok(bus.partitions(topic)),
        }
    }

    /// Whether the broker answers with `topic`'s metadata within
    /// `timeout` (readiness).
    pub async fn reachable(&self, topic: &str, timeout: Duration) -> bool {
        match &self.0 {
            Via::Kafka(p) => {
                let (p, topic) = (p.clone(), topic.to_string());
                let metadata = tokio::task::spawn_blocking(move || {
                    p.client().fetch_metadata(Some(&topic), timeout).map(|_| ())
                })
                .await;
                matches!(metadata, Ok(Ok(())))
            }
            Via::Fake(bus) => bus.is_up(),
        }
    }

    /// Whether the broker gives any metadata at all to these settings
    /// within `timeout` (credentials checks).
    pub async fn authenticates(kafka: &KafkaSettings, timeout: Duration) -> Result<(), BusError> {
        let producer: rdkafka::producer::BaseProducer =
            producer_config(kafka, 1_000_000).create()?;
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(BusError::from)
        })
        .await
        .map_err(|e| BusError::Task(e.to_string()))?
    }
}
