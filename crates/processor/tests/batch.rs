//! `run_batch` against a real PostgreSQL database (a database of its own
//! per test, dropped when it ends): what one transaction makes of a batch
//! of commands, as the consumer hands it over.

use chrono::Utc;
use diesel::PgConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use scimflow_bus::{Inbound, Topics};
use scimflow_processor::batch::{run_batch, BatchSettings, Disposition};
use scimflow_processor::policy::{Attempt, Mode};
use scimflow_shared::command::{Command, CommandEnvelope, Outcome, ReplyShape, ENVELOPE_VERSION};
use scimflow_shared::store::outbox::unpublished;
use scimflow_shared::store::test_db::{insert_tenant, TestDatabase};
use scimflow_shared::store::users::find_live;

struct Tenant {
    id: Uuid,
}

fn tenant(conn: &mut PgConnection) -> Tenant {
    Tenant {
        id: insert_tenant(conn, "batch", &scimflow_shared::token::generate()),
    }
}

/// A command as it comes off the command topic: keyed by its resource.
fn inbound(tenant: &Tenant, offset: i64, command: Command) -> Inbound {
    let envelope = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id: Uuid::now_v7(),
        tenant_id: tenant.id,
        request_id: format!("req-{offset}"),
        accepted_at: Utc::now(),
        base_url: format!("http://scim.example/scim/v2/{}", tenant.id),
        if_match: None,
        reply: ReplyShape::Whole,
        command,
    };
    Inbound {
        topic: "batch.commands".into(),
        partition: 0,
        offset,
        key: Some(envelope.partition_key()),
        payload: serde_json::to_vec(&envelope).expect("encodes"),
        trace: None,
    }
}

fn create(name: &str) -> (Uuid, Command) {
    let user_id = Uuid::now_v7();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "emails": [{"value": name, "type": "work", "primary": true}],
    });
    (user_id, Command::CreateUser { user_id, body })
}

fn run(conn: &mut PgConnection, batch: &[Inbound]) -> Vec<Outcome> {
    let topics = Topics::new("batch");
    let settings = BatchSettings {
        topics: &topics,
        attempt: Attempt {
            failed: 0,
            mode: Mode::Whole,
        },
    };
    run_batch(conn, batch, &settings)
        .expect("the batch commits")
        .into_iter()
        .map(|d| match d {
            Disposition::Answered(o) => o,
            other => panic!("not answered: {other:?}"),
        })
        .collect()
}

fn live(conn: &mut PgConnection, tenant: &Tenant, id: Uuid) -> bool {
    find_live(conn, tenant.id, id, false)
        .expect("a lookup")
        .is_some()
}

/// A batch of creates applies in one transaction: every user is there,
/// each command is answered 201 with its user, and each left one change
/// event in the outbox, in command order.
#[test]
fn a_batch_of_creates_applies_and_queues_one_event_each() {
    let db = TestDatabase::new("batch_applies");
    let mut conn = db.connect();
    let t = tenant(&mut conn);
    let creates: Vec<(Uuid, Command)> = (0..3)
        .map(|n| create(&format!("user{n}@example.com")))
        .collect();
    let batch: Vec<Inbound> = creates
        .iter()
        .enumerate()
        .map(|(i, (_, c))| inbound(&t, i as i64, c.clone()))
        .collect();
    let outcomes = run(&mut conn, &batch);
    assert_eq!(outcomes.len(), 3);
    for ((user_id, _), outcome) in creates.iter().zip(&outcomes) {
        assert_eq!(outcome.status(), 201, "{:?}", outcome.disposition);
        assert_eq!(
            outcome.resource.as_ref().map(|b| b["id"].clone()),
            Some(json!(user_id))
        );
        assert!(live(&mut conn, &t, *user_id));
    }
    let events: Vec<Value> = unpublished(&mut conn, 100)
        .expect("the outbox")
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("an event"))
        .collect();
    let resources: Vec<Value> = events.iter().map(|e| e["resource_id"].clone()).collect();
    let expected: Vec<Value> = creates.iter().map(|(id, _)| json!(id)).collect();
    assert_eq!(resources, expected, "one event per create, in order");
}

/// A command a rule rejects (a replace of a user that does not exist)
/// answers its SCIM error and leaves its neighbours in the batch applied.
#[test]
fn a_rejected_command_leaves_its_neighbours_applied() {
    let db = TestDatabase::new("batch_rejects");
    let mut conn = db.connect();
    let t = tenant(&mut conn);
    let (first, create_first) = create("first@example.com");
    let (last, create_last) = create("last@example.com");
    let missing = Uuid::now_v7();
    let replace_missing = Command::ReplaceUser {
        user_id: missing,
        body: json!({"userName": "ghost@example.com"}),
    };
    let batch = [
        inbound(&t, 0, create_first),
        inbound(&t, 1, replace_missing),
        inbound(&t, 2, create_last),
    ];
    let outcomes = run(&mut conn, &batch);
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.status()).collect();
    assert_eq!(statuses, [201, 404, 201]);
    let error = outcomes[1]
        .disposition
        .error()
        .map(|e| e.to_body())
        .expect("an error body");
    assert_eq!(error["status"], "404", "{error}");
    assert!(live(&mut conn, &t, first));
    assert!(live(&mut conn, &t, last));
    assert!(!live(&mut conn, &t, missing));
}

/// A command delivered again (a lost offset commit, a rebalance) is
/// answered from its stored outcome and not applied again (P3): the same
/// answer, no second user, no second event.
#[test]
fn a_replayed_command_is_answered_from_its_stored_outcome() {
    let db = TestDatabase::new("batch_dedup");
    let mut conn = db.connect();
    let t = tenant(&mut conn);
    let (user_id, command) = create("once@example.com");
    let message = inbound(&t, 0, command);
    let first = run(&mut conn, std::slice::from_ref(&message));
    let events_after_first = unpublished(&mut conn, 100).expect("the outbox").len();
    let again = run(&mut conn, std::slice::from_ref(&message));
    assert_eq!(first, again, "the stored outcome, as first answered");
    assert_eq!(again[0].status(), 201);
    assert!(live(&mut conn, &t, user_id));
    assert_eq!(
        unpublished(&mut conn, 100).expect("the outbox").len(),
        events_after_first,
        "no second event"
    );
    // Delivered again inside a batch with new work: only the new applies.
    let (other, create_other) = create("other@example.com");
    let mixed = run(&mut conn, &[message, inbound(&t, 1, create_other)]);
    assert_eq!(mixed[0], first[0]);
    assert_eq!(mixed[1].status(), 201);
    assert!(live(&mut conn, &t, other));
    assert_eq!(
        unpublished(&mut conn, 100).expect("the outbox").len(),
        events_after_first + 1
    );
}
