//! All settings, in one typed struct read from the environment (and an
//! optional file) and checked at start: a bad setting stops the process
//! with a message naming it.
//!
//! The file, named by `SCIMFLOW_CONFIG`, holds `NAME=value` lines with the
//! same names as the environment (the format of `.local/stack.env` and of
//! Docker's `env_file`); `#` starts a comment. The environment wins over
//! the file, so one setting can be overridden for one run. A name the file
//! does not know is an error, not a silently ignored typo.
//!
//! Besides scimflow's own settings, `KAFKA_PROPERTY_<NAME>` passes a
//! Kafka client property to every client (`KafkaSettings`): NAME is the
//! property upper-cased with `.` as `_` (`KAFKA_PROPERTY_SASL_MECHANISMS`
//! is `sasl.mechanisms`). Properties the design depends on are refused;
//! the bus says which (`scimflow_bus::settings`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use scimflow_bus::settings::{
    is_secret_property, property_name, KafkaSettings, KAFKA_PROPERTY_PREFIX,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set{hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("SCIMFLOW_CONFIG={path}: {reason}")]
    File { path: String, reason: String },
}

/// Every setting `Config` reads; the only names a config file may set.
pub const SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "KAFKA_BROKERS",
    "SCIMFLOW_DB_POOL_SIZE",
    "SCIMFLOW_TOPIC_PREFIX",
    "SCIMFLOW_COMMAND_PARTITIONS",
    "SCIMFLOW_HTTP_ADDR",
    "SCIMFLOW_PUBLIC_URL",
    "SCIMFLOW_INSTANCE_ID",
    "SCIMFLOW_REPLY_DEADLINE_MS",
    "SCIMFLOW_BATCH_MAX",
    "SCIMFLOW_BATCH_LINGER_MS",
    "SCIMFLOW_CONSUMER_GROUP",
    "SCIMFLOW_ADMIN_ADDR",
    "SCIMFLOW_PROCESSOR_ADMIN_ADDR",
    "SCIMFLOW_TENANT_RATE",
    "SCIMFLOW_TENANT_BURST",
    "SCIMFLOW_KAFKA_FETCH_WAIT_MS",
    "SCIMFLOW_READ_AHEAD_BYTES",
    "SCIMFLOW_MAX_MESSAGE_BYTES",
    "SCIMFLOW_MAX_IN_FLIGHT",
    "SCIMFLOW_REQUEST_TIMEOUT_MS",
    "SCIMFLOW_DB_STATEMENT_TIMEOUT_MS",
    "SCIMFLOW_AUTH_FAILURE_LIMIT",
    "SCIMFLOW_AUTH_FAILURE_WINDOW_SECS",
    "SCIMFLOW_TRUSTED_PROXIES",
    "SCIMFLOW_TOPIC_REPLICATION",
    "SCIMFLOW_METRICS_TENANT_LABEL",
    "SCIMFLOW_ADMIN_API_ADDR",
    "SCIMFLOW_ADMIN_TOKEN",
    "SCIMFLOW_ADMIN_TOKEN_SHA256",
    "SCIMFLOW_CONSOLE_ORIGIN",
    "SCIMFLOW_ACTIVITY_MAX_ROWS",
    "SCIMFLOW_ACTIVITY_MAX_AGE_HOURS",
];

/// The admin API's bearer token as kept: its SHA-256 hash (hex), never
/// the token. Shown redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTokenHash(String);

impl AdminTokenHash {
    /// Does `token` hash to this? Constant time in the compared bytes.
    pub fn verify(&self, token: &str) -> bool {
        crate::token::verify(token, &self.0)
    }

    /// Which admin token this is, safe to store beside what it signed in
    /// (a console session): a hash of the hash, so a session made with
    /// one token ends when the token is replaced.
    pub fn fingerprint(&self) -> String {
        crate::token::hash(&format!("scimflow-admin-token:{}", self.0))
    }
}

impl std::fmt::Debug for AdminTokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The shortest admin token accepted: a guessable one would open every
/// tenant.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// What a command's envelope may add to the request body it carries: ids,
/// timestamps, the base URL, the request id and `If-Match`. A body may
/// take the rest of a message ([`Config::max_body_bytes`]); the ingress
/// still measures every encoded command before producing it, so a body
/// whose envelope takes more (a huge `If-Match`, numbers that re-encode
/// longer) is refused with 413, never queued to fail.
pub const ENVELOPE_RESERVE: usize = 16 * 1024;

/// The longest reply deadline a setting may ask for, in milliseconds.
pub const MAX_DEADLINE_MS: u64 = 3_600_000;

/// The bounds of `SCIMFLOW_MAX_MESSAGE_BYTES`. Below the Kafka client's
/// default the processor's reply batches (512 KiB) and the ingress's command
/// batches (256 KiB) would have to shrink with it; above 16 MiB a single
/// request would hold too much memory.
pub const MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1_000_000..=16 * 1024 * 1024;

/// An address or a CIDR range of addresses (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: std::net::IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.network, addr) {
            (V4(n), V4(a)) => prefix_matches(&n.octets(), &a.octets(), self.prefix),
            (V6(n), V6(a)) => prefix_matches(&n.octets(), &a.octets(), self.prefix),
            (V6(n), V4(a)) => {
                prefix_matches(&n.octets(), &a.to_ipv6_mapped().octets(), self.prefix)
            }
            (V4(n), V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| prefix_matches(&n.octets(), &a.octets(), self.prefix)),
        }
    }
}

