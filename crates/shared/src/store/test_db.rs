//! A database of its own for each test, as crates.io's `TestDatabase`:
//! `./scripts/test` migrates one template database once, each test clones
//! a fresh database from it (`CREATE DATABASE ... TEMPLATE`, a file copy,
//! no migrations), and the clone is dropped when the test's handle goes,
//! passed or failed. Only for tests (the `testing` feature).

use chrono::Utc;
use diesel::{Connection, PgConnection, RunQueryDsl};
use uuid::Uuid;

use super::tenants::{self, TenantRow};
use super::{connect_pool, PgPool};

/// The cluster (`SCIMFLOW_TEST_PG`) and the migrated template
/// (`SCIMFLOW_TEST_TEMPLATE`) that `./scripts/test` exports.
fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests that need PostgreSQL through ./scripts/test")
    })
}

/// A fresh, migrated database, dropped on `Drop` (kept when
/// `KEEP_TEST_DIR=1`, as `./scripts/test` keeps its files).
pub struct TestDatabase {
    name: String,
    cluster: String,
    url: String,
}

impl TestDatabase {
    /// Clone the template into a database named after `test` and a random
    /// suffix.
    pub fn new(test: &str) -> TestDatabase {
        let cluster = required_env("SCIMFLOW_TEST_PG");
        let template = required_env("SCIMFLOW_TEST_TEMPLATE");
        let suffix = Uuid::new_v4().simple().to_string();
        let name = format!("{}_{}", test, &suffix[..8]);
        let mut admin = PgConnection::establish(&format!("{cluster}/postgres"))
            .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        let url = format!("{cluster}/{name}");
        TestDatabase { name, cluster, url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    /// A pool as the services build it (statement timeout included).
    pub fn pool(&self, size: u32) -> PgPool {
        connect_pool(&self.url, size, std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("a pool on {}: {e}", self.name))
    }
}

/// An active tenant named `name` whose bearer token is `token`, with no
/// plan features; its id.
pub fn insert_tenant(conn: &mut PgConnection, name: &str, token: &str) -> Uuid {
    let id = Uuid::now_v7();
    tenants::insert(
        conn,
        &TenantRow {
            id,
            name: name.to_string(),
            token_hash: crate::token::hash(token),
            features: Vec::new(),
            created_at: Utc::now(),
            token_rotated_at: None,
            suspended_at: None,
            deleted_at: None,
        },
    )
    .unwrap_or_else(|e| panic!("inserting the tenant {name}: {e}"));
    id
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::env::var("KEEP_TEST_DIR").as_deref() == Ok("1") {
            return;
        }
        // FORCE ends whatever connections a pool or a killed service left.
        // Best effort: a test that stopped the cluster leaves it to the
        // cluster's own removal.
        let dropped = PgConnection::establish(&format!("{}/postgres", self.cluster))
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin)
                .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("the test database {} was not dropped: {e}", self.name);
        }
    }
}
