//! The pure core of scimflow: the SCIM model and its parsers (`scim`), the
//! product rules (`rules`), the types that cross Kafka (`command`:
//! envelopes and outcomes; `event`: change events), and the decisions
//! that need no stored state beyond what they are given (`scim::bulk`'s
//! wave planner, `rules::identity`'s link-or-conflict decision).
//!
//! Everything here is a function of its arguments: no I/O, no clock read
//! except where a caller passes one in, no database, broker, HTTP server
//! or runtime. Its Cargo.toml names pure crates only, so that holds by
//! construction. It must not decide HTTP (statuses, headers): outcomes
//! say what became of a command and the ingress maps that to HTTP.

pub mod command;
pub mod event;
pub mod rules;
pub mod scim;

pub use scim::error::{ScimError, ScimType};
