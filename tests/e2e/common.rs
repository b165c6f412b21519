//! The end-to-end harness: real `scimflow` processes against the test
//! PostgreSQL and broker that `./scripts/test` starts. Each test gets a
//! fresh database cloned from the migrated template and its own topic
//! prefix and consumer group, so tests run in parallel without sharing
//! anything but the servers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const SCIM_JSON: &str = "application/scim+json";

/// Settings for the local broker (tansu) rather than for the design, the
/// same as scripts/run writes: tansu and the tests speak IPv4 loopback
/// only, and one broker holds one replica (tansu 0.6 records the broker
/// default, -1, as it is and lists no replicas).
pub const LOCAL_BROKER_SETTINGS: &[(&str, &str)] = &[
    ("KAFKA_PROPERTY_BROKER_ADDRESS_FAMILY", "v4"),
    ("SCIMFLOW_TOPIC_REPLICATION", "1"),
];

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end tests through ./scripts/test")
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Poll `check` until it returns `Some`, or fail after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

pub struct Stack {
    pub name: String,
    pub db_url: String,
    pub kafka: String,
    pub http_port: u16,
    pub logs: PathBuf,
    pub env: Vec<(String, String)>,
    ingress: Option<Child>,
    processors: Vec<Option<Child>>,
    pub http: reqwest::Client,
}