/// The first `prefix` bits of `a` and `b` agree.
fn prefix_matches(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// `a.b.c.d[/n], x::y[/n], ...`: addresses and CIDR ranges.
pub fn parse_ip_ranges(text: &str) -> Result<Vec<IpRange>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|item| {
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            let network: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an address or a CIDR range"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix must be 0 to {max}"))?,
            };
            Ok(IpRange { network, prefix })
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL.
    pub database_url: String,
    /// `SCIMFLOW_DB_POOL_SIZE` (default 16).
    pub db_pool_size: u32,
    /// The Kafka clients' settings: `KAFKA_BROKERS`, `KAFKA_PROPERTY_*`,
    /// `SCIMFLOW_KAFKA_FETCH_WAIT_MS`, `SCIMFLOW_TOPIC_REPLICATION`.
    pub kafka: KafkaSettings,
    /// `SCIMFLOW_TOPIC_PREFIX` (default `scimflow`): every topic name
    /// starts with it, so several stacks (or tests) can share a broker.
    pub topic_prefix: String,
    /// `SCIMFLOW_COMMAND_PARTITIONS` (default 8): partitions of the command
    /// topic when scimflow creates it; the processor's parallelism bound.
    pub command_partitions: i32,
    /// `SCIMFLOW_HTTP_ADDR` (default 127.0.0.1:8080).
    pub http_addr: SocketAddr,
    /// `SCIMFLOW_PUBLIC_URL` (default http://<http_addr>): how clients
    /// reach the ingress; SCIM base URLs and `meta.location` start with it.
    pub public_url: String,
    /// `SCIMFLOW_INSTANCE_ID` (default `ingress-<hostname>-<port>`, or
    /// `ingress-<port>` when the host has no name): names this ingress's
    /// reply topic. Must be unique among running ingresses; the hostname
    /// (a container's id, a pod's name) makes the default so.
    pub instance_id: String,
    /// `SCIMFLOW_REPLY_DEADLINE_MS` (default 10000): how long a write waits
    /// for its outcome before answering 503 with Retry-After.
    pub reply_deadline: Duration,
    /// `SCIMFLOW_BATCH_MAX` (default 500): most commands per processor
    /// transaction.
    pub batch_max: usize,
    /// `SCIMFLOW_BATCH_LINGER_MS` (default 1): how long the processor waits
    /// to fill a batch once it has one command. Under load, batches fill
    /// while the previous one is applied; the linger only adds latency.
    pub batch_linger: Duration,
    /// `SCIMFLOW_CONSUMER_GROUP` (default `<prefix>.processor`).
    pub consumer_group: String,
    /// `SCIMFLOW_ADMIN_ADDR` (default 127.0.0.1:9090): where the ingress
    /// serves /metrics, apart from the SCIM listener.
    pub admin_addr: SocketAddr,
    /// `SCIMFLOW_PROCESSOR_ADMIN_ADDR` (default 127.0.0.1:9091): where the
    /// processor serves /metrics.
    pub processor_admin_addr: SocketAddr,
    /// `SCIMFLOW_TENANT_RATE` (default 20000): requests per second one tenant
    /// may make, sustained, before it gets 429.
    pub tenant_rate: f64,
    /// `SCIMFLOW_TENANT_BURST` (default 40000): requests one tenant may make
    /// at once above its rate.
    pub tenant_burst: f64,
    /// `SCIMFLOW_READ_AHEAD_BYTES` (default 67108864, 64 MiB; at least
    /// 1048576): the most command payload bytes the processor holds read
    /// ahead of what it has applied, besides its 10 batches' count. Past
    /// it, it reads on only once a batch is applied (a batch always has
    /// room for one command, however large).
    pub read_ahead_bytes: usize,
    /// `SCIMFLOW_MAX_MESSAGE_BYTES` (default 1000000, the Kafka client's own;
    /// 1000000 to 16777216): the one size setting. The largest Kafka
    /// message any scimflow producer sends (`message.max.bytes`), the topic
    /// limit set when scimflow creates a topic (`max.message.bytes`), what
    /// consumers fetch per partition, and, less [`ENVELOPE_RESERVE`], the
    /// largest request body the ingress accepts (413 past it). Raise the
    /// broker's and existing topics' `max.message.bytes` with it.
    pub max_message_bytes: usize,
    /// `SCIMFLOW_MAX_IN_FLIGHT` (default 512): requests one ingress serves
    /// at once; past it, 503 with Retry-After at once (no queue). With the
    /// body limit it bounds the memory requests can hold.
    pub max_in_flight: usize,
    /// `SCIMFLOW_REQUEST_TIMEOUT_MS` (default: the reply deadline plus 15 s,
    /// so 25000): the longest the ingress works on one request, reading its
    /// body included; then 503 with Retry-After. Must exceed the reply
    /// deadline, so a write's own, more precise 503 comes first.
    pub request_timeout: Duration,
    /// `SCIMFLOW_DB_STATEMENT_TIMEOUT_MS` (default 30000): PostgreSQL's
    /// `statement_timeout` on every pooled connection of the ingress and
    /// the processor. The CLI's own connections (tenant purges,
    /// migrations) have none.
    pub db_statement_timeout: Duration,
    /// `SCIMFLOW_AUTH_FAILURE_LIMIT` (default 20): failed authentications
    /// one client address may make per window before it gets 429 with
    /// Retry-After instead of a token lookup.
    pub auth_failure_limit: u32,
    /// `SCIMFLOW_AUTH_FAILURE_WINDOW_SECS` (default 60): that window.
    pub auth_failure_window: Duration,
    /// `SCIMFLOW_TRUSTED_PROXIES` (default none): addresses or CIDR ranges
    /// of the proxies in front of the ingress, comma-separated. A request
    /// from one of them is counted (failed authentications) against the
    /// client its `X-Forwarded-For` names: the last address there that is
    /// not itself a trusted proxy. Without it, every client behind a proxy
    /// shares the proxy's address.
    pub trusted_proxies: Vec<IpRange>,
    /// `SCIMFLOW_METRICS_TENANT_LABEL` (default false): label the ingress's
    /// request series with the tenant id. Off, the label is empty, so the
    /// series count does not grow with the number of tenants.
    pub metrics_tenant_label: bool,
    /// Trace export over OTLP (`TracingSettings`); off unless an endpoint
    /// is set.
    pub tracing: TracingSettings,
    /// `SCIMFLOW_ADMIN_API_ADDR` (default 127.0.0.1:8081): where the
    /// `admin-api` role serves `/admin/v1`, never on the SCIM listener.
    pub admin_api_addr: SocketAddr,
    /// `SCIMFLOW_ADMIN_TOKEN` (at least 32 characters; kept only as its
    /// hash) or `SCIMFLOW_ADMIN_TOKEN_SHA256` (the hash itself, hex, so
    /// the token need not be in the configuration): the admin API's bearer
    /// token. Without either the admin API does not start.
    pub admin_token: Option<AdminTokenHash>,
    /// `SCIMFLOW_CONSOLE_ORIGIN` (optional, `https://admin.example.com`):
    /// the origin browsers reach the support console at, when a proxy
    /// stands in front of the admin listener. Forms are accepted only
    /// from it, and its cookies are `Secure` when it is https. Unset, a
    /// form must come from the origin the request names (`Host`).
    pub console_origin: Option<String>,
    /// `SCIMFLOW_ACTIVITY_MAX_ROWS` (default 10000): activity log entries
    /// kept per tenant, the newest.
    pub activity_max_rows: i64,
    /// `SCIMFLOW_ACTIVITY_MAX_AGE_HOURS` (default 168, a week): older
    /// entries are pruned.
    pub activity_max_age: Duration,
}

