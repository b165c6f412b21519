//! All settings, in one typed struct read from the environment and checked
//! at start: a bad setting stops the process with a message naming it.

use std::net::SocketAddr;
use std::time::Duration;

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
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL.
    pub database_url: String,
    /// `SCIMFLOW_DB_POOL_SIZE` (default 16).
    pub db_pool_size: u32,
    /// `KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub kafka_brokers: String,
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
    /// `SCIMFLOW_INSTANCE_ID` (default `ingress-<port>`): names this
    /// ingress's reply topic. Must be unique among running ingresses.
    pub instance_id: String,
    /// `SCIMFLOW_REPLY_DEADLINE_MS` (default 10000): how long a write waits
    /// for its outcome before answering 503 with Retry-After.
    pub reply_deadline: Duration,
    /// `SCIMFLOW_BATCH_MAX` (default 500): most commands per processor
    /// transaction.
    pub batch_max: usize,
    /// `SCIMFLOW_BATCH_LINGER_MS` (default 5): how long the processor waits
    /// to fill a batch once it has one command.
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
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value: v.clone(),
            reason: e.to_string(),
        }),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = var("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: " (source .local/stack.env after ./scripts/run)",
        })?;
        let kafka_brokers = var("KAFKA_BROKERS").ok_or(ConfigError::Missing {
            name: "KAFKA_BROKERS",
            hint: " (source .local/stack.env after ./scripts/run)",
        })?;
        let http_addr: SocketAddr = parse(
            "SCIMFLOW_HTTP_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
        )?;
        let public_url = var("SCIMFLOW_PUBLIC_URL")
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
        let topic_prefix = var("SCIMFLOW_TOPIC_PREFIX").unwrap_or_else(|| "scimflow".into());
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
        let command_partitions: i32 = parse("SCIMFLOW_COMMAND_PARTITIONS", 8)?;
        if !(1..=256).contains(&command_partitions) {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_COMMAND_PARTITIONS",
                value: command_partitions.to_string(),
                reason: "must be between 1 and 256".into(),
            });
        }
        let batch_max: usize = parse("SCIMFLOW_BATCH_MAX", 500)?;
        if batch_max == 0 {
            return Err(ConfigError::Invalid {
                name: "SCIMFLOW_BATCH_MAX",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let instance_id =
            var("SCIMFLOW_INSTANCE_ID").unwrap_or_else(|| format!("ingress-{}", http_addr.port()));
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
        let consumer_group =
            var("SCIMFLOW_CONSUMER_GROUP").unwrap_or_else(|| format!("{topic_prefix}.processor"));
        let tenant_rate: f64 = parse("SCIMFLOW_TENANT_RATE", 20000.0)?;
        let tenant_burst: f64 = parse("SCIMFLOW_TENANT_BURST", 40000.0)?;
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
        let admin_addr: SocketAddr = parse(
            "SCIMFLOW_ADMIN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9090)),
        )?;
        let processor_admin_addr: SocketAddr = parse(
            "SCIMFLOW_PROCESSOR_ADMIN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9091)),
        )?;
        Ok(Config {
            database_url,
            admin_addr,
            processor_admin_addr,
            db_pool_size: parse("SCIMFLOW_DB_POOL_SIZE", 16)?,
            kafka_brokers,
            topic_prefix,
            command_partitions,
            http_addr,
            public_url,
            instance_id,
            reply_deadline: Duration::from_millis(parse("SCIMFLOW_REPLY_DEADLINE_MS", 10_000)?),
            batch_max,
            batch_linger: Duration::from_millis(parse("SCIMFLOW_BATCH_LINGER_MS", 5)?),
            consumer_group,
            tenant_rate,
            tenant_burst,
        })
    }

    /// The SCIM base URL of a tenant (T1).
    pub fn scim_base_url(&self, tenant_id: uuid::Uuid) -> String {
        format!("{}/scim/v2/{tenant_id}", self.public_url)
    }
}
