//! The ingress: the HTTP face of scimflow. It authenticates each tenant's
//! bearer token, validates SCIM requests, publishes writes to the command
//! topic and answers with the processor's committed outcome (request-reply
//! over Kafka), and serves reads straight from PostgreSQL.
//!
//! It must not apply product rules or write tenants' data to the
//! database: every write goes through Kafka and the processor, so that one
//! user's writes are ordered however many ingresses run. The one table it
//! writes is its own record of requests, the activity log (`activity`),
//! off the request path. It reaches Kafka only through `scimflow_bus` (a
//! `Publisher` for commands, a `ReplyStream` for outcomes), which is what
//! lets the router run on the in-memory bus. HTTP is decided in one place,
//! `response.rs`: every status, header and body, from outcomes, reads and
//! errors alike. What bounds the work a client can make it do (body
//! size, requests in flight, time per request, rate, failed logins) is in
//! `body.rs` and `limits.rs`.

pub mod activity;
mod auth;
mod body;
mod bulk;
mod discovery;
mod error;
mod groups;
mod health;
mod limits;
mod lingering;
mod metrics;
mod paths;
mod readiness;
mod replies;
mod response;
mod status;
mod tenant_cache;
mod trace;
mod users;
mod write;

use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use scimflow_bus::{self as bus, Publisher, ReplyStream, Topics};
use scimflow_shared::config::Config;
use scimflow_shared::store::{self, PgPool, PgPooled, StoreError};

pub use error::IngressError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Commands go out through it (Kafka, or the in-memory bus in tests).
    pub publisher: Publisher,
    pub topics: Arc<Topics>,
    pub replies: Arc<replies::ReplyRouter>,
    pub limiter: Arc<limits::TenantRateLimiter>,
    pub auth_failures: Arc<limits::AuthFailures>,
    /// One permit per request in flight (`SCIMFLOW_MAX_IN_FLIGHT`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub readiness: Arc<readiness::Readiness>,
    pub tenants: Arc<tenant_cache::TenantCache>,
    /// One permit per pooled connection (see `blocking`).
    pub db_slots: Arc<tokio::sync::Semaphore>,
    /// The command topic's partitions, read at startup: a /Bulk wave's
    /// commands are grouped by the partition their keys land in
    /// (`write::execute_all`).
    pub command_partitions: i32,
    /// The activity log's queue (`activity`).
    pub activity: activity::Recorder,
    pub config: Arc<Config>,
}

/// The HTTP service: the routes, reached through `paths`, which names
/// each endpoint as routed whatever case or slashes the client used.
pub fn router(state: AppState) -> Router {
    paths::canonical_routing(routes(state))
}

fn routes(state: AppState) -> Router {
    use axum::routing::post;
    let scim = Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::post_search))
        .route(
            "/Users/{id}",
            get(users::get_one)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::post_search))
        .route(
            "/Groups/{id}",
            get(groups::get_one)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/.search", post(discovery::root_search))
        .route(
            "/Bulk",
            post(bulk::bulk).layer(axum::extract::DefaultBodyLimit::max(
                scimflow_shared::scim::bulk::MAX_BULK_PAYLOAD,
            )),
        )
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/Me", axum::routing::any(discovery::me))
        .route("/Status/{id}", get(status::get_status));
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .nest("/scim/v2/{tenant_id}", scim)
        .fallback(error::not_found)
        // Outermost last: the span and the metrics see every answer, the
        // in-flight permit covers reading and draining the body, and the
        // request timeout covers the handler and the body it reads.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::in_flight,
        ))
        // Inside `metrics::track`, whose slot names the authenticated tenant.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            activity::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(trace::request_span))
        // `body::limit` enforces the body limit, per route.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

/// Ready when PostgreSQL answers and the broker gives metadata (checked
/// at most once a second: `readiness.rs`).
async fn ready(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> Result<&'static str, IngressError> {
    readiness::ready(&app).await
}

/// How many partitions the command topic has (the broker's word, not the
/// setting, which applies only when the topic is created).
async fn command_partitions(publisher: &Publisher, topic: &str) -> anyhow::Result<i32> {
    bus::retry_at_startup("reading the command topic's partitions", || {
        publisher.partition_count(topic, std::time::Duration::from_secs(10))
    })
    .await
    .context("reading the command topic's metadata")
}

