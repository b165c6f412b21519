//! The pure core of scimflow: the SCIM model and its parsers (`scim`,
//! entity-tag matching in `scim::etag`), the product rules (`rules`), the
//! types that cross Kafka (`command`: envelopes, and outcomes with their
//! typed `Disposition`; `event`: change events, which generate the
//! published JSON Schemas), and the decisions that need no stored state
//! beyond what they are given (`scim::bulk::BulkPlanner`, the /Bulk wave
//! planner; `rules::identity::create_as`, I3 link-or-409 and L5 return),
//! and W3C trace context over header pairs (`trace_context`), which HTTP
//! and Kafka headers share.
//!
//! Everything here is a function of its arguments: no I/O, no database,
//! broker, HTTP server or runtime, and no clock: times and ids are passed
//! in. Its Cargo.toml names pure crates only, so that holds by
//! construction. It does not decide HTTP: an outcome says what became of
//! a command and the ingress maps that to a response. (A `ScimError`
//! carries the status RFC 7644 puts in its body.)

pub mod command;
pub mod event;
pub mod rules;
pub mod scim;
pub mod trace_context;

pub use scim::error::{ScimError, ScimType};
