//! Request-reply over Kafka: each ingress instance reads its own reply
//! topic and hands each outcome to the request waiting for it, by command
//! id (a reply message holds a processor batch's outcomes: `ReplyBatch`). Pending requests live only in memory; a request whose reply does not
//! come in time gets a 503, and its outcome stays in PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use scimflow_shared::bus;
use scimflow_shared::command::{Outcome, ReplyBatch};

#[derive(Default)]
pub struct ReplyRouter {
    pending: Mutex<HashMap<Uuid, oneshot::Sender<Outcome>>>,
}

/// Removes the pending entry when the waiting request goes away, answered
/// or not, so the map cannot grow with abandoned requests.
pub struct PendingReply<'a> {
    router: &'a ReplyRouter,
    id: Uuid,
    pub rx: oneshot::Receiver<Outcome>,
}

impl Drop for PendingReply<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.router.pending.lock() {
            map.remove(&self.id);
        }
    }
}

impl ReplyRouter {
    /// Start reading `topic` from its current end; replies for requests
    /// made from now on are read.
    pub async fn start(
        kafka: &bus::KafkaSettings,
        topic: &str,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Self>> {
        let consumer: StreamConsumer<bus::ClientStats> =
            bus::standalone_consumer_config(kafka, kafka.fetch_wait)
                .create_with_context(bus::ClientStats)
                .context("creating the reply consumer")?;
        let consumer = Arc::new(consumer);
        let (_, high) = bus::retry_at_startup("reading the reply topic's end offset", || {
            let (c, t) = (consumer.clone(), topic.to_string());
            async move {
                tokio::task::spawn_blocking(move || {
                    c.fetch_watermarks(&t, 0, std::time::Duration::from_secs(10))
                })
                .await
                .context("the watermark task failed")?
                .context("reading the reply topic's end offset")
            }
        })
        .await?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(high))?;
        consumer.assign(&tpl).context("assigning the reply topic")?;

        let router = Arc::new(ReplyRouter::default());
        let r = router.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    m = consumer.recv() => m,
                };
                match msg {
                    Ok(m) => {
                        let Some(payload) = m.payload() else { continue };
                        match ReplyBatch::decode(payload) {
                            Ok(outcomes) => outcomes.into_iter().for_each(|o| r.deliver(o)),
                            Err(e) => tracing::warn!(error = %e, "undecodable reply"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reply consumer error"),
                }
            }
        });
        Ok(router)
    }

    pub fn register(&self, id: Uuid) -> PendingReply<'_> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.pending.lock() {
            map.insert(id, tx);
        }
        PendingReply {
            router: self,
            id,
            rx,
        }
    }

    fn deliver(&self, outcome: Outcome) {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&outcome.command_id));
        if let Some(tx) = waiter {
            let _ = tx.send(outcome);
        }
    }
}
