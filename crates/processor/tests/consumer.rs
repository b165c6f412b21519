//! The consumer loop without a broker: commands on the in-memory bus
//! (`scimflow_bus::fake`), a real PostgreSQL database of the test's own.
//! What the loop promises is checked where it shows: the outcomes on the
//! reply topic, the rows in the database, the committed offsets.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use scimflow_bus::fake::FakeBus;
use scimflow_bus::{headers, partition_for, CommandSource, Outgoing, Publisher, Topics};
use scimflow_shared::command::{
    Command, CommandBatch, CommandEnvelope, Outcome, ReplyBatch, ReplyShape, ENVELOPE_VERSION,
};
use scimflow_shared::config::Config;
use scimflow_shared::store::test_db::{insert_tenant, TestDatabase};
use scimflow_shared::store::users::find_live;

const PARTITIONS: i32 = 2;
const GROUP: &str = "consumer-test.processor";

fn create(tenant: Uuid, name: &str) -> (Uuid, CommandEnvelope) {
    let user_id = Uuid::now_v7();
    let envelope = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id: Uuid::now_v7(),
        tenant_id: tenant,
        request_id: name.into(),
        accepted_at: Utc::now(),
        base_url: format!("http://scim.example/scim/v2/{tenant}"),
        if_match: None,
        reply: ReplyShape::Whole,
        command: Command::CreateUser {
            user_id,
            body: json!({"userName": name, "emails": [{"value": name, "primary": true}]}),
        },
    };
    (user_id, envelope)
}

/// A single command, a `CommandBatch` of two, and a payload that is not a
/// command at all: the commands are applied and answered on the reply
/// topic their message named, the poison is dead-lettered rather than
/// blocking its partition, and every partition's committed offset ends at
/// its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_applies_answers_dead_letters_and_commits_without_a_broker() {
    let db = TestDatabase::new("consumer_fake_bus");
    let prefix = format!("consumer-{}", db.name().replace('_', "-"));
    let config = Config::from_settings(&[
        ("DATABASE_URL", db.url()),
        ("KAFKA_BROKERS", "127.0.0.1:1"),
        ("SCIMFLOW_TOPIC_PREFIX", &prefix),
    ])
    .expect("a configuration");
    let mut conn = db.connect();
    let tenant = insert_tenant(&mut conn, "consumer", &scimflow_shared::token::generate());

    let topics = Topics::new(&prefix);
    let (commands, reply_topic) = (topics.commands(), topics.replies("ingress-1"));
    let bus = FakeBus::new();
    bus.create_topic(&commands, PARTITIONS);
    let producer = Publisher::fake(&bus);
    let wait = Duration::from_secs(5);

    let (alone, single) = create(tenant, "alone@example.com");
    let (b1, first) = create(tenant, "batched1@example.com");
    let (b2, second) = create(tenant, "batched2@example.com");
    let payload = |e: &CommandEnvelope| serde_json::to_vec(e).expect("encodes");
    producer
        .publish_command(
            &commands,
            &single.partition_key(),
            &payload(&single),
            &[(headers::REPLY_TO, reply_topic.as_str())],
            wait,
        )
        .await
        .expect("published");
    let batch = CommandBatch::encode([
        (first.partition_key().as_str(), payload(&first).as_slice()),
        (second.partition_key().as_str(), payload(&second).as_slice()),
    ])
    .expect("a batch");
    let partition = partition_for(&first.partition_key(), PARTITIONS);
    producer
        .publish_command_batch(
            &commands,
            partition,
            &batch,
            &[(headers::REPLY_TO, reply_topic.as_str())],
            wait,
        )
        .await
        .expect("published");
    let poison_key = format!("{tenant}/{}", Uuid::now_v7());
    producer
        .send(
            Outgoing::to(&commands, b"not a command").key(&poison_key),
            wait,
        )
        .await
        .expect("published");

    let mut replies = bus.subscribe_from_start(&reply_topic);
    let (stop, stopped) = watch::channel(false);
    let consumer = tokio::spawn({
        let (config, pool) = (config.clone(), db.pool(4));
        let source = CommandSource::fake(&bus, GROUP, &commands);
        let publisher = Publisher::fake(&bus);
        async move { scimflow_processor::consume(&config, pool, source, publisher, stopped).await }
    });

    let expected = [single.command_id, first.command_id, second.command_id];
    let answered: HashMap<Uuid, Outcome> = tokio::time::timeout(Duration::from_secs(60), async {
        let mut answered = HashMap::new();
        while answered.len() < expected.len() {
            let m = replies.next().await;
            assert_eq!(m.partition, 0, "a reply topic has one partition");
            for o in ReplyBatch::decode(&m.payload).expect("a reply batch") {
                answered.insert(o.command_id, o);
            }
        }
        answered
    })
    .await
    .expect("every command answered");
    for id in expected {
        assert_eq!(
            answered[&id].status(),
            201,
            "{:?}",
            answered[&id].disposition
        );
    }
    for user in [alone, b1, b2] {
        assert!(find_live(&mut conn, tenant, user, false)
            .expect("a lookup")
            .is_some());
    }

    // Commits follow the replies: poll until every partition's committed
    // offset is its end (the poison's included).
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| bus.high_watermark(&commands, p))
        .collect();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let committed: Vec<i64> = (0..PARTITIONS)
                .map(|p| bus.committed(GROUP, &commands, p).unwrap_or(0))
                .collect();
            if committed == ends {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("offsets committed to the end of every partition");

    let dead: i64 = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM dead_letters")
            .get_result::<N>(&mut conn)
            .expect("a count")
            .n
    };
    assert_eq!(dead, 1, "the poison is a dead letter");
    assert!(
        bus.messages(&commands)
            .iter()
            .all(|m| m.key.is_some() || m.header(headers::REPLY_TO).is_some()),
        "what was published is what the loop read"
    );

    let _ = stop.send(true);
    consumer.await.expect("the loop stops when asked");
}