impl Stack {
    /// A fresh database and topic prefix; no process started yet.
    pub fn new(test: &str) -> Stack {
        let pg = required_env("SCIMFLOW_TEST_PG");
        let template = required_env("SCIMFLOW_TEST_TEMPLATE");
        let kafka = required_env("SCIMFLOW_TEST_KAFKA");
        let logs = PathBuf::from(
            std::env::var("SCIMFLOW_TEST_LOGS")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{}_{}", test, &suffix[..8]);
        let mut admin = PgConnection::establish(&format!("{pg}/postgres"))
            .expect("connect to the test cluster");
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .expect("create the test database");
        let db_url = format!("{pg}/{name}");
        let http_port = free_port();
        let env = vec![
            ("DATABASE_URL".into(), db_url.clone()),
            ("KAFKA_BROKERS".into(), kafka.clone()),
            ("SCIMFLOW_TOPIC_PREFIX".into(), name.replace('_', "-")),
            (
                "SCIMFLOW_HTTP_ADDR".into(),
                format!("127.0.0.1:{http_port}"),
            ),
            ("SCIMFLOW_INSTANCE_ID".into(), "ingress-1".into()),
            ("SCIMFLOW_COMMAND_PARTITIONS".into(), "4".into()),
            ("SCIMFLOW_DB_POOL_SIZE".into(), "6".into()),
            ("SCIMFLOW_LOG_FORMAT".into(), "text".into()),
            // Four stacks share one tansu broker on two cores, and it stalls
            // for seconds at a time under that load (docs/PERFORMANCE.md): a
            // longer deadline than production's 10 s keeps a stall from
            // failing a test that is not about the deadline. Tests that are
            // set their own.
            ("SCIMFLOW_REPLY_DEADLINE_MS".into(), "30000".into()),
            // Any free port: tests that scrape /metrics choose theirs.
            ("SCIMFLOW_ADMIN_ADDR".into(), "127.0.0.1:0".into()),
            ("SCIMFLOW_PROCESSOR_ADMIN_ADDR".into(), "127.0.0.1:0".into()),
            ("RUST_LOG".into(), "info,rdkafka=warn".into()),
        ]
        .into_iter()
        .chain(
            LOCAL_BROKER_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect::<Vec<(String, String)>>();
        Stack {
            name,
            db_url,
            kafka,
            http_port,
            logs,
            env,
            ingress: None,
            processors: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// The Kafka settings the stack's processes get, for a test's own
    /// clients built through `bus`.
    pub fn kafka_settings(&self) -> scimflow_shared::bus::KafkaSettings {
        let mut kafka = scimflow_shared::bus::KafkaSettings::new(&self.kafka);
        kafka.topic_replication = 1;
        for (setting, value) in LOCAL_BROKER_SETTINGS {
            if let Some(name) = setting.strip_prefix("KAFKA_PROPERTY_") {
                kafka = kafka.with_property(&name.to_ascii_lowercase().replace('_', "."), value);
            }
        }
        kafka
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Stack {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// An admin listener (`setting`: `SCIMFLOW_ADMIN_ADDR` or
    /// `SCIMFLOW_PROCESSOR_ADMIN_ADDR`) on a port of its own, for a test
    /// that scrapes it (`metrics`).
    pub fn with_admin_port(self, setting: &str) -> (Stack, u16) {
        let port = free_port();
        (self.with_env(setting, &format!("127.0.0.1:{port}")), port)
    }

    /// Ingress and one processor, ready to serve.
    pub async fn start(test: &str) -> Stack {
        Stack::new(test).started().await
    }

    pub async fn started(mut self) -> Stack {
        self.spawn_processor();
        self.spawn_ingress();
        self.wait_ready().await;
        self
    }

    fn spawn(&self, role: &str, log_name: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}-{log_name}.log", self.name)))
            .expect("open a log file");
        let err = log.try_clone().expect("clone the log file");
        Command::new(env!("CARGO_BIN_EXE_scimflow"))
            .arg(role)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn scimflow")
    }

    pub fn spawn_ingress(&mut self) {
        self.ingress = Some(self.spawn("ingress", "ingress"));
    }

    /// Start one more processor in the group; returns its index.
    pub fn spawn_processor(&mut self) -> usize {
        let i = self.processors.len();
        let child = self.spawn("processor", &format!("processor{i}"));
        self.processors.push(Some(child));
        i
    }

    /// SIGTERM a processor and wait for it to finish its batch and leave.
    pub fn stop_processor(&mut self, i: usize) {
        if let Some(mut child) = self.processors.get_mut(i).and_then(Option::take) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// SIGTERM the ingress and wait for it to drain and exit.
    pub fn stop_ingress(&mut self) {
        if let Some(mut child) = self.ingress.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// The topic prefix of this stack.
    pub fn prefix(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Wait until the outbox relay has published everything committed.
    pub async fn outbox_drained(&self) {
        eventually("the outbox to drain", Duration::from_secs(120), || {
            let n = self.count("SELECT count(*) AS n FROM outbox");
            async move { (n == 0).then_some(()) }
        })
        .await;
    }

    /// Every message on `topic` up to its current end, in partition order.
    pub fn read_topic(&self, topic: &str) -> Vec<TopicMessage> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        use rdkafka::{Offset, TopicPartitionList};

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .set("group.id", "scimflow-tests")
            .set("enable.auto.commit", "false")
            .set("broker.address.family", "v4")
            .create()
            .expect("test consumer");
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), timeout)
                    .expect("watermarks");
                if high > low {
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
                        .expect("tpl");
                    ends.insert(p.id(), high);
                }
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return out;
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut read = std::collections::HashSet::new();
        while !ends.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out reading {topic}"
            );
            let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let msg = msg.expect("message");
            let headers = msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            // A broker may hand a batch back twice on a re-fetch; an offset
            // is one message, however often it is read.
            if !read.insert((msg.partition(), msg.offset())) {
                continue;
            }
            out.push(TopicMessage {
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers,
            });
            if ends
                .get(&msg.partition())
                .is_some_and(|h| msg.offset() + 1 >= *h)
            {
                ends.remove(&msg.partition());
            }
        }
        out
    }

    /// Put raw bytes on a topic, as a misbehaving producer would.
    pub async fn produce_raw(&self, topic: &str, key: &str, payload: &[u8]) {
        self.produce_many(topic, &[(key.to_string(), payload.to_vec())])
            .await;
    }

    /// Put messages on a topic, in order, through one producer.
    pub async fn produce_many(&self, topic: &str, messages: &[(String, Vec<u8>)]) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .set("broker.address.family", "v4")
            .set("enable.idempotence", "true")
            .create()
            .expect("test producer");
        let sends = messages.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(60),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.expect("produce");
        }
    }

    /// SIGKILL a processor: no shutdown, no commit, nothing flushed.
    pub fn kill_processor(&mut self, i: usize) {
        if let Some(mut child) = self.processors.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The Prometheus text an admin listener on `port` serves.
    pub async fn metrics(&self, port: u16) -> String {
        self.http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    }

    /// Wait for `/readyz`. An ingress that exits instead fails the test at
    /// once with its log; one that lost its port to another process (the
    /// port was free when chosen, not reserved) is started again on a new one.
    pub async fn wait_ready(&mut self) {
        let mut rebinds = 0;
        // Longer than the ingress itself retries the broker at startup.
        eventually("the ingress to be ready", Duration::from_secs(150), || {
            self.restart_if_port_was_lost(&mut rebinds);
            let probe = self
                .http
                .get(format!("{}/readyz", self.base_url()))
                .timeout(Duration::from_secs(5));
            async move {
                let ready = probe.send().await.is_ok_and(|r| r.status().is_success());
                ready.then_some(())
            }
        })
        .await;
    }

    fn restart_if_port_was_lost(&mut self, rebinds: &mut u32) {
        let Some(status) = self
            .ingress
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
        else {
            return;
        };
        // The whole log: the error comes first, a backtrace after it.
        let path = self.logs.join(format!("{}-ingress.log", self.name));
        let log = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            log.contains("Address already in use") && *rebinds < 3,
            "the ingress exited ({status}) before it was ready:\n{}",
            log.lines().take(40).collect::<Vec<_>>().join("\n")
        );
        *rebinds += 1;
        self.http_port = free_port();
        let addr = format!("127.0.0.1:{}", self.http_port);
        self.env.retain(|(k, _)| k != "SCIMFLOW_HTTP_ADDR");
        self.env.push(("SCIMFLOW_HTTP_ADDR".into(), addr));
        self.spawn_ingress();
    }

    /// Run a CLI command against this stack's database; stdout as JSON.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_scimflow"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run the scimflow CLI");
        assert!(
            out.status.success(),
            "scimflow {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("scimflow {args:?} printed no JSON ({e})"))
    }

    pub fn tenant(&self, features: &str) -> Tenant {
        let mut args = vec!["tenant", "create", "--name", "acme", "--json"];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        let v = self.cli(&args);
        Tenant {
            id: v["tenant_id"].as_str().expect("tenant_id").to_string(),
            base: v["scim_base_url"]
                .as_str()
                .expect("scim_base_url")
                .to_string(),
            token: v["token"].as_str().expect("token").to_string(),
            http: self.http.clone(),
        }
    }

    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.db_url).expect("connect to the test database")
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

impl Drop for Stack {
    fn drop(&mut self) {
        for child in self
            .processors
            .iter_mut()
            .filter_map(Option::take)
            .chain(self.ingress.take())
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct TopicMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl TopicMessage {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Check an event against its published JSON Schema (docs/*.schema.json,
/// generated from the event types), with a full JSON Schema validator
/// that checks formats (UUIDs, RFC 3339 times) too.
pub fn assert_matches_schema(event: &Value, schema_file: &str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static VALIDATORS: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        scimflow_core::event::SCHEMA_FILES
            .iter()
            .map(|(file, generate)| {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&generate())
                    .expect("a valid schema");
                (*file, validator)
            })
            .collect()
    });
    let validator = validators.get(schema_file).expect("a published schema");
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:?} in {event}");
}

/// Check the change topic: for every resource, events with sequences
/// 1..=n, each once, in order. Returns the number of events.
pub fn assert_one_event_per_change(
    events: &[TopicMessage],
    versions: &std::collections::HashMap<String, i64>,
) -> usize {
    use std::collections::HashMap;
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut offset_of: HashMap<String, i64> = HashMap::new();
    for e in events {
        let v = e.json();
        assert_matches_schema(&v, "user-change-event.schema.json");
        let id = v["resource_id"].as_str().unwrap_or_default().to_string();
        let key = format!("{}/{id}", v["tenant_id"].as_str().unwrap_or_default());
        assert_eq!(
            e.key.as_deref(),
            Some(key.as_str()),
            "keyed by tenant and resource"
        );
        let first = *partition_of.entry(id.clone()).or_insert(e.partition);
        assert_eq!(first, e.partition, "one resource, one partition");
        let event_id = v["event_id"].as_str().unwrap_or_default().to_string();
        if let Some(earlier) = offset_of.insert(event_id.clone(), e.offset) {
            panic!(
                "event {event_id} is on the topic twice: partition {} offsets {earlier} and {} (headers {:?})",
                e.partition, e.offset, e.headers
            );
        }
        seen.entry(id)
            .or_default()
            .push(v["sequence"].as_i64().unwrap_or(-1));
    }
    for (id, version) in versions {
        let got = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(
            got,
            (1..=*version).collect::<Vec<_>>(),
            "events of {id}: one per committed change, in order"
        );
    }
    events.len()
}

/// A tenant's SCIM endpoint and token, with an HTTP client.
#[derive(Clone)]
pub struct Tenant {
    pub id: String,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The per-operation statuses of a BulkResponse, in order.
    pub fn bulk_statuses(&self) -> Vec<&str> {
        self.body["Operations"]
            .as_array()
            .map(|ops| {
                ops.iter()
                    .map(|o| o["status"].as_str().unwrap_or(""))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Assert a SCIM Error body with this status (as a string) and type.
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.content_type(), SCIM_JSON);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], t, "{}", self.body);
        }
    }
}

impl Tenant {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token.or(Some(&self.token)) {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, SCIM_JSON).body(b.to_string());
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
    /// A write with `Prefer: respond-async` (RFC 7240).
    pub async fn send_async(&self, method: Method, path: &str, body: &Value) -> Reply {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, SCIM_JSON)
            .header("Prefer", "return=minimal, respond-async")
            .body(body.to_string())
            .send()
            .await
            .expect("HTTP request");
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Poll a status monitor until it stops answering 202.
    pub async fn settled(&self, monitor: &str) -> Reply {
        eventually(
            "the outcome at the status monitor",
            Duration::from_secs(60),
            || async move {
                let r = self.get(monitor).await;
                (r.status != 202).then_some(r)
            },
        )
        .await
    }

    /// Poll until `token` is refused with 401. The ingress caches tenants
    /// and forgets them when PostgreSQL notifies it of a change, a few
    /// milliseconds after the change commits.
    pub async fn refused(&self, token: &str) {
        let r = eventually(
            "the token to be refused",
            Duration::from_secs(10),
            || async {
                let r = self.send(Method::GET, "/Users", None, Some(token)).await;
                (r.status != 200).then_some(r)
            },
        )
        .await;
        r.assert_error(401, None);
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body), None).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(body), None).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), None).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, None).await
    }
    /// `GET /Users?filter=...` with the filter URL-encoded.
    pub async fn filter_users(&self, filter: &str) -> Reply {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/Users", self.base), &[("filter", filter)])
                .expect("url");
        self.get(url.as_str()).await
    }
}

pub fn patch_op(ops: Value) -> Value {
    serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
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