impl AppState {
    /// The state every request shares: `publisher` for commands, `replies`
    /// for their outcomes (read until `replies_stop` turns true).
    pub fn new(
        config: Config,
        pool: PgPool,
        publisher: Publisher,
        replies: ReplyStream,
        activity: activity::Recorder,
        command_partitions: i32,
        replies_stop: watch::Receiver<bool>,
    ) -> AppState {
        AppState {
            activity,
            pool,
            publisher,
            topics: Arc::new(Topics::new(&config.topic_prefix)),
            replies: replies::ReplyRouter::start(replies, replies_stop),
            limiter: Arc::new(limits::TenantRateLimiter::new(
                config.tenant_rate,
                config.tenant_burst,
            )),
            auth_failures: Arc::new(limits::AuthFailures::new(
                config.auth_failure_limit,
                config.auth_failure_window,
            )),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            readiness: Arc::default(),
            tenants: Arc::default(),
            db_slots: Arc::new(tokio::sync::Semaphore::new(config.db_pool_size as usize)),
            command_partitions,
            config: Arc::new(config),
        }
    }
}

/// Run a database read on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&mut PgPooled) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, IngressError> {
    // Wait here, not on a blocking thread: at most one blocking task per
    // pooled connection, so a burst queues as cheap futures instead of
    // threads contending for connections.
    // The permit goes with the task: a request that times out and drops
    // this future leaves its statement running, still counted.
    let slot = app
        .db_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| IngressError::Unavailable("shutting down"))?;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|_| IngressError::Unavailable("the database task failed"))?
    .map_err(IngressError::from)
}

/// Serve until `shutdown` turns true, then stop accepting and finish the
/// requests in flight.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let pool = store::connect_pool(
        &config.database_url,
        config.db_pool_size,
        config.db_statement_timeout,
    )
    .context("connecting to PostgreSQL")?;
    let topics = Topics::new(&config.topic_prefix);
    let reply_topic = topics.replies(&config.instance_id);
    bus::ensure_topics(
        &config.kafka,
        &[
            (topics.commands(), config.command_partitions),
            (reply_topic.clone(), 1),
        ],
        config.max_message_bytes,
    )
    .await
    .context("creating topics")?;
    let publisher = Publisher::connect(&config.kafka, config.max_message_bytes)
        .context("creating the Kafka producer")?;
    let command_partitions = command_partitions(&publisher, &topics.commands()).await?;
    // The reply consumer outlives the HTTP server: requests still in flight
    // when shutdown starts get their outcomes.
    let (replies_stop, replies_stopped) = watch::channel(false);
    let replies = ReplyStream::open(&config.kafka, &reply_topic)
        .await
        .context("starting the reply consumer")?;
    let addr = config.http_addr;
    let (activity, activity_writer) = activity::Recorder::start(
        pool.clone(),
        config.activity_max_rows,
        config.activity_max_age,
    );
    let state = AppState::new(
        config,
        pool,
        publisher,
        replies,
        activity,
        command_partitions,
        replies_stopped,
    );
    state
        .tenants
        .follow_changes(state.config.database_url.clone(), shutdown.clone())
        .context("starting the tenant change listener")?;
    // /metrics, /healthz and /readyz on their own listener, never on the
    // SCIM one.
    metrics::init();
    bus::stats::observe_build_info();
    let readiness = scimflow_shared::metrics::Readiness::new();
    health::follow(
        state.pool.clone(),
        state.publisher.clone(),
        state.topics.commands(),
        readiness.clone(),
        shutdown.clone(),
    );
    scimflow_shared::metrics::serve_admin(
        state.config.admin_addr,
        state.pool.clone(),
        readiness,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("binding the admin listener {}", state.config.admin_addr))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, reply_topic, "ingress listening");
    // Connections close gracefully (`lingering`), so a client still writing
    // its body reads the answer; the peer's address counts failed
    // authentications (`limits`).
    let listener = lingering::LingeringListener(listener);
    let service = router(state).into_make_service_with_connect_info::<lingering::ClientAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving HTTP")?;
    // Every request is answered: write what the activity log still queues.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), activity_writer).await;
    let _ = replies_stop.send(true);
    tracing::info!("ingress stopped");
    Ok(())
}
