//! The ingress's router in process: real handlers, middleware and
//! PostgreSQL (a database of its own per test), the in-memory bus in place
//! of Kafka. Each request goes through `tower::ServiceExt::oneshot`, so
//! what a test sees is what the router answers, and what it publishes is
//! on the fake bus's topics.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt as _;
use uuid::Uuid;

use scimflow_bus::fake::FakeBus;
use scimflow_bus::{headers, partition_for, Publisher, Received, ReplyStream, Topics};
use scimflow_ingress::activity::Recorder;
use scimflow_ingress::{router, AppState};
use scimflow_shared::command::{Command, CommandEnvelope, Disposition, Outcome, ReplyBatch};
use scimflow_shared::config::Config;
use scimflow_shared::store::test_db::{insert_tenant, TestDatabase};
use scimflow_shared::token;

const PARTITIONS: i32 = 4;
const INSTANCE: &str = "ingress-1";

struct Harness {
    // Dropped last: the pool's connections go first.
    _stop: watch::Sender<bool>,
    app: Router,
    bus: FakeBus,
    topics: Topics,
    tenant: Uuid,
    token: String,
    _db: TestDatabase,
}

impl Harness {
    async fn new(test: &str) -> Harness {
        let db = TestDatabase::new(test);
        let prefix = format!("router-{}", db.name().replace('_', "-"));
        let config = Config::from_settings(&[
            ("DATABASE_URL", db.url()),
            ("KAFKA_BROKERS", "127.0.0.1:1"),
            ("SCIMFLOW_TOPIC_PREFIX", &prefix),
            ("SCIMFLOW_INSTANCE_ID", INSTANCE),
        ])
        .expect("a configuration");
        let pool = db.pool(4);
        let secret = token::generate();
        let tenant = insert_tenant(&mut db.connect(), test, &secret);
        let topics = Topics::new(&prefix);
        let bus = FakeBus::new();
        bus.create_topic(&topics.commands(), PARTITIONS);
        bus.create_topic(&topics.replies(INSTANCE), 1);
        let (stop, stopped) = watch::channel(false);
        let (activity, _writer) = Recorder::start(pool.clone(), 1_000, Duration::from_secs(3600));
        let state = AppState::new(
            config,
            pool,
            Publisher::fake(&bus),
            ReplyStream::fake(&bus, &topics.replies(INSTANCE)),
            activity,
            PARTITIONS,
            stopped,
        );
        Harness {
            _stop: stop,
            app: router(state),
            bus,
            topics,
            tenant,
            token: secret,
            _db: db,
        }
    }

