//! The operator's surface of scimflow: the service functions that both the
//! `scimflow` CLI and the `/admin/v1` HTTP API call (`service`: tenants,
//! manual users, dead letters, provisioning status, the activity log), and
//! that API (`api`), served by the `admin-api` role on a listener of its
//! own, never the SCIM port, behind a bearer admin token compared by hash
//! in constant time.
//!
//! It must not write SQL (the store owns it), serve SCIM, or hold a rule
//! twice: a check made by the CLI and the API is made once, in `service`.

pub mod api;
pub mod service;
