//! Ops commands: tenants (T1–T4), manual users (I3), dead letters,
//! configuration. Argument parsing and printing only: the operations are
//! `scimflow_admin::service`'s, shared with the admin API. Secrets are
//! printed once, at creation or rotation, and never logged.

use anyhow::Context as _;
use clap::Subcommand;
use diesel::{Connection, PgConnection};
use serde_json::json;
use uuid::Uuid;

use scimflow_admin::service::dead_letters::ResolutionView;
use scimflow_admin::service::{tenants, users, Page};
use scimflow_shared::config::Config;

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Create a tenant; prints its SCIM base URL and its token (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Plan features, comma-separated: voice, listener.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tenants (never their tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Issue a new token; the old one stops working at once.
    RotateToken {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: its token gets 401 and its queued commands are
    /// held (not dropped) until it is resumed.
    Suspend {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Resume a suspended tenant and apply what was held, in order.
    Resume {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant: revoke its token and purge its data. Irreversible.
    Delete {
        #[arg(long)]
        tenant: Uuid,
        /// Required: confirms the purge.
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replace a tenant's plan features.
    SetFeatures {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Provision a user by hand (outside SCIM); a later SCIM POST with the
    /// same primary work email links it (I3).
    Create {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a user, its roles and the history of its roles, active state
    /// and identity.
    Show {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DlqCmd {
    /// Dead letters still open or being replayed (all with --all).
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter: reason, origin, payload and every action taken.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back through the normal path, once. Later dead
    /// letters of the same resource are replayed with them, in order; a
    /// letter behind an earlier open one of its resource, or whose payload
    /// cannot be decoded, is refused with the reason.
    Replay {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
        #[arg(long, requires = "all")]
        tenant: Option<Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// Give up on a dead letter; its resource's later commands flow again.
    Discard {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

/// Who an operator action is recorded as.
fn actor() -> String {
    std::env::var("SCIMFLOW_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into())
}

pub async fn dlq(cmd: DlqCmd) -> anyhow::Result<()> {
    use scimflow_admin::service::dead_letters::{self, ReplayWhat};
    match cmd {
        DlqCmd::List { tenant, all, json } => {
            let rows =
                with_db(move |conn, _| Ok(dead_letters::list(conn, tenant, all, Page::ALL)?))
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else if rows.is_empty() {
                println!("no dead letters");
            } else {
                for r in rows {
                    let replay_of = r
                        .replay_of
                        .map(|p| format!("  replay of {p}"))
                        .unwrap_or_default();
                    println!(
                        "{:>6}  {:<9}  {}  tenant={}  key={}  {}{replay_of}",
                        r.id,
                        r.status,
                        r.created_at.format("%Y-%m-%d %H:%M:%S"),
                        r.tenant_id
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.kafka_key.as_deref().unwrap_or("-"),
                        r.reason
                    );
                }
            }
            Ok(())
        }
        DlqCmd::Show { id, json } => {
            let shown = with_db(move |conn, _| Ok(dead_letters::show(conn, id)?)).await?;
            if json {
                println!("{}", serde_json::to_string(&shown)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
            Ok(())
        }
        DlqCmd::Replay {
            id,
            all,
            tenant,
            json,
        } => {
            let who = actor();
            let what = match id {
                Some(id) if !all => ReplayWhat::Ids(vec![id]),
                _ => ReplayWhat::AllOpen { tenant },
            };
            let done = with_db(move |conn, _| Ok(dead_letters::replay(conn, what, &who)?)).await?;
            print_resolution(&done, json)
        }
        DlqCmd::Discard { id, reason, json } => {
            let who = actor();
            let done =
                with_db(move |conn, _| Ok(dead_letters::discard(conn, id, &reason, &who)?)).await?;
            print_resolution(&done, json)
        }
    }
}

fn print_resolution(done: &ResolutionView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(done)?);
        return Ok(());
    }
    for id in &done.replayed {
        println!("dead letter {id}: replayed (queued back onto the command topic)");
    }
    for id in &done.discarded {
        println!("dead letter {id}: discarded");
    }
    for (id, why) in &done.skipped {
        println!("dead letter {id}: skipped, {why}");
    }
    if done.replayed.is_empty() && done.discarded.is_empty() && done.skipped.is_empty() {
        println!("nothing to do");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Validate the environment's configuration.
    Check,
}

async fn with_db<T: Send + 'static>(
    f: impl FnOnce(&mut PgConnection, &Config) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let config = Config::load()?;
    tokio::task::spawn_blocking(move || {
        let mut conn =
            PgConnection::establish(&config.database_url).context("connecting to PostgreSQL")?;
        f(&mut conn, &config)
    })
    .await?
}

pub async fn tenant(cmd: TenantCmd) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Create {
            name,
            features,
            json,
        } => {
            let new = tenants::NewTenant {
                name,
                features,
                external_ref: None,
            };
            let created =
                with_db(move |conn, config| Ok(tenants::create(conn, config, new)?)).await?;
            let (t, secret) = (created.tenant, created.token.unwrap_or_default());
            if json {
                println!(
                    "{}",
                    json!({"tenant_id": t.tenant_id, "scim_base_url": t.scim_base_url, "token": secret, "features": t.features})
                );
            } else {
                println!("tenant:        {} ({})", t.tenant_id, t.name);
                println!("SCIM base URL: {}", t.scim_base_url);
                println!("Bearer token:  {secret}   (shown once)");
            }
            Ok(())
        }
        TenantCmd::Suspend { tenant, json } => {
            with_db(move |conn, _| Ok(tenants::suspend(conn, tenant)?)).await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "status": "suspended"}));
            } else {
                println!("tenant {tenant} suspended: its token is refused and its queued commands are held");
            }
            Ok(())
        }
        TenantCmd::Resume { tenant, json } => {
            let who = actor();
            let replayed = with_db(move |conn, _| Ok(tenants::resume(conn, tenant, &who)?)).await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "replayed": replayed}));
            } else {
                println!(
                    "tenant {tenant} resumed; {} held command(s) replayed",
                    replayed.len()
                );
            }
            Ok(())
        }
        TenantCmd::Delete {
            tenant,
            confirm,
            json,
        } => {
            let purged =
                with_db(move |conn, config| Ok(tenants::delete(conn, config, tenant, confirm)?))
                    .await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "purged": purged}));
            } else {
                println!("tenant {tenant} deleted: {purged:?}");
            }
            Ok(())
        }
        TenantCmd::List { json } => {
            let rows =
                with_db(|conn, config| Ok(tenants::list(conn, config, Page::ALL)?.1)).await?;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{}  {}  features={}",
                        r.tenant_id,
                        r.name,
                        serde_json::to_string(&r.features)?
                    );
                }
            }
            Ok(())
        }
        TenantCmd::RotateToken { tenant, json } => {
            let secret = with_db(move |conn, _| Ok(tenants::rotate_token(conn, tenant)?)).await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "token": secret}));
            } else {
                println!("Bearer token: {secret}   (shown once; the old token no longer works)");
            }
            Ok(())
        }
        TenantCmd::SetFeatures {
            tenant,
            features,
            json,
        } => {
            let shown =
                with_db(move |conn, _| Ok(tenants::set_features(conn, tenant, &features)?)).await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "features": shown}));
            } else {
                println!("tenant {tenant} features: [{}]", shown.join(","));
            }
            Ok(())
        }
    }
}

