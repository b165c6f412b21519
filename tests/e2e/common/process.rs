//! The processes of a test's stack: an ingress and processors of the
//! `scimflow` binary, their environment, logs, readiness and the CLI.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scimflow_shared::store::test_db::TestDatabase;
use serde_json::Value;

use super::scim::Tenant;

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
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(timeout, check).await {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// Poll `check` until it returns `Some`, or give up (`None`) after
/// `timeout`, for a caller that explains the failure itself.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
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
    /// Dropped after the processes (`Drop` kills them first).
    _database: TestDatabase,
}

impl Stack {
    /// A fresh database and topic prefix; no process started yet.
    pub fn new(test: &str) -> Stack {
        let kafka = required_env("SCIMFLOW_TEST_KAFKA");
        let logs = PathBuf::from(
            std::env::var("SCIMFLOW_TEST_LOGS")
                .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        );
        let database = TestDatabase::new(test);
        let name = database.name().to_string();
        let db_url = database.url().to_string();
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
            (
                "RUST_LOG".into(),
                format!("info,{}", scimflow_bus::CLIENT_LOG_DIRECTIVE),
            ),
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
            _database: database,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
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
        self.named_tenant("acme", features)
    }

    /// A tenant made with the CLI, with its name and features.
    pub fn named_tenant(&self, name: &str, features: &str) -> Tenant {
        let mut args = vec!["tenant", "create", "--name", name, "--json"];
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
