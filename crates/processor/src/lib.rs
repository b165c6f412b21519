//! The processor: consumes the command topic as a member of one consumer
//! group, applies commands in order per resource (P2) in batches of one
//! database transaction each, shared fairly between tenants (`fair`), answers each ingress on its reply
//! topic, and commits offsets only after the transaction committed (P1).
//! What happens to a command that fails is one pure decision (`policy`):
//! its own failures (a panic, an undecodable payload, a database refusal)
//! make it a dead letter after a bounded number of attempts, so no
//! tenant's request can stop the pipeline for the others; outages are
//! retried without end.
//! It also runs the outbox relay that publishes change events and dead
//! letters (P4, P5).
//!
//! It must not decide product rules itself (that is `scimflow_shared::rules`),
//! write SQL (that is `scimflow_shared::store`) or use a Kafka client (that
//! is `scimflow_bus`: the consumer loop reads a `CommandSource`, replies and
//! relays through a `Publisher`), and it never answers an HTTP client
//! directly.

pub mod apply;
pub mod batch;
mod consumer;
mod fair;
mod health;
mod metrics;
pub mod policy;
mod relay;

pub use consumer::{consume, run};

/// Wait for `shutdown` to flip to true, or for `d` to pass; true when
/// shutting down. Used for every back-off, so a stop is never delayed by
/// one.
pub(crate) async fn pause_unless_shutdown(
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    d: std::time::Duration,
) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    let _ = tokio::time::timeout(d, shutdown.wait_for(|stop| *stop)).await;
    *shutdown.borrow()
}
