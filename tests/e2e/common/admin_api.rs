//! The admin API's process (`scimflow admin-api`, which also serves the
//! console) for a test's stack, and a client for `/admin/v1`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{eventually, free_port, Stack};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdefghijklmnop";

/// A running `scimflow admin-api` for a stack.
pub struct AdminApi {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl Drop for AdminApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// An RFC 9457 problem with this status.
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(
            self.body["type"].as_str().is_some() && self.body["title"].as_str().is_some(),
            "{}",
            self.body
        );
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
    }
}

impl AdminApi {
    pub async fn start(stack: &Stack) -> AdminApi {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stack.logs.join(format!("{}-admin-api.log", stack.name)))
            .expect("open a log file");
        let err = log.try_clone().expect("clone the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_scimflow"))
            .arg("admin-api")
            .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SCIMFLOW_ADMIN_API_ADDR", format!("127.0.0.1:{port}"))
            .env("SCIMFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn scimflow admin-api");
        let api = AdminApi {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: stack.http.clone(),
        };
        let url = format!("{}/healthz", api.base);
        eventually("the admin API to listen", Duration::from_secs(60), || {
            let probe = api.http.get(&url).timeout(Duration::from_secs(5));
            async move { probe.send().await.ok().filter(|r| r.status() == 200) }
        })
        .await;
        api
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin API request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// Entries of a tenant's activity log, newest first.
    pub async fn activity(&self, tenant: &str, query: &str) -> Vec<Value> {
        let a = self
            .get(&format!("/admin/v1/tenants/{tenant}/activity{query}"))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Wait for an entry of the log that `pick` accepts.
    pub async fn logged(&self, tenant: &str, query: &str, pick: impl Fn(&Value) -> bool) -> Value {
        eventually(
            "the request in the activity log",
            Duration::from_secs(30),
            || {
                let found = self.activity(tenant, query);
                let pick = &pick;
                async move { found.await.into_iter().find(|e| pick(e)) }
            },
        )
        .await
    }
}