/// Trace export over OTLP/HTTP (protobuf), configured through
/// OpenTelemetry's own variables, so a collector's usual settings work
/// unchanged. `OTEL_EXPORTER_OTLP_HEADERS` (and its `_TRACES_` form), for
/// a collector that wants credentials, is read by the exporter itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingSettings {
    /// Where spans go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended. `None`
    /// (neither set, or `OTEL_SDK_DISABLED=true`): nothing is exported and
    /// spans cost what they did before.
    pub traces_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`; by default each role names itself
    /// (`scimflow-ingress`, `scimflow-processor`).
    pub service_name: Option<String>,
}

impl TracingSettings {
    /// The service name the spans of `role` are exported under.
    pub fn service_name(&self, role: &str) -> String {
        self.service_name
            .clone()
            .unwrap_or_else(|| format!("scimflow-{role}"))
    }

    fn from_sources(src: &Sources<'_>) -> Result<Self, ConfigError> {
        let disabled: bool = src.parse("OTEL_SDK_DISABLED", false)?;
        let endpoint = match (
            src.var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            src.var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => Some(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", e.trim().to_string())),
            (None, Some(e)) => Some((
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{}/v1/traces", e.trim().trim_end_matches('/')),
            )),
            (None, None) => None,
        };
        if let Some((name, url)) = &endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name,
                    value: url.clone(),
                    reason: "must start with http:// or https:// (OTLP over HTTP)".into(),
                });
            }
        }
        Ok(TracingSettings {
            traces_endpoint: endpoint.filter(|_| !disabled).map(|(_, url)| url),
            service_name: src.var("OTEL_SERVICE_NAME").map(|n| n.trim().to_string()),
        })
    }
}

/// Where settings come from: the environment first, then the file.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: HashMap<String, String>,
    /// This host's name (`HOSTNAME`, else the kernel's), for defaults that
    /// must differ between replicas.
    hostname: Option<String>,
    /// The environment's `KAFKA_PROPERTY_*` settings.
    env_properties: Vec<(String, String)>,
}

impl Sources<'_> {
    fn var(&self, name: &'static str) -> Option<String> {
        (self.env)(name)
            .or_else(|| self.file.get(name).cloned())
            .filter(|v| !v.trim().is_empty())
    }

    /// `KAFKA_PROPERTY_*` from the file, then the environment over it.
    fn kafka_properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut by_setting: std::collections::BTreeMap<&str, &str> = self
            .file
            .iter()
            .filter(|(k, _)| k.starts_with(KAFKA_PROPERTY_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in &self.env_properties {
            by_setting.insert(k, v);
        }
        let mut properties = Vec::new();
        for (setting, value) in by_setting {
            if value.trim().is_empty() {
                continue;
            }
            let name = property_name(setting).map_err(|reason| ConfigError::Invalid {
                name: "KAFKA_PROPERTY_*",
                value: format!(
                    "{setting}={}",
                    if is_secret_property(&setting.to_ascii_lowercase().replace('_', ".")) {
                        "<redacted>"
                    } else {
                        value
                    }
                ),
                reason,
            })?;
            properties.push((name, value.trim().to_string()));
        }
        properties.sort();
        Ok(properties)
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value: v.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// A count that must be at least 1 (0 would leave nothing to work
    /// with: no batch, no pooled connection).
    fn parse_count<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let n = self.parse(name, default)?;
        if n < T::from(1) {
            return Err(ConfigError::Invalid {
                name,
                value: n.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(n)
    }
}

/// `NAME=value` lines; blank lines and `#` comments skipped, an `export `
/// prefix and one pair of matching quotes around the value allowed.
pub fn parse_config_file(text: &str) -> Result<HashMap<String, String>, String> {
    let mut settings = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected NAME=value", n + 1));
        };
        let name = name.trim();
        if !SETTINGS.contains(&name) && !name.starts_with(KAFKA_PROPERTY_PREFIX) {
            return Err(format!(
                "line {}: {name:?} is not a scimflow setting (known: {})",
                n + 1,
                SETTINGS.join(", ")
            ));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        settings.insert(name.to_string(), value.to_string());
    }
    Ok(settings)
}

