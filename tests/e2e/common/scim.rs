//! The SCIM client of the tests: a tenant's endpoint and token, the
//! requests an IdP sends, and the answers.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::eventually;

pub const SCIM_JSON: &str = "application/scim+json";

/// A tenant's SCIM endpoint and token, with an HTTP client.
#[derive(Clone)]
pub struct Tenant {
    pub id: String,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The per-operation statuses of a BulkResponse, in order.
    pub fn bulk_statuses(&self) -> Vec<&str> {
        self.body["Operations"]
            .as_array()
            .map(|ops| {
                ops.iter()
                    .map(|o| o["status"].as_str().unwrap_or(""))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Assert a SCIM Error body with this status (as a string) and type.
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.content_type(), SCIM_JSON);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], t, "{}", self.body);
        }
    }
}

impl Tenant {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token.or(Some(&self.token)) {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, SCIM_JSON).body(b.to_string());
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
    /// A write with `Prefer: respond-async` (RFC 7240).
    pub async fn send_async(&self, method: Method, path: &str, body: &Value) -> Reply {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, SCIM_JSON)
            .header("Prefer", "return=minimal, respond-async")
            .body(body.to_string())
            .send()
            .await
            .expect("HTTP request");
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Poll a status monitor until it stops answering 202.
    pub async fn settled(&self, monitor: &str) -> Reply {
        eventually(
            "the outcome at the status monitor",
            Duration::from_secs(60),
            || async move {
                let r = self.get(monitor).await;
                (r.status != 202).then_some(r)
            },
        )
        .await
    }

    /// Poll until `token` is refused with 401. The ingress caches tenants
    /// and forgets them when PostgreSQL notifies it of a change, a few
    /// milliseconds after the change commits.
    pub async fn refused(&self, token: &str) {
        let r = eventually(
            "the token to be refused",
            Duration::from_secs(10),
            || async {
                let r = self.send(Method::GET, "/Users", None, Some(token)).await;
                (r.status != 200).then_some(r)
            },
        )
        .await;
        r.assert_error(401, None);
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body), None).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(body), None).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), None).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, None).await
    }
    /// `GET /Users?filter=...` with the filter URL-encoded.
    pub async fn filter_users(&self, filter: &str) -> Reply {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/Users", self.base), &[("filter", filter)])
                .expect("url");
        self.get(url.as_str()).await
    }
}

pub fn patch_op(ops: Value) -> Value {
    serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}
