//! `scimflow`: one binary for every role (ingress, processor, admin API) and every ops
//! command (migrations, tenants, manual users). Thin: it parses arguments,
//! reads the configuration and calls into the crates.

mod bench;
mod cli;
mod telemetry;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

use scimflow_shared::config::Config;

#[derive(Parser)]
#[command(
    name = "scimflow",
    version,
    about = "SCIM 2.0 provisioning over Kafka and PostgreSQL"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply pending database migrations.
    Migrate,
    /// Run the HTTP ingress.
    Ingress,
    /// Run the command processor (and the outbox relay).
    Processor,
    /// Serve the admin HTTP API (/admin/v1) and the support console (/console)
    /// on SCIMFLOW_ADMIN_API_ADDR.
    AdminApi,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(cli::TenantCmd),
    /// Manage users outside SCIM (manual provisioning).
    #[command(subcommand)]
    User(cli::UserCmd),
    /// Inspect, replay and discard dead-lettered commands.
    #[command(subcommand)]
    Dlq(cli::DlqCmd),
    /// Play an IdP's initial push against a SCIM endpoint and measure it.
    Bench(bench::BenchArgs),
    /// Check the configuration and print it (without secrets).
    #[command(subcommand)]
    Config(cli::ConfigCmd),
}

/// A channel that turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // A role sets up its logs once it has read its configuration, which
    // says where its spans go.
    if !matches!(args.command, Cmd::Ingress | Cmd::Processor | Cmd::AdminApi) {
        telemetry::init(None)?;
    }
    match args.command {
        Cmd::Migrate => {
            let config = Config::load()?;
            let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
                use diesel::Connection;
                let mut conn = diesel::PgConnection::establish(&config.database_url)
                    .context("connecting to PostgreSQL")?;
                Ok(scimflow_shared::store::run_migrations(&mut conn)?)
            })
            .await??;
            for m in &applied {
                println!("applied {m}");
            }
            if applied.is_empty() {
                println!("database is up to date");
            }
            Ok(())
        }
        Cmd::Ingress => run_role("ingress", scimflow_ingress::run).await,
        Cmd::Processor => run_role("processor", scimflow_processor::run).await,
        Cmd::AdminApi => {
            run_role("admin-api", |config, shutdown| {
                scimflow_admin::api::run(config, shutdown, scimflow_console::router)
            })
            .await
        }
        Cmd::Tenant(cmd) => cli::tenant(cmd).await,
        Cmd::User(cmd) => cli::user(cmd).await,
        Cmd::Dlq(cmd) => cli::dlq(cmd).await,
        Cmd::Bench(args) => bench::run(args).await,
        Cmd::Config(cmd) => cli::config(cmd),
    }
}

/// Run a role with its logs and spans, and flush its spans when it stops.
async fn run_role<F, Fut>(role: &str, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = Config::load()?;
    let telemetry = telemetry::init(Some((role, &config.tracing)))?;
    let ran = run(config, shutdown_signal()).await;
    telemetry.shutdown().await;
    ran
}