/// `ingress-<hostname>-<port>`: replicas of one image run on hosts of their
/// own name (Docker: the container id; Kubernetes: the pod name) and would
/// otherwise share a reply topic. The hostname keeps only what a topic
/// name allows, at most 64 characters; without one, `ingress-<port>`.
fn default_instance_id(hostname: Option<&str>, port: u16) -> String {
    let host: String = hostname
        .unwrap_or_default()
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let host = host.trim_matches(|c| matches!(c, '.' | '-' | '_'));
    if host.is_empty() {
        format!("ingress-{port}")
    } else {
        format!("ingress-{host}-{port}")
    }
}

impl Config {
    /// The process's configuration: the environment, over the file named
    /// by `SCIMFLOW_CONFIG` if set.
    pub fn load() -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let file = match env("SCIMFLOW_CONFIG").filter(|p| !p.trim().is_empty()) {
            None => HashMap::new(),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                parse_config_file(&text).map_err(|reason| ConfigError::File { path, reason })?
            }
        };
        let hostname = env("HOSTNAME").or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        });
        let env_properties = std::env::vars()
            .filter(|(k, _)| k.starts_with(KAFKA_PROPERTY_PREFIX))
            .collect();
        Config::from_sources(&Sources {
            env: &env,
            file,
            hostname,
            env_properties,
        })
    }

    fn from_sources(src: &Sources<'_>) -> Result<Self, ConfigError> {
        let database_url = src.var("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: " (source .local/stack.env after ./scripts/run)",
        })?;
        let kafka_brokers = src.var("KAFKA_BROKERS").ok_or(ConfigError::Missing {
            name: "KAFKA_BROKERS",
            hint: " (source .local/stack.env after ./scripts/run)",
        })?;
        let http_addr: SocketAddr = src.parse(
            "SCIMFLOW_HTTP_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
        )?;
        let public_url = src
            .var("SCIMFLOW_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{http_addr}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_PUBLIC_URL",
                value: public_url,
                reason: "must start with http:// or https://".into(),
            });
        }
        let topic_prefix = src
            .var("SCIMFLOW_TOPIC_PREFIX")
            .unwrap_or_else(|| "scimflow".into());
        if !topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_TOPIC_PREFIX",
                value: topic_prefix,
                reason: "only letters, digits, '.', '_' and '-' are allowed in Kafka topic names"
                    .into(),
            });
        }
        let command_partitions: i32 = src.parse("SCIMFLOW_COMMAND_PARTITIONS", 8)?;
        if !(1..=256).contains(&command_partitions) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_COMMAND_PARTITIONS",
                value: command_partitions.to_string(),
                reason: "must be between 1 and 256".into(),
            });
        }
        // With no pooled connection the ingress would wait forever for
        // a database slot.
        let db_pool_size: u32 = src.parse_count("SCIMFLOW_DB_POOL_SIZE", 16)?;
        let batch_max: usize = src.parse_count("SCIMFLOW_BATCH_MAX", 500)?;
        let instance_id = src
            .var("SCIMFLOW_INSTANCE_ID")
            .unwrap_or_else(|| default_instance_id(src.hostname.as_deref(), http_addr.port()));
        if !instance_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_INSTANCE_ID",
                value: instance_id,
                reason: "only letters, digits, '.', '_' and '-' are allowed".into(),
            });
        }
        let consumer_group = src
            .var("SCIMFLOW_CONSUMER_GROUP")
            .unwrap_or_else(|| format!("{topic_prefix}.processor"));
        let tenant_rate: f64 = src.parse("SCIMFLOW_TENANT_RATE", 20000.0)?;
        let tenant_burst: f64 = src.parse("SCIMFLOW_TENANT_BURST", 40000.0)?;
        for (name, v) in [
            ("SCIMFLOW_TENANT_RATE", tenant_rate),
            ("SCIMFLOW_TENANT_BURST", tenant_burst),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(ConfigError::Invalid {
                    name,
                    value: v.to_string(),
                    reason: "must be a number of at least 1".into(),
                });
            }
        }
        let fetch_wait_ms: u64 = src.parse("SCIMFLOW_KAFKA_FETCH_WAIT_MS", 50)?;
        if !(1..=5000).contains(&fetch_wait_ms) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_KAFKA_FETCH_WAIT_MS",
                value: fetch_wait_ms.to_string(),
                reason: "must be between 1 and 5000 (0 would make consumers poll the broker in a busy loop)".into(),
            });
        }
        let topic_replication: i32 = src.parse("SCIMFLOW_TOPIC_REPLICATION", -1)?;
        if !(topic_replication == -1 || (1..=32767).contains(&topic_replication)) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_TOPIC_REPLICATION",
                value: topic_replication.to_string(),
                reason: "must be -1 (the broker's default) or a replica count of at least 1".into(),
            });
        }
        let kafka = KafkaSettings {
            brokers: kafka_brokers,
            properties: src.kafka_properties()?,
            fetch_wait: Duration::from_millis(fetch_wait_ms),
            topic_replication,
        };
        let read_ahead_bytes: usize = src.parse("SCIMFLOW_READ_AHEAD_BYTES", 64 << 20)?;
        if read_ahead_bytes < 1 << 20 {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_READ_AHEAD_BYTES",
                value: read_ahead_bytes.to_string(),
                reason: "must be at least 1048576 (1 MiB): a command alone may be that large"
                    .into(),
            });
        }
        let max_message_bytes: usize = src.parse("SCIMFLOW_MAX_MESSAGE_BYTES", 1_000_000)?;
        if !MESSAGE_BYTES_RANGE.contains(&max_message_bytes) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_MAX_MESSAGE_BYTES",
                value: max_message_bytes.to_string(),
                reason: format!(
                    "must be between {} and {}",
                    MESSAGE_BYTES_RANGE.start(),
                    MESSAGE_BYTES_RANGE.end()
                ),
            });
        }
        let max_in_flight: usize = src.parse_count("SCIMFLOW_MAX_IN_FLIGHT", 512)?;
        // Deadlines are added to the clock on every request: bounded, so no
        // setting can make that addition overflow.
        let reply_ms: u64 = src.parse_count("SCIMFLOW_REPLY_DEADLINE_MS", 10_000)?;
        if reply_ms > MAX_DEADLINE_MS {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_REPLY_DEADLINE_MS",
                value: reply_ms.to_string(),
                reason: format!("must be at most {MAX_DEADLINE_MS} (an hour)"),
            });
        }
        let reply_deadline = Duration::from_millis(reply_ms);
        let request_timeout = match src.var("SCIMFLOW_REQUEST_TIMEOUT_MS") {
            None => reply_deadline + Duration::from_secs(15),
            Some(_) => {
                let ms: u64 = src.parse("SCIMFLOW_REQUEST_TIMEOUT_MS", 0)?;
                if ms > MAX_DEADLINE_MS + 60_000 {
                    return Err(ConfigError::Invalid {
                        name: "SCIMFLOW_REQUEST_TIMEOUT_MS",
                        value: ms.to_string(),
                        reason: format!("must be at most {}", MAX_DEADLINE_MS + 60_000),
                    });
                }
                Duration::from_millis(ms)
            }
        };
        if request_timeout <= reply_deadline {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_REQUEST_TIMEOUT_MS",
                value: request_timeout.as_millis().to_string(),
                reason: format!(
                    "must exceed SCIMFLOW_REPLY_DEADLINE_MS ({} ms)",
                    reply_deadline.as_millis()
                ),
            });
        }
        let statement_ms: u64 = src.parse_count("SCIMFLOW_DB_STATEMENT_TIMEOUT_MS", 30_000)?;
        let auth_failure_limit: u32 = src.parse_count("SCIMFLOW_AUTH_FAILURE_LIMIT", 20)?;
        let auth_window_secs: u64 = src.parse_count("SCIMFLOW_AUTH_FAILURE_WINDOW_SECS", 60)?;
        let admin_addr: SocketAddr = src.parse(
            "SCIMFLOW_ADMIN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9090)),
        )?;
        let processor_admin_addr: SocketAddr = src.parse(
            "SCIMFLOW_PROCESSOR_ADMIN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9091)),
        )?;
        let admin_token = match (
            src.var("SCIMFLOW_ADMIN_TOKEN"),
            src.var("SCIMFLOW_ADMIN_TOKEN_SHA256"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "SCIMFLOW_ADMIN_TOKEN_SHA256",
                    value: "<redacted>".into(),
                    reason: "set SCIMFLOW_ADMIN_TOKEN or its hash, not both".into(),
                })
            }
            (Some(t), None) => {
                let t = t.trim();
                if t.len() < MIN_ADMIN_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(ConfigError::Invalid {
                        name: "SCIMFLOW_ADMIN_TOKEN",
                        value: "<redacted>".into(),
                        reason: format!(
                            "must be at least {MIN_ADMIN_TOKEN_LEN} printable characters without spaces"
                        ),
                    });
                }
                Some(AdminTokenHash(crate::token::hash(t)))
            }
            (None, Some(h)) => {
                let h = h.trim().to_ascii_lowercase();
                if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(ConfigError::Invalid {
                        name: "SCIMFLOW_ADMIN_TOKEN_SHA256",
                        value: "<redacted>".into(),
                        reason: "must be a SHA-256 hash: 64 hex digits".into(),
                    });
                }
                Some(AdminTokenHash(h))
            }
            (None, None) => None,
        };
        let activity_max_rows: i64 = src.parse_count("SCIMFLOW_ACTIVITY_MAX_ROWS", 10_000)?;
        let activity_max_age_hours: u64 =
            src.parse_count("SCIMFLOW_ACTIVITY_MAX_AGE_HOURS", 168)?;
        if activity_max_age_hours > 24 * 366 {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_ACTIVITY_MAX_AGE_HOURS",
                value: activity_max_age_hours.to_string(),
                reason: "must be at most 8784 (a year)".into(),
            });
        }
        let console_origin = src
            .var("SCIMFLOW_CONSOLE_ORIGIN")
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty());
        if let Some(origin) = &console_origin {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', '@', ' '])) {
                return Err(ConfigError::Invalid {
                    name: "SCIMFLOW_CONSOLE_ORIGIN",
                    value: origin.clone(),
                    reason:
                        "must be an origin: http:// or https://, a host and maybe a port, no path"
                            .into(),
                });
            }
        }
        Ok(Config {
            console_origin,
            admin_api_addr: src.parse(
                "SCIMFLOW_ADMIN_API_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8081)),
            )?,
            admin_token,
            activity_max_rows,
            activity_max_age: Duration::from_secs(activity_max_age_hours * 3600),
            database_url,
            admin_addr,
            processor_admin_addr,
            db_pool_size,
            kafka,
            topic_prefix,
            command_partitions,
            http_addr,
            public_url,
            instance_id,
            reply_deadline,
            batch_max,
            batch_linger: Duration::from_millis(src.parse("SCIMFLOW_BATCH_LINGER_MS", 1)?),
            consumer_group,
            tenant_rate,
            tenant_burst,
            read_ahead_bytes,
            max_message_bytes,
            max_in_flight,
            request_timeout,
            db_statement_timeout: Duration::from_millis(statement_ms),
            auth_failure_limit,
            auth_failure_window: Duration::from_secs(auth_window_secs),
            trusted_proxies: match src.var("SCIMFLOW_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(v) => parse_ip_ranges(&v).map_err(|reason| ConfigError::Invalid {
                    name: "SCIMFLOW_TRUSTED_PROXIES",
                    value: v.clone(),
                    reason,
                })?,
            },
            metrics_tenant_label: src.parse("SCIMFLOW_METRICS_TENANT_LABEL", false)?,
            tracing: TracingSettings::from_sources(src)?,
        })
    }

    /// The largest request body accepted by an endpoint other than /Bulk
    /// (whose operations become a message each).
    pub fn max_body_bytes(&self) -> usize {
        max_body_bytes(self.max_message_bytes)
    }

    /// The SCIM base URL of a tenant (T1).
    pub fn scim_base_url(&self, tenant_id: uuid::Uuid) -> String {
        format!("{}/scim/v2/{tenant_id}", self.public_url)
    }

    /// A configuration from the settings given, not the process's
    /// environment (tests run in parallel in one process); every other
    /// setting has its default.
    #[cfg(any(test, feature = "testing"))]
    pub fn from_settings(settings: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Config::from_pairs(settings, HashMap::new())
    }

    /// `settings` as the environment, over `file`.
    #[cfg(any(test, feature = "testing"))]
    fn from_pairs(
        settings: &[(&str, &str)],
        file: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env_properties = env
            .iter()
            .filter(|(k, _)| k.starts_with(KAFKA_PROPERTY_PREFIX))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.get(name).cloned();
        Config::from_sources(&Sources {
            env: &lookup,
            file,
            hostname: None,
            env_properties,
        })
    }
}

