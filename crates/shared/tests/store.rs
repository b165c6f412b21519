//! The store against a real PostgreSQL database, a fresh one per test
//! (cloned from the migrated template and dropped when the test ends).

use diesel::{Connection, PgConnection};
use serde_json::json;
use uuid::Uuid;

use scimflow_shared::command::{Disposition, Outcome};
use scimflow_shared::store::commands::{find_outcomes, find_tenant_outcome, PendingWrites};
use scimflow_shared::store::outbox::{
    delete_published, enqueue_message, last_attempt, outbox_backlog, record_attempt, unpublished,
    unpublished_between,
};
use scimflow_shared::store::test_db::{insert_tenant, TestDatabase};
use scimflow_shared::store::StoreError;

fn tenant(conn: &mut PgConnection) -> Uuid {
    insert_tenant(conn, "store", &scimflow_shared::token::generate())
}

/// The outbox holds exactly what committed, in id order, with its
/// headers, until the relay deletes what it published; the relay's last
/// attempt is what a successor recovers from.
#[test]
fn the_outbox_holds_what_committed_in_id_order_until_published() {
    let db = TestDatabase::new("store_outbox");
    let mut conn = db.connect();
    let rolled_back = conn.transaction::<(), StoreError, _>(|c| {
        enqueue_message(c, "t.user-changes", "k/lost", b"lost", &[])?;
        Err(StoreError::Corrupt("roll back".into()))
    });
    assert!(rolled_back.is_err());
    conn.transaction::<(), StoreError, _>(|c| {
        for (key, payload) in [("k/a", "a"), ("k/b", "b"), ("k/c", "c")] {
            enqueue_message(
                c,
                "t.user-changes",
                key,
                payload.as_bytes(),
                &[("h", format!("{payload}!"))],
            )?;
        }
        Ok(())
    })
    .expect("committed");

    let rows = unpublished(&mut conn, 10).expect("the outbox");
    let payloads: Vec<&[u8]> = rows.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [&b"a"[..], &b"b"[..], &b"c"[..]],
        "what committed, in order"
    );
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(rows[1].message_key, "k/b");
    assert_eq!(rows[1].headers, json!({"h": "b!"}));
    assert_eq!(outbox_backlog(&mut conn).expect("a count"), 3);

    let (first, last) = (rows[0].id, rows[2].id);
    record_attempt(&mut conn, first, last).expect("an attempt");
    let attempt = last_attempt(&mut conn).expect("read").expect("one");
    assert_eq!((attempt.first_id, attempt.last_id), (first, last));

    delete_published(&mut conn, &[rows[0].id, rows[2].id]).expect("deleted");
    let left = unpublished_between(&mut conn, first, last).expect("the range");
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), [rows[1].id]);
    assert_eq!(outbox_backlog(&mut conn).expect("a count"), 1);
}

/// A batch's outcomes are written when it flushes and read back whole, by
/// command id (dedup) and by the tenant that sent it (its status monitor);
/// another tenant cannot read them. Rows taken back to a mark (a command
/// whose savepoint rolled back) are not written.
#[test]
fn a_stored_outcome_is_read_back_whole_and_only_by_its_tenant() {
    let db = TestDatabase::new("store_outcomes");
    let mut conn = db.connect();
    let (owner, other) = (tenant(&mut conn), tenant(&mut conn));
    let outcome = Outcome::success(
        Uuid::now_v7(),
        Disposition::Created,
        json!({"id": "u1", "userName": "ada@example.com"}),
        "W/\"1\"".into(),
        "http://scim.example/Users/u1".into(),
    );
    let dropped = Outcome {
        command_id: Uuid::now_v7(),
        ..outcome.clone()
    };
    conn.transaction::<(), StoreError, _>(|c| {
        let mut pending = PendingWrites::default();
        pending.outcome(owner, &outcome)?;
        let mark = pending.mark();
        pending.outcome(owner, &dropped)?;
        pending.rollback_to(mark);
        pending.flush(c)
    })
    .expect("committed");
    assert_eq!(
        find_outcomes(&mut conn, &[outcome.command_id, dropped.command_id]).expect("dedup"),
        std::slice::from_ref(&outcome),
        "the outcome whole; the one rolled back to the mark not at all"
    );
    assert_eq!(
        find_tenant_outcome(&mut conn, owner, outcome.command_id).expect("status"),
        Some(outcome.clone())
    );
    assert_eq!(
        find_tenant_outcome(&mut conn, other, outcome.command_id).expect("status"),
        None
    );
}

/// A test's database is gone once its handle is, even with a connection
/// still open on it (as a killed service or a pool leaves them).
#[test]
fn a_test_database_is_dropped_with_its_handle() {
    use diesel::sql_types::{BigInt, Text};
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let exists = |name: &str| {
        let cluster = std::env::var("SCIMFLOW_TEST_PG").expect("run through ./scripts/test");
        let mut admin =
            PgConnection::establish(&format!("{cluster}/postgres")).expect("the cluster");
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .get_result::<N>(&mut admin)
            .expect("a count")
            .n
            == 1
    };
    let db = TestDatabase::new("store_dropped");
    let name = db.name().to_string();
    let open = db.connect();
    assert!(exists(&name));
    drop(db);
    let kept = std::env::var("KEEP_TEST_DIR").as_deref() == Ok("1");
    assert_eq!(exists(&name), kept, "{name} after its handle went");
    drop(open);
}
