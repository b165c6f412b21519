//! The store against a real PostgreSQL database, a fresh one per test
//! (cloned from the migrated template and dropped when the test ends).

use diesel::{Connection, PgConnection};
use serde_json::json;
use uuid::Uuid;

use scimflow_shared::command::{Disposition, Outcome};
use scimflow_shared::store::activity::NewActivity;
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

fn activity_at(
    tenant: Uuid,
    at: chrono::DateTime<chrono::Utc>,
    method: &str,
    status: i16,
    request: &str,
) -> NewActivity {
    NewActivity {
        tenant_id: tenant,
        occurred_at: at,
        method: method.into(),
        resource_type: Some("User".into()),
        resource_id: None,
        status,
        request_id: Some(request.into()),
        user_id: None,
        scim_type: None,
        detail: None,
    }
}

/// The console's list: a search names tenants by part of their name,
/// reference or id, literally (`%` is not a wildcard), and each comes with
/// its counts; its chart counts writes and rejections per hour; its log
/// filters by time and by request id.
#[test]
fn the_consoles_queries_find_count_and_filter() {
    use chrono::{Duration, Timelike, Utc};
    use scimflow_shared::store::activity::{self, ActivityQuery};
    use scimflow_shared::store::tenants::overview;

    let db = TestDatabase::new("store_console_queries");
    let mut conn = db.connect();
    let acme = insert_tenant(
        &mut conn,
        "Acme Zürich",
        &scimflow_shared::token::generate(),
    );
    let other = insert_tenant(
        &mut conn,
        "50% Off Ltd",
        &scimflow_shared::token::generate(),
    );
    let now = Utc::now();
    let hour = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .expect("an hour");
    activity::insert_batch(
        &mut conn,
        &[
            activity_at(acme, hour - Duration::hours(2), "POST", 201, "r-1"),
            activity_at(acme, hour - Duration::hours(2), "PATCH", 200, "r-2"),
            activity_at(acme, hour - Duration::hours(2), "GET", 200, "r-3"),
            activity_at(acme, hour - Duration::hours(2), "POST", 409, "r-4"),
            activity_at(acme, hour, "PUT", 400, "r-5"),
            activity_at(other, hour, "POST", 201, "r-6"),
        ],
    )
    .expect("the log");

    let names = |search: &str| -> Vec<String> {
        overview(&mut db.connect(), search, 0, 50)
            .expect("the overview")
            .1
            .into_iter()
            .map(|t| t.record.row.name)
            .collect()
    };
    assert_eq!(names(""), ["Acme Zürich", "50% Off Ltd"]);
    assert_eq!(names("zÜRICH"), ["Acme Zürich"]);
    assert_eq!(names("50%"), ["50% Off Ltd"]);
    assert_eq!(names("5_%"), Vec::<String>::new(), "% and _ are literal");
    // The random end of the id (its start is the time, the same for both).
    let id_end = acme.to_string().rsplit('-').next().map(str::to_uppercase);
    assert_eq!(names(&id_end.unwrap_or_default()), ["Acme Zürich"]);
    let (total, page) = overview(&mut conn, "", 1, 1).expect("a page");
    assert_eq!((total, page.len()), (2, 1));
    let glance = &overview(&mut conn, "Acme", 0, 50).expect("acme").1[0].glance;
    assert_eq!(
        (glance.users, glance.groups, glance.open_dead_letters),
        (0, 0, 0)
    );
    assert_eq!(glance.errors_last_day, 2);
    assert!(glance.last_request_at.is_some());

    let hours = activity::hourly(&mut conn, acme, hour - Duration::days(1)).expect("the chart");
    let counted: Vec<(i64, i64, i64)> = hours
        .iter()
        .map(|h| ((hour - h.hour).num_hours(), h.writes, h.rejections))
        .collect();
    assert_eq!(counted, [(2, 2, 1), (0, 0, 1)], "GETs are not writes");

    let ids = |q: ActivityQuery| -> Vec<String> {
        activity::list(&mut db.connect(), acme, &q)
            .expect("the log")
            .into_iter()
            .filter_map(|r| r.entry.request_id)
            .collect()
    };
    let page = |q: ActivityQuery| ActivityQuery { limit: 50, ..q };
    assert_eq!(
        ids(page(ActivityQuery {
            request_id: Some("r-4".into()),
            ..Default::default()
        })),
        ["r-4"]
    );
    assert_eq!(
        ids(page(ActivityQuery {
            since: Some(hour - Duration::minutes(30)),
            ..Default::default()
        })),
        ["r-5"]
    );
    assert_eq!(
        ids(page(ActivityQuery {
            until: Some(hour - Duration::minutes(30)),
            status: Some((400, 499)),
            ..Default::default()
        })),
        ["r-4"]
    );
    assert_eq!(
        ids(page(ActivityQuery {
            request_id: Some("r-6".into()),
            ..Default::default()
        })),
        Vec::<String>::new(),
        "another tenant's request is not in this log"
    );
}

/// A console session is found by the hash of its id until it expires or
/// is ended; making one forgets the expired ones.
#[test]
fn a_console_session_lives_until_it_expires_or_is_ended() {
    use chrono::{Duration, Utc};
    use scimflow_shared::store::console_sessions::{self, ConsoleSessionRow};

    let db = TestDatabase::new("store_console_sessions");
    let mut conn = db.connect();
    let now = Utc::now();
    let session = |id: &str, expires_in: Duration| ConsoleSessionRow {
        id_hash: id.into(),
        actor: "Grace".into(),
        csrf_token: format!("csrf-{id}"),
        admin_token: "admin-1".into(),
        created_at: now - Duration::hours(9),
        expires_at: now + expires_in,
    };
    console_sessions::insert(&mut conn, &session("old", Duration::hours(-1)))
        .expect("an old session");
    console_sessions::insert(&mut conn, &session("live", Duration::hours(1))).expect("a session");
    let found = console_sessions::find_live(&mut conn, "live", "admin-1", now).expect("a lookup");
    assert_eq!(found.map(|s| s.csrf_token).as_deref(), Some("csrf-live"));
    assert!(
        console_sessions::find_live(&mut conn, "live", "admin-2", now)
            .expect("a lookup")
            .is_none(),
        "a session ends when the admin token that made it is replaced"
    );
    assert!(
        console_sessions::find_live(&mut conn, "old", "admin-1", now - Duration::hours(2))
            .expect("a lookup")
            .is_none(),
        "the expired session was forgotten when the next one was made"
    );
    assert!(
        console_sessions::find_live(&mut conn, "live", "admin-1", now + Duration::hours(2))
            .expect("a lookup")
            .is_none(),
        "expired"
    );
    console_sessions::delete(&mut conn, "live").expect("signed out");
    console_sessions::delete(&mut conn, "live").expect("signing out twice is no error");
    assert!(
        console_sessions::find_live(&mut conn, "live", "admin-1", now)
            .expect("a lookup")
            .is_none()
    );
}
