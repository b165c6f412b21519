//! End-to-end tests: the real binary, the real broker, the real database.
//! Run through `./scripts/test`, which starts both servers.

mod bulk;
mod common;
mod conformance;
mod crash;
mod dlq;
mod entra;
mod fuzz;
mod groups;
mod okta;
mod parsers;
mod production;
mod protocol;
mod rules;
mod tenants;
