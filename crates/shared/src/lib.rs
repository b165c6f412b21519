//! The I/O both roles share, and nothing that talks to a client: the one
//! place that owns SQL (`store`), configuration, tokens, the bridge from
//! W3C trace context to exported spans (`telemetry`), and the admin
//! `/metrics` listener every role runs (`metrics`). Kafka is the bus
//! crate's (`scimflow-bus`); configuration only fills in its
//! `KafkaSettings`. The pure model, rules, wire types and trace context
//! live in `scimflow-core` and are re-exported here (`scim`, `rules`,
//! `command`, `trace_context`).
//!
//! This crate must not serve SCIM or run a consumer loop; those belong to
//! the ingress and the processor.

pub mod config;
pub mod metrics;
pub mod store;
pub mod telemetry;
pub mod token;

// The pure core, re-exported under the names the other crates have always
// used.
pub use scimflow_core::{command, rules, scim, trace_context};
pub use scimflow_core::{ScimError, ScimType};