pub async fn user(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Create {
            tenant,
            email,
            given_name,
            family_name,
            json,
        } => {
            let new = users::ManualUser {
                email,
                given_name,
                family_name,
            };
            let row =
                with_db(move |conn, config| Ok(users::create_manual(conn, config, tenant, new)?))
                    .await?;
            if json {
                println!("{row}");
            } else {
                println!(
                    "user {} created (manually provisioned)",
                    row["id"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        UserCmd::Show {
            tenant,
            email,
            json,
        } => {
            let who = users::UserRef::Email(email);
            let shown =
                with_db(move |conn, config| Ok(users::show(conn, config, tenant, &who, None)?))
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&shown)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
            Ok(())
        }
    }
}

pub fn config(cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Check => {
            let c = Config::load()?;
            println!("configuration is valid");
            println!("  http_addr:          {}", c.http_addr);
            println!("  public_url:         {}", c.public_url);
            println!("  kafka_brokers:      {}", c.kafka.brokers);
            println!("  topic_replication:  {}", c.kafka.topic_replication);
            for (name, value) in c.kafka.redacted_properties() {
                println!("  kafka property:     {name}={value}");
            }
            println!("  topic_prefix:       {}", c.topic_prefix);
            println!("  command_partitions: {}", c.command_partitions);
            println!("  consumer_group:     {}", c.consumer_group);
            println!("  instance_id:        {}", c.instance_id);
            println!(
                "  otlp_traces:        {} (as {}, {})",
                c.tracing.traces_endpoint.as_deref().unwrap_or("off"),
                c.tracing.service_name("ingress"),
                c.tracing.service_name("processor")
            );
            println!("  reply_deadline:     {:?}", c.reply_deadline);
            println!("  batch_max:          {}", c.batch_max);
            println!("  batch_linger:       {:?}", c.batch_linger);
            println!("  admin_addr:         {}", c.admin_addr);
            println!("  processor_admin:    {}", c.processor_admin_addr);
            println!(
                "  tenant_rate:        {}/s, burst {}",
                c.tenant_rate, c.tenant_burst
            );
            println!("  db_pool_size:       {}", c.db_pool_size);
            println!("  read_ahead_bytes:   {}", c.read_ahead_bytes);
            println!(
                "  max_message_bytes:  {} (request bodies up to {})",
                c.max_message_bytes,
                c.max_body_bytes()
            );
            println!("  max_in_flight:      {}", c.max_in_flight);
            println!("  request_timeout:    {:?}", c.request_timeout);
            println!("  statement_timeout:  {:?}", c.db_statement_timeout);
            println!(
                "  auth_failures:      {} per {:?} per client address",
                c.auth_failure_limit, c.auth_failure_window
            );
            println!(
                "  trusted_proxies:    {}",
                if c.trusted_proxies.is_empty() {
                    "none (every client is its TCP peer)".to_string()
                } else {
                    format!("{:?}", c.trusted_proxies)
                }
            );
            println!("  admin_api_addr:     {}", c.admin_api_addr);
            println!(
                "  admin_token:        {}",
                if c.admin_token.is_some() {
                    "<redacted>"
                } else {
                    "not set (the admin API does not start)"
                }
            );
            println!(
                "  activity log:       {} entries per tenant, {} h at most",
                c.activity_max_rows,
                c.activity_max_age.as_secs() / 3600
            );
            if let Ok(path) = std::env::var("SCIMFLOW_CONFIG") {
                println!("  (environment over the file {path})");
            }
            Ok(())
        }
    }
}
