//! The support console: server-rendered HTML pages under `/console`, on
//! the admin API's listener, for the vendor's support and operations
//! staff. It owns sign-in (a session made by presenting the admin token),
//! the anti-forgery checks every action passes, the pages, their security
//! headers, and the chart of a tenant's activity drawn as SVG.
//!
//! It must not write SQL or hold a rule: every read and every action is a
//! function of `scimflow_admin::service`, the same the CLI and the admin
//! API call. It serves nothing from outside the binary, puts no secret in
//! a URL, and works without JavaScript (its one small script only
//! refreshes lists in place).

mod activity;
mod assets;
mod chart;
mod dead_letters;
mod fields;
mod page;
mod session;
mod tenants;
mod users;

use axum::routing::get;
use axum::Router;

pub use scimflow_admin::api::ApiState as ConsoleState;

/// The console's pages, to be merged into the admin API's router.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(page::home))
        .route("/console/", get(page::home))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", axum::routing::post(session::sign_out))
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/tenants", get(tenants::list))
        .route("/console/tenants/{tenant}", get(tenants::show))
        .route(
            "/console/tenants/{tenant}/features",
            axum::routing::post(tenants::set_features),
        )
        .route(
            "/console/tenants/{tenant}/{action}",
            get(tenants::confirm).post(tenants::act),
        )
        .route("/console/tenants/{tenant}/activity", get(activity::list))
        .route("/console/tenants/{tenant}/users", get(users::find))
        .route("/console/tenants/{tenant}/users/{user}", get(users::show))
        .route("/console/dead-letters", get(dead_letters::list))
        .route("/console/dead-letters/{id}", get(dead_letters::show))
        .route(
            "/console/dead-letters/{id}/{action}",
            get(dead_letters::confirm).post(dead_letters::act),
        )
        .route("/console/{*rest}", get(page::not_found))
        .layer(axum::middleware::from_fn(page::security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(page::MAX_FORM_BYTES))
        .with_state(state)
}
