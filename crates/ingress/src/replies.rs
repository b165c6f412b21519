//! Request-reply over Kafka: each ingress instance reads its own reply
//! topic and hands each outcome to the request waiting for it, by command
//! id (a reply message holds a processor batch's outcomes: `ReplyBatch`).
//! Pending requests live only in memory; a request whose reply does not
//! come in time gets a 503, and its outcome stays in PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use scimflow_bus::ReplyStream;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

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
    /// Hand each outcome arriving on `replies` (opened at the reply
    /// topic's end: replies for requests made from then on) to the request
    /// waiting for it, until `shutdown` turns true.
    pub fn start(mut replies: ReplyStream, mut shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let router = Arc::new(ReplyRouter::default());
        let r = router.clone();
        tokio::spawn(async move {
            loop {
                let payload = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    m = replies.next() => m,
                };
                match payload {
                    Ok(payload) if payload.is_empty() => {}
                    Ok(payload) => match ReplyBatch::decode(&payload) {
                        Ok(outcomes) => outcomes.into_iter().for_each(|o| r.deliver(o)),
                        Err(e) => tracing::warn!(error = %e, "undecodable reply"),
                    },
                    Err(e) => tracing::warn!(error = %e, "reply consumer error"),
                }
            }
        });
        router
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