/// The body limit that goes with a message size.
pub fn max_body_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_sub(ENVELOPE_RESERVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)], file: &str) -> Result<Config, ConfigError> {
        let file = parse_config_file(file).map_err(|reason| ConfigError::File {
            path: "test.env".into(),
            reason,
        })?;
        Config::from_pairs(env, file)
    }

    #[test]
    fn kafka_properties_pass_through_from_the_file_and_the_environment() {
        let file = format!(
            "{FILE}KAFKA_PROPERTY_SECURITY_PROTOCOL=SASL_SSL\n\
             KAFKA_PROPERTY_SASL_MECHANISMS=PLAIN\n\
             KAFKA_PROPERTY_SASL_PASSWORD=from-the-file\n"
        );
        let c = config(
            &[
                ("KAFKA_PROPERTY_SASL_MECHANISMS", "SCRAM-SHA-512"),
                ("KAFKA_PROPERTY_SASL_USERNAME", "scimflow"),
                ("KAFKA_PROPERTY_SSL_CA_PEM", "-----BEGIN CERTIFICATE-----"),
                ("KAFKA_PROPERTY_STATISTICS_INTERVAL_MS", "1000"),
                ("SCIMFLOW_TOPIC_REPLICATION", "3"),
            ],
            &file,
        )
        .expect("valid");
        let props = |ps: &[(String, String)]| {
            ps.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            props(&c.kafka.properties),
            [
                "sasl.mechanisms=SCRAM-SHA-512",
                "sasl.password=from-the-file",
                "sasl.username=scimflow",
                "security.protocol=SASL_SSL",
                "ssl.ca.pem=-----BEGIN CERTIFICATE-----",
                "statistics.interval.ms=1000",
            ]
        );
        assert_eq!(
            props(&c.kafka.redacted_properties()),
            [
                "sasl.mechanisms=SCRAM-SHA-512",
                "sasl.password=<redacted>",
                "sasl.username=scimflow",
                "security.protocol=SASL_SSL",
                "ssl.ca.pem=<redacted>",
                "statistics.interval.ms=1000",
            ]
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("from-the-file"), "{shown}");
        assert_eq!(c.kafka.topic_replication, 3);
        let c = config(&[], FILE).expect("valid");
        assert_eq!(c.kafka.topic_replication, -1, "the broker's default");
        assert!(c.kafka.properties.is_empty());
    }

    #[test]
    fn trace_export_follows_opentelemetry_variables() {
        // (environment, endpoint spans go to, ingress service name)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: &[Case<'_>] = &[
            (&[], None, "scimflow-ingress"),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
                Some("http://collector:4318/v1/traces"),
                "scimflow-ingress",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "https://traces.example/in",
                    ),
                    ("OTEL_SERVICE_NAME", "scim-eu"),
                ],
                Some("https://traces.example/in"),
                "scim-eu",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    ("OTEL_SDK_DISABLED", "true"),
                ],
                None,
                "scimflow-ingress",
            ),
        ];
        for (env, endpoint, service) in cases {
            let c = config(env, FILE).expect("valid");
            assert_eq!(c.tracing.traces_endpoint.as_deref(), *endpoint, "{env:?}");
            assert_eq!(c.tracing.service_name("ingress"), *service, "{env:?}");
        }
        assert_eq!(
            config(&[], FILE)
                .expect("valid")
                .tracing
                .service_name("processor"),
            "scimflow-processor"
        );
        let refused = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")], FILE);
        assert!(
            matches!(
                refused,
                Err(ConfigError::Invalid {
                    name: "OTEL_EXPORTER_OTLP_ENDPOINT",
                    ..
                })
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn the_instance_id_defaults_to_the_hostname_and_the_port() {
        // (hostname, SCIMFLOW_INSTANCE_ID, expected)
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (
                Some("scimflow-ingress-7d4b9c-x2k8p"),
                None,
                "ingress-scimflow-ingress-7d4b9c-x2k8p-8080",
            ),
            (Some("3f2a9c1b7e0d\n"), None, "ingress-3f2a9c1b7e0d-8080"),
            (
                Some("host name/with:odd*chars"),
                None,
                "ingress-host-name-with-odd-chars-8080",
            ),
            (Some("  "), None, "ingress-8080"),
            (Some("***"), None, "ingress-8080"),
            (None, None, "ingress-8080"),
            (Some("web-1"), Some("edge-a"), "edge-a"),
        ];
        for (hostname, set, expected) in cases {
            let env: Vec<(&str, &str)> = set.iter().map(|v| ("SCIMFLOW_INSTANCE_ID", *v)).collect();
            let env: HashMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup = move |name: &str| env.get(name).cloned();
            let file = parse_config_file(FILE).expect("file");
            let c = Config::from_sources(&Sources {
                env: &lookup,
                file,
                hostname: hostname.map(str::to_string),
                env_properties: Vec::new(),
            })
            .expect("valid");
            assert_eq!(c.instance_id, *expected, "{hostname:?}");
        }
        let long = "h".repeat(300);
        let id = default_instance_id(Some(&long), 9);
        assert_eq!(id.len(), "ingress-".len() + 64 + "-9".len(), "{id}");
    }

    const FILE: &str = "# scimflow\n\
        DATABASE_URL=postgres://db/scimflow\n\
        export KAFKA_BROKERS=\"127.0.0.1:9092\"\n\
        \n\
        SCIMFLOW_BATCH_MAX = '250'\n";

    #[test]
    fn the_file_supplies_settings_and_the_environment_overrides_it() {
        let c = config(&[], FILE).expect("valid");
        assert_eq!(c.database_url, "postgres://db/scimflow");
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.batch_max, 250);
        assert_eq!(c.tenant_rate, 20000.0, "a default");
        assert_eq!(c.read_ahead_bytes, 64 * 1024 * 1024, "a default");
        let c = config(&[("SCIMFLOW_BATCH_MAX", "64")], FILE).expect("valid");
        assert_eq!(c.batch_max, 64);
    }

    #[test]
    fn the_size_and_abuse_bounds_have_their_defaults_and_follow_their_settings() {
        let c = config(&[], FILE).expect("valid");
        assert_eq!(c.max_message_bytes, 1_000_000);
        assert_eq!(c.max_body_bytes(), 1_000_000 - ENVELOPE_RESERVE);
        assert_eq!(c.max_in_flight, 512);
        assert_eq!(c.request_timeout, Duration::from_secs(25));
        assert_eq!(c.db_statement_timeout, Duration::from_secs(30));
        assert_eq!(c.auth_failure_limit, 20);
        assert_eq!(c.auth_failure_window, Duration::from_secs(60));
        // The request timeout follows the reply deadline unless set.
        let c = config(&[("SCIMFLOW_REPLY_DEADLINE_MS", "30000")], FILE).expect("valid");
        assert_eq!(c.request_timeout, Duration::from_secs(45));
        let c = config(
            &[
                ("SCIMFLOW_MAX_MESSAGE_BYTES", "4000000"),
                ("SCIMFLOW_REQUEST_TIMEOUT_MS", "12000"),
            ],
            FILE,
        )
        .expect("valid");
        assert_eq!(c.max_body_bytes(), 4_000_000 - ENVELOPE_RESERVE);
        assert_eq!(c.request_timeout, Duration::from_secs(12));
    }

    #[test]
    fn the_admin_token_is_kept_as_its_hash_and_never_shown() {
        let token = "an-admin-token-of-at-least-32-characters";
        let c = config(&[("SCIMFLOW_ADMIN_TOKEN", token)], FILE).expect("valid");
        let kept = c.admin_token.clone().expect("a token");
        assert!(kept.verify(token));
        assert!(!kept.verify("an-admin-token-of-at-least-32-characterz"));
        let shown = format!("{c:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains(&crate::token::hash(token)), "{shown}");
        let hash = crate::token::hash(token).to_ascii_uppercase();
        let c = config(&[("SCIMFLOW_ADMIN_TOKEN_SHA256", &hash)], FILE).expect("valid");
        assert!(c.admin_token.expect("a hash").verify(token));
        assert!(config(&[], FILE).expect("valid").admin_token.is_none());
        for (name, value) in [
            ("SCIMFLOW_ADMIN_TOKEN", "short"),
            ("SCIMFLOW_ADMIN_TOKEN_SHA256", "abc"),
        ] {
            let err = config(&[(name, value)], FILE)
                .expect_err("refused")
                .to_string();
            assert!(err.starts_with(name) && !err.contains(value), "{err}");
        }
        let c = config(&[], FILE).expect("valid");
        assert_eq!(c.activity_max_rows, 10_000);
        assert_eq!(c.activity_max_age, Duration::from_secs(168 * 3600));
        assert_eq!(c.admin_api_addr.port(), 8081);
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let ranges = parse_ip_ranges("10.0.0.0/8, 192.168.1.7,fd00::/8 ,").expect("valid");
        let cases = [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:10.9.9.9", true),
        ];
        for (addr, trusted) in cases {
            let addr: std::net::IpAddr = addr.parse().expect("an address");
            assert_eq!(ranges.iter().any(|r| r.contains(addr)), trusted, "{addr}");
        }
        let odd = parse_ip_ranges("172.16.0.0/12").expect("valid");
        assert!(odd[0].contains("172.31.255.255".parse().expect("ip")));
        assert!(!odd[0].contains("172.32.0.0".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(parse_ip_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        // (environment, file, the start of the error)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], "", "DATABASE_URL is not set"),
            (
                &[],
                "DATABASE_URL=x\nKAFKA_BROKER=y\n",
                "line 2: \"KAFKA_BROKER\" is not a scimflow setting",
            ),
            (&[], "DATABASE_URL\n", "line 1: expected NAME=value"),
            (
                &[("SCIMFLOW_BATCH_MAX", "0")],
                FILE,
                "SCIMFLOW_BATCH_MAX=\"0\" is invalid",
            ),
            (
                &[("SCIMFLOW_DB_POOL_SIZE", "0")],
                FILE,
                "SCIMFLOW_DB_POOL_SIZE=\"0\" is invalid",
            ),
            (
                &[("SCIMFLOW_HTTP_ADDR", "localhost")],
                FILE,
                "SCIMFLOW_HTTP_ADDR=\"localhost\" is invalid",
            ),
            (
                &[("SCIMFLOW_REPLY_DEADLINE_MS", "18446744073709551615")],
                FILE,
                "SCIMFLOW_REPLY_DEADLINE_MS=\"18446744073709551615\" is invalid",
            ),
            (
                &[("SCIMFLOW_TENANT_RATE", "0.5")],
                FILE,
                "SCIMFLOW_TENANT_RATE=\"0.5\" is invalid",
            ),
            (
                &[("SCIMFLOW_READ_AHEAD_BYTES", "4096")],
                FILE,
                "SCIMFLOW_READ_AHEAD_BYTES=\"4096\" is invalid",
            ),
            (
                &[("SCIMFLOW_TOPIC_PREFIX", "a b")],
                FILE,
                "SCIMFLOW_TOPIC_PREFIX=\"a b\" is invalid",
            ),
            (
                &[("SCIMFLOW_MAX_MESSAGE_BYTES", "999999")],
                FILE,
                "SCIMFLOW_MAX_MESSAGE_BYTES=\"999999\" is invalid: must be between",
            ),
            (
                &[("SCIMFLOW_MAX_MESSAGE_BYTES", "20000000")],
                FILE,
                "SCIMFLOW_MAX_MESSAGE_BYTES=\"20000000\" is invalid",
            ),
            (
                &[("SCIMFLOW_MAX_IN_FLIGHT", "0")],
                FILE,
                "SCIMFLOW_MAX_IN_FLIGHT=\"0\" is invalid",
            ),
            (
                &[("SCIMFLOW_REQUEST_TIMEOUT_MS", "10000")],
                FILE,
                "SCIMFLOW_REQUEST_TIMEOUT_MS=\"10000\" is invalid: must exceed",
            ),
            (
                &[("SCIMFLOW_DB_STATEMENT_TIMEOUT_MS", "0")],
                FILE,
                "SCIMFLOW_DB_STATEMENT_TIMEOUT_MS=\"0\" is invalid",
            ),
            (
                &[("SCIMFLOW_AUTH_FAILURE_LIMIT", "0")],
                FILE,
                "SCIMFLOW_AUTH_FAILURE_LIMIT=\"0\" is invalid",
            ),
            (
                &[("SCIMFLOW_PUBLIC_URL", "ftp://x")],
                FILE,
                "SCIMFLOW_PUBLIC_URL=\"ftp://x\" is invalid",
            ),
            (
                &[("SCIMFLOW_CONSOLE_ORIGIN", "https://admin.example.com/console")],
                FILE,
                "SCIMFLOW_CONSOLE_ORIGIN=\"https://admin.example.com/console\" is invalid",
            ),
            (
                &[("SCIMFLOW_CONSOLE_ORIGIN", "admin.example.com")],
                FILE,
                "SCIMFLOW_CONSOLE_ORIGIN=\"admin.example.com\" is invalid",
            ),
            (
                &[("SCIMFLOW_METRICS_TENANT_LABEL", "yes")],
                FILE,
                "SCIMFLOW_METRICS_TENANT_LABEL=\"yes\" is invalid",
            ),
            (
                &[("SCIMFLOW_TOPIC_REPLICATION", "0")],
                FILE,
                "SCIMFLOW_TOPIC_REPLICATION=\"0\" is invalid",
            ),
            (
                &[("KAFKA_PROPERTY_ENABLE_AUTO_COMMIT", "true")],
                FILE,
                "enable.auto.commit is set by scimflow: the processor commits an offset only after the database transaction",
            ),
            (
                &[],
                "DATABASE_URL=x\nKAFKA_BROKERS=y\nKAFKA_PROPERTY_ACKS=1\n",
                "acks is set by scimflow: a write is acknowledged only once every in-sync replica",
            ),
            (
                &[("KAFKA_PROPERTY_BOOTSTRAP_SERVERS", "elsewhere:9092")],
                FILE,
                "bootstrap.servers is set by scimflow: it is set by KAFKA_BROKERS",
            ),
            (
                &[("KAFKA_PROPERTY_PARTITIONER", "murmur2")],
                FILE,
                "partitioner is set by scimflow",
            ),
            (
                &[("KAFKA_PROPERTY_TRANSACTIONAL_ID", "t")],
                FILE,
                "transactional.id is set by scimflow",
            ),
            (
                &[("KAFKA_PROPERTY_", "x")],
                FILE,
                // The bus's own test checks the rest of the reason.
                "KAFKA_PROPERTY_*=\"KAFKA_PROPERTY_=x\" is invalid: expected KAFKA_PROPERTY_ and a",
            ),
        ];
        for (env, file, expected) in cases {
            let err = config(env, file).expect_err("refused").to_string();
            assert!(err.contains(expected), "{env:?} {file:?}: {err}");
        }
    }
}
