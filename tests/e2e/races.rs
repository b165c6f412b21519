//! Races between a batch and a deletion, against the real database and
//! made deterministic: one connection holds a lock in an open transaction,
//! the other is shown (by PostgreSQL's own view of who waits on a lock) to
//! wait for it, then the first commits and the second's answer is checked.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use scimflow_bus::Topics;
use scimflow_processor::batch::{run_batch, BatchSettings, Disposition, Inbound};
use scimflow_processor::policy::{Attempt, Mode};
use scimflow_shared::command::{Command, CommandEnvelope, ENVELOPE_VERSION};
use scimflow_shared::store::tenants::{self, TenantRow};
use scimflow_shared::store::users::{self, UserRow};

use crate::common::Stack;

fn sql(conn: &mut PgConnection, statement: &str) {
    diesel::sql_query(statement)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

pub fn new_tenant(conn: &mut PgConnection) -> Uuid {
    let id = Uuid::now_v7();
    tenants::insert(
        conn,
        &TenantRow {
            id,
            name: "race".into(),
            token_hash: format!("race:{id}"),
            features: Vec::new(),
            created_at: Utc::now(),
            token_rotated_at: None,
            suspended_at: None,
            deleted_at: None,
        },
    )
    .expect("tenant");
    id
}

pub fn new_user(conn: &mut PgConnection, tenant_id: Uuid, email: &str) -> Uuid {
    let now = Utc::now();
    let id = Uuid::now_v7();
    users::insert(
        conn,
        &UserRow {
            id,
            tenant_id,
            user_name: email.into(),
            external_id: None,
            primary_email: email.into(),
            active: true,
            primary_role: "analyst".into(),
            permission: "user".into(),
            attrs: json!({"userName": email, "emails": [{"value": email, "type": "work", "primary": true}]}),
            scim_managed: true,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        },
    )
    .expect("user");
    id
}

/// Poll until some session of this database waits on a lock.
fn wait_until_blocked(stack: &Stack, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = stack.count(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `f` on a connection of its own, on a thread; its answer comes on
/// the receiver.
fn on_another_connection<T: Send + 'static>(
    stack: &Stack,
    f: impl FnOnce(&mut PgConnection) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let url = stack.db_url.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&url).expect("connect");
        let _ = tx.send(f(&mut conn));
    });
    rx
}

#[test]
fn a_batch_waits_for_a_tenant_deletion_under_way_and_then_finds_the_tenant_gone() {
    let stack = Stack::new("race_tenant_delete_first");
    let mut deleting = stack.db();
    let tenant_id = new_tenant(&mut deleting);
    let user_id = Uuid::now_v7();
    let envelope = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id: Uuid::now_v7(),
        tenant_id,
        request_id: "race".into(),
        accepted_at: Utc::now(),
        base_url: "http://127.0.0.1/scim/v2".into(),
        if_match: None,
        reply: Default::default(),
        command: Command::CreateUser {
            user_id,
            body: json!({"userName": "late@race.example",
                         "emails": [{"value": "late@race.example", "type": "work", "primary": true}]}),
        },
    };
    let inbound = Inbound {
        topic: "race.commands".into(),
        partition: 0,
        offset: 0,
        key: Some(envelope.partition_key()),
        payload: serde_json::to_vec(&envelope).expect("envelope"),
        trace: None,
    };
    // The deletion has locked the tenant and is purging.
    sql(&mut deleting, "BEGIN");
    sql(
        &mut deleting,
        &format!("SELECT id FROM tenants WHERE id = '{tenant_id}' FOR UPDATE"),
    );
    let batch = on_another_connection(&stack, move |conn| {
        let settings = BatchSettings {
            topics: &Topics::new("race"),
            attempt: Attempt {
                failed: 0,
                mode: Mode::Whole,
            },
        };
        run_batch(conn, &[inbound], &settings).map_err(|e| e.to_string())
    });
    wait_until_blocked(&stack, "the batch");
    assert!(
        batch.try_recv().is_err(),
        "the batch went ahead of the deletion"
    );
    sql(
        &mut deleting,
        &format!("UPDATE tenants SET deleted_at = now() WHERE id = '{tenant_id}'"),
    );
    sql(&mut deleting, "COMMIT");
    let done = batch
        .recv_timeout(Duration::from_secs(30))
        .expect("the batch to finish")
        .expect("the batch to commit");
    match &done[..] {
        [Disposition::Answered(o)] => assert_eq!(o.status(), 401, "{o:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stack.count(&format!(
            "SELECT count(*) AS n FROM users WHERE tenant_id = '{tenant_id}'"
        )),
        0,
        "nothing written for a deleted tenant"
    );
}

#[test]
fn a_tenant_deletion_waits_for_a_batch_applying_the_tenants_commands() {
    let stack = Stack::new("race_batch_first");
    let mut applying = stack.db();
    let tenant_id = new_tenant(&mut applying);
    // A batch has share-locked the tenant and found it live; it has
    // written nothing yet.
    sql(&mut applying, "BEGIN");
    let locked = tenants::lock_for_batch(&mut applying, &[tenant_id]).expect("lock");
    assert_eq!(locked.len(), 1);
    let deletion = on_another_connection(&stack, move |conn| {
        tenants::delete(conn, tenant_id, &[])
            .map_err(|e| e.to_string())
            .map(|p| p.map(|p| p.users))
    });
    wait_until_blocked(&stack, "the deletion");
    assert!(
        deletion.try_recv().is_err(),
        "the deletion went ahead of the batch"
    );
    // Its write, made believing the tenant live, is purged with it.
    new_user(&mut applying, tenant_id, "mid@race.example");
    sql(&mut applying, "COMMIT");
    let purged = deletion
        .recv_timeout(Duration::from_secs(30))
        .expect("the deletion to finish")
        .expect("the deletion to commit");
    assert_eq!(
        purged,
        Some(1),
        "the batch's user is purged with the tenant"
    );
    assert_eq!(
        stack.count(&format!(
            "SELECT count(*) AS n FROM users WHERE tenant_id = '{tenant_id}'"
        )),
        0
    );
}

#[test]
fn a_membership_check_waits_for_a_user_deletion_and_then_finds_the_user_gone() {
    let stack = Stack::new("race_member_delete");
    let mut deleting = stack.db();
    let tenant_id = new_tenant(&mut deleting);
    let user_id = new_user(&mut deleting, tenant_id, "member@race.example");
    // The user's deletion is under way (L5: a soft delete).
    sql(&mut deleting, "BEGIN");
    sql(
        &mut deleting,
        &format!("UPDATE users SET deleted_at = now() WHERE id = '{user_id}'"),
    );
    let check = on_another_connection(&stack, move |conn| {
        conn.transaction(|conn| {
            scimflow_shared::store::groups::unknown_users(conn, tenant_id, &[user_id])
        })
        .map_err(|e| e.to_string())
    });
    wait_until_blocked(&stack, "the membership check");
    assert!(
        check.try_recv().is_err(),
        "the check went ahead of the deletion"
    );
    sql(&mut deleting, "COMMIT");
    let unknown = check
        .recv_timeout(Duration::from_secs(30))
        .expect("the check to finish")
        .expect("the check to succeed");
    assert_eq!(
        unknown,
        vec![user_id],
        "a deleted user cannot become a member"
    );
}
