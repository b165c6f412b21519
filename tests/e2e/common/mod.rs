//! The end-to-end harness: real `scimflow` processes against the test
//! PostgreSQL and broker that `./scripts/test` starts. Each test gets a
//! fresh database cloned from the migrated template (dropped when the
//! test's `Stack` goes) and its own topic prefix and consumer group, so
//! tests run in parallel without sharing anything but the servers.
//!
//! By job: the processes (`process`), the admin API's process and client
//! (`admin_api`), the test database (`database`), the broker (`kafka`), the
//! SCIM client (`scim`), change events against their schemas (`schema`),
//! a headless Chromium driven over WebDriver (`browser`).

mod admin_api;
mod browser;
mod database;
mod kafka;
mod process;
mod schema;
mod scim;

pub use admin_api::{AdminApi, ADMIN_TOKEN};
pub use browser::{Browser, PAGE_DEADLINE};
pub use database::shared_postgres;
pub use kafka::TopicMessage;
pub use process::{eventually, free_port, poll_until, Stack, LOCAL_BROKER_SETTINGS};
pub use schema::{assert_matches_schema, assert_one_event_per_change};
pub use scim::{patch_op, Reply, Tenant, SCIM_JSON};
