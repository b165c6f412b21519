//! The I/O both roles share, and nothing that talks to a client: the one
//! place that names Kafka topics and headers (`bus`), the one place that
//! owns SQL (`store`), configuration, tokens, and the admin `/metrics`
//! listener both roles run (`metrics`). The pure model, rules and wire
//! types live in `scimflow-core` and are re-exported here (`scim`,
//! `rules`, `command`).
//!
//! This crate must not serve SCIM or run a consumer loop; those belong to
//! the ingress and the processor.

pub mod bus;
pub mod config;
pub mod metrics;
pub mod store;
pub mod token;

// The pure core, re-exported under the names the other crates have always
// used.
pub use scimflow_core::{command, rules, scim};
pub use scimflow_core::{ScimError, ScimType};
