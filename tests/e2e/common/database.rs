//! A test's own database: cloned from the migrated template when its
//! `Stack` is made, dropped when it goes (`store::test_db`), and the
//! shared cluster itself for the tests that stop it.

use diesel::{Connection, PgConnection, RunQueryDsl};

use super::Stack;

impl Stack {
    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.db_url).expect("connect to the test database")
    }

    /// A database rule that fails every update of a user whose title
    /// becomes `poison`: commands that pass the ingress's checks and still
    /// cannot be applied, until `allow_poison` lifts it.
    pub fn refuse_poison(&self) {
        let mut db = self.db();
        diesel::sql_query(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
               IF NEW.attrs->>'title' = 'poison' THEN RAISE EXCEPTION 'title poison is refused by a database rule'; END IF;
               RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .execute(&mut db)
        .expect("function");
        diesel::sql_query("CREATE TRIGGER refuse_poison BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
            .execute(&mut db)
            .expect("trigger");
    }

    /// The cause of `refuse_poison` fixed.
    pub fn allow_poison(&self) {
        diesel::sql_query("DROP TRIGGER refuse_poison ON users")
            .execute(&mut self.db())
            .expect("drop trigger");
    }

    /// A single number from SQL (`SELECT count(*) AS n ...`).
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut self.db())
            .expect("count query")
            .n
    }
}

/// Stop or start (`"stop"`, `"start"`) the PostgreSQL cluster every test
/// shares, through the script `./scripts/test` provides: only for tests
/// named `exclusive_*`, which run alone.
pub async fn shared_postgres(action: &'static str) {
    let pgctl = std::env::var("SCIMFLOW_TEST_PG_CTL")
        .expect("SCIMFLOW_TEST_PG_CTL: run through ./scripts/test");
    let status =
        tokio::task::spawn_blocking(move || std::process::Command::new(pgctl).arg(action).status())
            .await
            .expect("pgctl task")
            .expect("pgctl");
    assert!(status.success(), "pgctl {action}");
}