    /// Answer every command published from now on as a processor would,
    /// with the outcome `answer` makes of its envelope.
    fn processor(&self, answer: impl Fn(&CommandEnvelope) -> Outcome + Send + 'static) {
        let mut commands = self.bus.subscribe_from_start(&self.topics.commands());
        let replies = Publisher::fake(&self.bus);
        tokio::spawn(async move {
            loop {
                // A message holds one command or a /Bulk wave's batch of them.
                let received = Received::of(commands.next().await);
                let Some(reply_to) = received.reply_to else {
                    continue;
                };
                let outcomes: Vec<Outcome> = received
                    .commands
                    .iter()
                    .map(|c| answer(&CommandEnvelope::decode(&c.payload).expect("an envelope")))
                    .collect();
                for payload in
                    ReplyBatch::encode(&outcomes, ReplyBatch::MAX_BYTES).expect("encodes")
                {
                    replies
                        .publish_replies(&reply_to, &payload)
                        .expect("a reply");
                }
            }
        });
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.send_with(method, path, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/scim/v2/{}{path}", self.tenant))
            .header(header::CONTENT_TYPE, "application/scim+json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Body::from(body.to_string()))
            .expect("a request");
        let response = self.app.clone().oneshot(request).await.expect("an answer");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    fn published(&self) -> Vec<scimflow_bus::Message> {
        self.bus.messages(&self.topics.commands())
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

fn user(name: &str) -> String {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "emails": [{"value": name, "type": "work", "primary": true}],
    })
    .to_string()
}

/// A create publishes exactly one command, keyed by the tenant and the
/// user id minted for it, to the partition the producer would choose,
/// naming this ingress's reply topic; the answer is the outcome that comes
/// back on it, status, body, ETag and Location.
#[tokio::test]
async fn a_create_publishes_one_command_keyed_by_its_resource_and_answers_its_outcome() {
    let h = Harness::new("router_create").await;
    h.processor(|envelope| {
        let Command::CreateUser { user_id, .. } = &envelope.command else {
            panic!("not a create: {:?}", envelope.command.name());
        };
        Outcome::success(
            envelope.command_id,
            Disposition::Created,
            json!({"id": user_id, "userName": "ada@example.com"}),
            "W/\"1\"".into(),
            format!("{}/Users/{user_id}", envelope.base_url),
        )
    });
    let answer = h
        .send("POST", "/Users", Some(&h.token), &user("ada@example.com"))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    let published = h.published();
    assert_eq!(published.len(), 1, "one command per create");
    let m = &published[0];
    let envelope = CommandEnvelope::decode(&m.payload).expect("an envelope");
    let Command::CreateUser { user_id, body } = &envelope.command else {
        panic!("not a create");
    };
    let key = format!("{}/{user_id}", h.tenant);
    assert_eq!(m.key.as_deref(), Some(key.as_str()));
    assert_eq!(envelope.partition_key(), key);
    assert_eq!(m.partition, partition_for(&key, PARTITIONS));
    assert_eq!(envelope.tenant_id, h.tenant);
    assert_eq!(body["userName"], "ada@example.com");
    let reply_topic = h.topics.replies(INSTANCE);
    assert_eq!(m.header(headers::REPLY_TO), Some(reply_topic.as_str()));

    assert_eq!(answer.body["id"], json!(user_id));
    assert_eq!(answer.headers[header::ETAG], "W/\"1\"");
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("{}/Users/{user_id}", envelope.base_url).as_str()
    );
}

/// A body the ingress can refuse on its own is a SCIM 400 with its
/// scimType, and nothing is published.
#[tokio::test]
async fn a_bad_body_is_a_scim_400_and_publishes_nothing() {
    let h = Harness::new("router_bad_body").await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    // (body, scimType)
    let cases = [
        ("{\"userName\": ", "invalidSyntax"),
        ("not json at all", "invalidSyntax"),
        (deep.as_str(), "invalidSyntax"),
        (
            r#"{"emails": [{"value": "a@example.com"}]}"#,
            "invalidValue",
        ),
        (r#"{"userName": 5}"#, "invalidValue"),
    ];
    for (body, scim_type) in cases {
        let answer = h.send("POST", "/Users", Some(&h.token), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body["status"], "400", "{body}: {}", answer.body);
        assert_eq!(
            answer.body["scimType"], scim_type,
            "{body}: {}",
            answer.body
        );
        assert!(
            answer.body["schemas"]
                .to_string()
                .contains("urn:ietf:params:scim:api:messages:2.0:Error"),
            "{}",
            answer.body
        );
    }
    assert!(h.published().is_empty(), "a refused request was published");
}

/// No token, a token of nobody, or a malformed header: 401 with a SCIM
/// error, before anything is validated or published.
#[tokio::test]
async fn a_request_without_a_valid_token_is_401_and_publishes_nothing() {
    let h = Harness::new("router_auth").await;
    let other = token::generate();
    for token in [None, Some(other.as_str()), Some("")] {
        let answer = h
            .send("POST", "/Users", token, &user("eve@example.com"))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(answer.body["status"], "401", "{}", answer.body);
        let answer = h.send("GET", "/Users", token, "").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    assert!(h.published().is_empty());
}

/// A broker that will not take the command: 503 with Retry-After, and
/// nothing reaches the topic.
#[tokio::test]
async fn a_command_the_broker_refuses_is_503_with_retry_after() {
    let h = Harness::new("router_refused").await;
    h.bus.refuse(true);
    let answer = h
        .send("POST", "/Users", Some(&h.token), &user("bob@example.com"))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
    assert!(h.published().is_empty());
}

/// A created user's outcome, as the processor answers a create.
fn created(envelope: &CommandEnvelope) -> Outcome {
    let Command::CreateUser { user_id, body } = &envelope.command else {
        panic!("not a create: {:?}", envelope.command.name());
    };
    Outcome::success(
        envelope.command_id,
        Disposition::Created,
        json!({"id": user_id, "userName": body["userName"]}),
        "W/\"1\"".into(),
        format!("{}/Users/{user_id}", envelope.base_url),
    )
}

/// `Prefer: respond-async`: 202 as soon as the broker has the command,
/// which names no reply topic (nobody waits for its outcome on one).
#[tokio::test]
async fn respond_async_publishes_without_a_reply_topic_and_answers_202() {
    let h = Harness::new("router_async").await;
    let answer = h
        .send_with(
            "POST",
            "/Users",
            Some(&h.token),
            &user("async@example.com"),
            &[("prefer", "respond-async")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let published = h.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].header(headers::REPLY_TO), None);
    assert!(published[0].headers.is_empty(), "nothing but the envelope");
}

/// /Bulk: the operations go out as `CommandBatch` messages, each to the
/// partition every one of its commands' keys lands in, naming the reply
/// topic; each operation is answered from its own outcome.
#[tokio::test]
async fn a_bulk_request_publishes_batches_by_partition_and_answers_each_operation() {
    let h = Harness::new("router_bulk").await;
    h.processor(created);
    let operations: Vec<Value> = (0..6)
        .map(|n| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{n}"),
                   "data": {"userName": format!("bulk{n}@example.com"),
                            "emails": [{"value": format!("bulk{n}@example.com"), "primary": true}]}})
        })
        .collect();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": operations,
    });
    let answer = h
        .send("POST", "/Bulk", Some(&h.token), &body.to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let statuses: Vec<&str> = answer.body["Operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| o["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["201"; 6], "{}", answer.body);

    let mut commands = 0;
    let reply_topic = h.topics.replies(INSTANCE);
    for m in h.published() {
        assert_eq!(m.header(headers::REPLY_TO), Some(reply_topic.as_str()));
        let received = Received::of(m.clone());
        for c in &received.commands {
            let key = c.key.as_deref().expect("each command keyed");
            assert_eq!(partition_for(key, PARTITIONS), m.partition, "{key}");
        }
        commands += received.commands.len();
    }
    assert_eq!(commands, 6, "every operation published once");
    assert!(
        h.published().len() <= PARTITIONS as usize,
        "one message per partition at most"
    );
}
