//! Everything the ingress and the processor must agree on, and nothing that
//! talks to a client: the SCIM model and its pure rules (filters, PATCH,
//! roles, identity), the command / outcome / event types that cross Kafka,
//! the one place that owns SQL (`store`), W3C trace context over header
//! pairs (`trace_context`) and its bridge to exported spans (`telemetry`),
//! configuration, and the admin `/metrics` listener both roles run
//! (`metrics`). Kafka is the bus crate's (`scimflow-bus`).
//!
//! Pure decision logic (`scim`, `rules`) must not do I/O: a state and a
//! request in, a new state or a rule violation out. I/O lives in `store`
//! and `metrics` only. This crate must not serve SCIM or run a
//! consumer loop; those belong to the ingress and the processor.

pub mod command;
pub mod config;
pub mod metrics;
pub mod rules;
pub mod scim;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod trace_context;

pub use scim::error::{ScimError, ScimType};
