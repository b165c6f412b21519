//! An ingress's reply topic, read from its end when the ingress starts:
//! replies for requests made from then on. Outside any consumer group,
//! one partition, no offsets committed (pending requests live only in
//! memory).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::fake::{FakeBus, Subscription};
use crate::{retry_at_startup, standalone_consumer_config, BusError, ClientStats, KafkaSettings};

/// The payloads arriving on one reply topic.
pub struct ReplyStream(Via);

enum Via {
    Kafka(Arc<StreamConsumer<ClientStats>>),
    Fake(Subscription),
}

impl ReplyStream {
    /// Start reading `topic` at its current end.
    pub async fn open(kafka: &KafkaSettings, topic: &str) -> Result<Self, BusError> {
        let consumer: StreamConsumer<ClientStats> =
            standalone_consumer_config(kafka, kafka.fetch_wait).create_with_context(ClientStats)?;
        let consumer = Arc::new(consumer);
        let (_, high) = retry_at_startup("reading the reply topic's end offset", || {
            let (c, t) = (consumer.clone(), topic.to_string());
            async move {
                tokio::task::spawn_blocking(move || {
                    c.fetch_watermarks(&t, 0, Duration::from_secs(10))
                        .map_err(BusError::from)
                })
                .await
                .map_err(|e| BusError::Task(e.to_string()))?
            }
        })
        .await?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(high))?;
        consumer.assign(&tpl)?;
        Ok(ReplyStream(Via::Kafka(consumer)))
    }

    /// Read `topic` of the in-memory bus from its current end.
    pub fn fake(bus: &FakeBus, topic: &str) -> Self {
        ReplyStream(Via::Fake(bus.subscribe(topic)))
    }

    /// The next reply message's payload (empty if it had none).
    pub async fn next(&mut self) -> Result<Vec<u8>, BusError> {
        match &mut self.0 {
            Via::Kafka(c) => {
                let m = c.recv().await?;
                Ok(m.payload().map(<[u8]>::to_vec).unwrap_or_default())
            }
            Via::Fake(cursor) => Ok(cursor.next().await.payload),
        }
    }
}
