//! End-to-end tests: the real binary, the real broker, the real database.
//! Run through `./scripts/test`, which starts both servers.

mod admin;
mod bounds;
mod bulk;
mod common;
mod conformance;
mod console;
mod crash;
mod deploy;
mod dlq;
mod entra;
mod fuzz;
mod groups;
mod leniency;
mod okta;
mod otlp;
mod parsers;
mod poison;
mod production;
mod protocol;
mod races;
mod rules;
mod tenants;
