//! Ops commands: tenants (T1–T4), manual users (I3), configuration.
//! Secrets are printed once, at creation or rotation, and never logged.

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::Subcommand;
use diesel::{Connection, PgConnection};
use serde_json::{json, Value};
use uuid::Uuid;

use scimflow_shared::config::Config;
use scimflow_shared::rules::identity::looks_like_email;
use scimflow_shared::rules::roles::{Feature, Roles};
use scimflow_shared::store::commands::{history, record_history, HistoryEntry};
use scimflow_shared::store::tenants::{self, TenantRow};
use scimflow_shared::store::users::{self, UserRow};
use scimflow_shared::token;

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
    use scimflow_shared::store::dead_letters;
    match cmd {
        DlqCmd::List { tenant, all, json } => {
            let rows = with_db(move |conn, _| Ok(dead_letters::list(conn, tenant, all)?)).await?;
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
            let (row, actions, replayed_as) = with_db(move |conn, _| {
                let (row, actions) = dead_letters::find(conn, id)?
                    .ok_or_else(|| anyhow::anyhow!("no dead letter {id}"))?;
                Ok((row, actions, dead_letters::replayed_as(conn, id)?))
            })
            .await?;
            let payload: Value = serde_json::from_slice(&row.payload).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&row.payload).into_owned())
            });
            // `replay_of`: the letter this replay failed again from;
            // `replayed_as`: the letters its own replays became.
            let shown = json!({"dead_letter": row, "payload": payload, "actions": actions,
                               "replay_of": row.replay_of, "replayed_as": replayed_as});
            if json {
                println!("{shown}");
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
            let done = with_db(move |conn, _| {
                let ids = id.map(|i| vec![i]);
                Ok(dead_letters::replay(
                    conn,
                    if all { None } else { ids.as_deref() },
                    tenant,
                    &who,
                )?)
            })
            .await?;
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

fn print_resolution(
    done: &scimflow_shared::store::dead_letters::Resolution,
    json: bool,
) -> anyhow::Result<()> {
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

fn parse_features(raw: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for f in raw.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        match Feature::parse(f) {
            Some(feature) => {
                let name = feature.as_str().to_string();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            None => bail!("unknown plan feature {f:?} (known: voice, listener)"),
        }
    }
    Ok(out)
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
            let features = parse_features(&features)?;
            let (row, secret, base) = with_db(move |conn, config| {
                let secret = token::generate();
                let row = TenantRow {
                    id: Uuid::now_v7(),
                    name,
                    token_hash: token::hash(&secret),
                    features,
                    created_at: Utc::now(),
                    token_rotated_at: None,
                    suspended_at: None,
                    deleted_at: None,
                };
                tenants::insert(conn, &row)?;
                let base = config.scim_base_url(row.id);
                Ok((row, secret, base))
            })
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"tenant_id": row.id, "scim_base_url": base, "token": secret, "features": row.features})
                );
            } else {
                println!("tenant:        {} ({})", row.id, row.name);
                println!("SCIM base URL: {base}");
                println!("Bearer token:  {secret}   (shown once)");
            }
            Ok(())
        }
        TenantCmd::Suspend { tenant, json } => {
            with_db(move |conn, _| {
                if !tenants::set_suspended(conn, tenant, true)? {
                    bail!("no tenant {tenant}");
                }
                Ok(())
            })
            .await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "status": "suspended"}));
            } else {
                println!("tenant {tenant} suspended: its token is refused and its queued commands are held");
            }
            Ok(())
        }
        TenantCmd::Resume { tenant, json } => {
            let who = actor();
            let done = with_db(move |conn, _| {
                if !tenants::set_suspended(conn, tenant, false)? {
                    bail!("no tenant {tenant}");
                }
                Ok(
                    scimflow_shared::store::dead_letters::replay_held_for_suspension(
                        conn, tenant, &who,
                    )?,
                )
            })
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"tenant_id": tenant, "replayed": done.replayed})
                );
            } else {
                println!(
                    "tenant {tenant} resumed; {} held command(s) replayed",
                    done.replayed.len()
                );
            }
            Ok(())
        }
        TenantCmd::Delete {
            tenant,
            confirm,
            json,
        } => {
            if !confirm {
                bail!("deleting a tenant purges all its data; pass --confirm to do it");
            }
            let purged = with_db(move |conn, config| {
                let topics = scimflow_bus::Topics::new(&config.topic_prefix);
                tenants::delete(
                    conn,
                    tenant,
                    &[topics.user_changes(), topics.group_changes()],
                )?
                .ok_or_else(|| anyhow::anyhow!("no tenant {tenant}"))
            })
            .await?;
            if json {
                println!("{}", json!({"tenant_id": tenant, "purged": purged}));
            } else {
                println!("tenant {tenant} deleted: {purged:?}");
            }
            Ok(())
        }
        TenantCmd::List { json } => {
            let rows = with_db(|conn, config| {
                Ok(tenants::list(conn)?
                    .into_iter()
                    .map(|t| {
                        let status = if t.deleted_at.is_some() { "deleted" } else if t.suspended_at.is_some() { "suspended" } else { "active" };
                        json!({"tenant_id": t.id, "name": t.name, "features": t.features, "status": status,
                               "scim_base_url": config.scim_base_url(t.id), "created_at": t.created_at,
                               "token_rotated_at": t.token_rotated_at})
                    })
                    .collect::<Vec<Value>>())
            })
            .await?;
            if json {
                println!("{}", Value::Array(rows));
            } else {
                for r in rows {
                    println!(
                        "{}  {}  features={}",
                        r["tenant_id"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        r["features"]
                    );
                }
            }
            Ok(())
        }
        TenantCmd::RotateToken { tenant, json } => {
            let secret = with_db(move |conn, _| {
                let secret = token::generate();
                if !tenants::set_token_hash(conn, tenant, &token::hash(&secret))? {
                    bail!("no tenant {tenant}");
                }
                Ok(secret)
            })
            .await?;
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
            let features = parse_features(&features)?;
            let shown = features.clone();
            with_db(move |conn, _| {
                if !tenants::set_features(conn, tenant, &features)? {
                    bail!("no tenant {tenant}");
                }
                Ok(())
            })
            .await?;
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
            let email = email.trim().to_string();
            if !looks_like_email(&email) {
                bail!("{email:?} is not an email address");
            }
            let row = with_db(move |conn, config| {
                conn.transaction(|conn| {
                    if tenants::find(conn, tenant)?.is_none() {
                        bail!("no tenant {tenant}");
                    }
                    let identity = email.to_lowercase();
                    if let Some(existing) = users::find_by_email(conn, tenant, &identity)? {
                        if existing.deleted_at.is_none() {
                            bail!("user {} already has this email", existing.id);
                        }
                    }
                    let mut name = serde_json::Map::new();
                    if let Some(g) = given_name {
                        name.insert("givenName".into(), Value::String(g));
                    }
                    if let Some(f) = family_name {
                        name.insert("familyName".into(), Value::String(f));
                    }
                    let mut attrs = json!({
                        "userName": email,
                        "emails": [{"value": email, "type": "work", "primary": true}],
                    });
                    if !name.is_empty() {
                        attrs["name"] = Value::Object(name);
                    }
                    let now = Utc::now();
                    let roles = Roles::DEFAULT;
                    let row = UserRow {
                        id: Uuid::now_v7(),
                        tenant_id: tenant,
                        user_name: email.clone(),
                        external_id: None,
                        primary_email: identity.clone(),
                        active: true,
                        primary_role: roles.primary.as_str().into(),
                        permission: roles.permission.as_str().into(),
                        attrs,
                        scim_managed: false,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                        deleted_at: None,
                    };
                    users::insert(conn, &row)?;
                    record_history(
                        conn,
                        HistoryEntry {
                            tenant_id: tenant,
                            user_id: row.id,
                            command_id: None,
                            request_id: None,
                            change: "manually_provisioned",
                            before: None,
                            after: json!({"primary_email": identity, "user_name": email, "active": true,
                                          "deleted": false, "roles": {"primary": row.primary_role, "permission": row.permission}}),
                        },
                    )?;
                    let view = row.view()?;
                    Ok(view.render(&config.scim_base_url(tenant)))
                })
            })
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
            let shown = with_db(move |conn, config| {
                let identity = email.trim().to_lowercase();
                let Some(row) = users::find_by_email(conn, tenant, &identity)? else {
                    bail!("no user with email {email} in tenant {tenant}");
                };
                let view = row.view()?;
                let hist = history(conn, tenant, row.id)?;
                Ok(json!({
                    "user": view.render(&config.scim_base_url(tenant)),
                    "roles": {"primary": row.primary_role, "permission": row.permission},
                    "scim_managed": row.scim_managed,
                    "deleted_at": row.deleted_at,
                    "history": hist,
                }))
            })
            .await?;
            if json {
                println!("{shown}");
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
            if let Ok(path) = std::env::var("SCIMFLOW_CONFIG") {
                println!("  (environment over the file {path})");
            }
            Ok(())
        }
    }
}
