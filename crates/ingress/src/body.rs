//! The request body limit, and an answer the client can read when it is
//! exceeded.
//!
//! The limit is `Config::max_body_bytes` (the one message size less what
//! an envelope adds), and `MAX_BULK_PAYLOAD` for /Bulk, whose operations
//! become a message each. A body declared larger is refused before
//! anything reads it; one that turns out larger (chunked) is refused as
//! soon as it passes the limit, whatever the handler made of the cut-off
//! body.
//!
//! Many clients (Python's urllib, many Java clients) write the whole body
//! before they read anything. Closing the connection on them with the body
//! half unread resets it, and they see "broken pipe", not the answer. So
//! whatever a request leaves unread (too large, or refused before the body
//! mattered: 401, 404) is read and thrown away, up to [`DRAIN_MAX_BYTES`]
//! and [`DRAIN_MAX_TIME`], before the answer goes out; past those the
//! connection is closed after the answer (`Connection: close`). A request
//! that ran out of time is not drained: its client is the slow one.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use scimflow_shared::scim::bulk::MAX_BULK_PAYLOAD;
use scimflow_shared::ScimError;

use crate::{AppState, IngressError};

/// The most of an unwanted body read and thrown away before answering.
pub const DRAIN_MAX_BYTES: usize = 2 * MAX_BULK_PAYLOAD;
/// The longest spent reading an unwanted body before answering.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

/// The body limit of the route a request matched.
fn limit_for(app: &AppState, req: &Request) -> usize {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let last = route
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if last.eq_ignore_ascii_case("Bulk") {
        MAX_BULK_PAYLOAD
    } else {
        app.config.max_body_bytes()
    }
}

fn too_large(limit: usize) -> Response {
    IngressError::Scim(ScimError::payload_too_large(
        None,
        format!("the request body is larger than the {limit} bytes this endpoint accepts"),
    ))
    .into_response()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A client that sent `Expect: 100-continue` has not sent its body: there
/// is nothing to drain, and it waits for the answer.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

pub async fn limit(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = limit_for(&app, &req);
    let keep_unread = expects_continue(req.headers());
    if declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        let resp = too_large(limit);
        if keep_unread {
            return closing(resp);
        }
        return finish(resp, Some(req.into_body())).await;
    }
    let shared = Arc::new(Shared::default());
    let req = req.map(|body| {
        Body::new(Guarded {
            inner: Some(body),
            limit,
            seen: 0,
            shared: Arc::clone(&shared),
        })
    });
    let mut resp = next.run(req).await;
    if shared.over_limit.load(Ordering::Relaxed) {
        resp = too_large(limit);
    }
    let rest = shared.rest.lock().ok().and_then(|mut rest| rest.take());
    let timed_out = resp.extensions().get::<crate::limits::TimedOut>().is_some();
    if (keep_unread || timed_out) && rest.is_some() {
        return closing(resp);
    }
    finish(resp, rest).await
}

/// Read and drop what is left of a body, then answer; close the
/// connection after the answer if the rest was too much or too slow.
async fn finish(resp: Response, rest: Option<Body>) -> Response {
    match rest {
        Some(body) => {
            if drain(body).await {
                resp
            } else {
                closing(resp)
            }
        }
        None => resp,
    }
}

fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Whether the body was read to its end within the bounds.
async fn drain(body: Body) -> bool {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let reading = async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    read += bytes.len();
                    if read > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_MAX_TIME, reading)
        .await
        .unwrap_or(false)
}

#[derive(Default)]
struct Shared {
    /// The body turned out larger than the limit.
    over_limit: AtomicBool,
    /// What the handler left unread, handed back when it dropped the body.
    rest: Mutex<Option<Body>>,
}

/// The request body as the handler sees it: it ends in an error past the
/// limit, and hands back what the handler did not read when dropped.
struct Guarded {
    inner: Option<Body>,
    limit: usize,
    seen: usize,
    shared: Arc<Shared>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.inner = None; // read to the end: nothing to hand back
                return Poll::Ready(None);
            }
            Poll::Ready(Some(frame)) => frame,
        };
        if let Ok(frame) = &frame {
            if let Some(data) = frame.data_ref() {
                this.seen = this.seen.saturating_add(data.len());
                if this.seen > this.limit {
                    this.shared.over_limit.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooLarge))));
                }
            }
        }
        Poll::Ready(Some(frame))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| http_body::SizeHint::with_exact(0))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take().filter(|b| !b.is_end_stream()) {
            if let Ok(mut slot) = self.shared.rest.lock() {
                *slot = Some(rest);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the limit")]
struct BodyTooLarge;
