//! The one place HTTP is decided: every status, header and body the SCIM
//! listener answers with is built here, through the named constructors
//! below, from a processor's outcome (`Disposition`), a read, or an
//! ingress error. Handlers say what happened; this module says how it
//! looks on the wire. Every body is JSON with `application/scim+json`.
//!
//! What an IdP is told to retry is 503 or 429 with `Retry-After`: both Okta
//! and Entra ID back off and retry on those. A request that ran out of time
//! is a 503 too rather than a 504: the ingress is the server the IdP
//! talks to, not a gateway, and a write that timed out may still apply, so
//! the answer is "not known yet, retry", exactly as at the reply deadline.
//! A 202 for a queued write carries `Retry-After` too, with another
//! meaning: how soon its status monitor is worth asking.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use scimflow_shared::command::{Disposition, Outcome};
use scimflow_shared::scim::etag::list_matches;
use scimflow_shared::scim::{LIST_RESPONSE_SCHEMA, SCIM_CONTENT_TYPE};
use scimflow_shared::ScimError;

use crate::IngressError;

/// Seconds an IdP should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";
/// Seconds a client should wait before asking a status monitor again.
const POLL_AFTER_SECS: &str = "1";

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn with_header(mut resp: Response, name: header::HeaderName, value: Option<&str>) -> Response {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(name, v);
    }
    resp
}

fn with_etag(resp: Response, etag: Option<&str>) -> Response {
    with_header(resp, header::ETAG, etag)
}

/// 200 with a SCIM document: discovery, a finished /Bulk, a listing.
pub fn ok(body: &Value) -> Response {
    scim_json(StatusCode::OK, body)
}

/// The HTTP status of what became of a command.
pub fn status_of(disposition: &Disposition) -> StatusCode {
    match disposition {
        Disposition::Created => StatusCode::CREATED,
        Disposition::Ok => StatusCode::OK,
        Disposition::NoContent => StatusCode::NO_CONTENT,
        Disposition::Rejected(e) => error_status(e),
        Disposition::DeadLettered { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A SCIM error document, with its type and detail noted for the
/// activity log (`activity`), which records what the IdP was told.
fn scim_error(status: StatusCode, err: &ScimError) -> Response {
    let mut resp = scim_json(status, &err.to_body());
    resp.extensions_mut().insert(crate::activity::ErrorNote {
        scim_type: err.scim_type.map(|t| t.as_str().to_string()),
        detail: err.detail.clone(),
    });
    resp
}

fn error_status(err: &ScimError) -> StatusCode {
    StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The HTTP response for a processor outcome: its resource (or SCIM
/// error), its `ETag`, and for a create its `Location`.
pub fn from_outcome(outcome: &Outcome) -> Response {
    let status = status_of(&outcome.disposition);
    let resp = match (outcome.disposition.error(), &outcome.resource) {
        (Some(err), _) => scim_error(status, &err),
        (None, Some(resource)) => scim_json(status, resource),
        (None, None) => empty(status),
    };
    let resp = match outcome.disposition {
        Disposition::Created => with_header(resp, header::LOCATION, outcome.location.as_deref()),
        _ => resp,
    };
    with_etag(resp, outcome.etag.as_deref())
}

/// A ListResponse (RFC 7644 §3.4.2).
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Response {
    let body = serde_json::json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    ok(&body)
}

/// A resource read: its ETag, or 304 when `If-None-Match` names it
/// (RFC 7644 §3.14), weakly compared as `If-Match` is.
pub fn conditional(headers: &HeaderMap, etag: &str, body: &Value) -> Response {
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| list_matches(v, etag));
    if cached {
        return with_etag(empty(StatusCode::NOT_MODIFIED), Some(etag));
    }
    with_etag(ok(body), Some(etag))
}

/// 202 for a write that is queued: its status monitor as `Location`, and
/// how soon to ask it.
pub fn queued(body: &Value, monitor: &str) -> Response {
    let resp = with_header(
        scim_json(StatusCode::ACCEPTED, body),
        header::LOCATION,
        Some(monitor),
    );
    with_header(resp, header::RETRY_AFTER, Some(POLL_AFTER_SECS))
}

/// A response that honoured `Prefer: respond-async` (RFC 7240).
pub fn async_applied(resp: Response) -> Response {
    with_header(
        resp,
        header::HeaderName::from_static("preference-applied"),
        Some("respond-async"),
    )
}

/// 202 for a /Bulk request published at once: each entry names its
/// operation's status monitor.
pub fn bulk_accepted(body: &Value) -> Response {
    async_applied(scim_json(StatusCode::ACCEPTED, body))
}

/// The error a body that could not be read is answered with: the
/// transport's own refusal of an over-limit body stays a 413.
pub fn body_rejection(e: BytesRejection) -> ScimError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // `body::limit` answers with the limit itself.
        ScimError::payload_too_large(None, "the request body is too large")
    } else {
        ScimError::invalid_syntax(format!("the request body could not be read: {e}"))
    }
}

/// Whole seconds to wait, at least one.
fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let (err, retry) = match self {
            IngressError::RateLimited(wait) => {
                let secs = retry_secs(wait);
                let err = ScimError::too_many_requests(format!(
                    "too many requests for this tenant; retry after {secs} s"
                ));
                return too_many(err, secs);
            }
            IngressError::AuthThrottled(wait) => {
                let secs = retry_secs(wait);
                let err = ScimError::too_many_requests(format!(
                    "too many failed authentications from this address; retry after {secs} s"
                ));
                return too_many(err, secs);
            }
            IngressError::Overloaded(limit) => (
                ScimError::unavailable(format!(
                    "the service is handling its limit of {limit} requests at once; retry later"
                )),
                true,
            ),
            IngressError::TimedOut(after) => (
                ScimError::unavailable(format!(
                    "the request did not finish within {} ms; a write may still be applied, retry later",
                    after.as_millis()
                )),
                true,
            ),
            IngressError::Scim(e) => (e, false),
            IngressError::Store(e) if e.is_statement_timeout() => {
                tracing::warn!(error = %e, "a database statement timed out");
                (
                    ScimError::unavailable(
                        "a database statement took longer than its timeout; retry later",
                    ),
                    true,
                )
            }
            IngressError::Store(e) => {
                tracing::warn!(error = %e, "database error while serving a request");
                (
                    ScimError::unavailable("the service is temporarily unavailable; retry later"),
                    true,
                )
            }
            IngressError::Unavailable(what) => {
                (ScimError::unavailable(format!("{what}; retry later")), true)
            }
        };
        let status = error_status(&err);
        let mut resp = scim_error(status, &err);
        if retry
            || status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// 429 with `Retry-After` in whole seconds.
fn too_many(err: ScimError, secs: u64) -> Response {
    let resp = scim_error(error_status(&err), &err);
    with_header(resp, header::RETRY_AFTER, Some(&secs.to_string()))
}

/// A list or search answer: `find` runs with the parsed parameters.
pub async fn listing<Fut>(
    params: scimflow_shared::scim::query::ListParams,
    find: impl FnOnce(scimflow_shared::scim::query::ListParams) -> Fut,
) -> Result<Response, crate::IngressError>
where
    Fut: std::future::Future<Output = Result<(i64, Vec<Value>), crate::IngressError>>,
{
    let start = params.start_index;
    let (total, resources) = find(params).await?;
    Ok(list_response(total, start, resources))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimflow_shared::store::StoreError;
    use serde_json::json;
    use uuid::Uuid;

    /// Every status the SCIM listener answers with.
    const EVERY_STATUS: [u16; 15] = [
        200, 201, 202, 204, 304, 400, 401, 404, 409, 412, 413, 429, 500, 501, 503,
    ];

    fn outcome(disposition: Disposition, resource: bool) -> Outcome {
        Outcome {
            command_id: Uuid::from_u128(1),
            disposition,
            resource: resource.then(|| json!({"id": "u1"})),
            etag: Some("W/\"2\"".into()),
            location: Some("http://h/Users/u1".into()),
        }
    }

    fn if_none_match(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn every_status_the_service_answers_with_and_its_headers() {
        let body = json!({"schemas": ["x"]});
        let etag = "W/\"3\"";
        // (what, response, status, headers that must be there, headers that must not)
        type Case = (
            &'static str,
            Response,
            u16,
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: Vec<Case> = vec![
            (
                "outcome: created",
                from_outcome(&outcome(Disposition::Created, true)),
                201,
                &[
                    ("location", "http://h/Users/u1"),
                    ("etag", "W/\"2\""),
                    ("content-type", SCIM_CONTENT_TYPE),
                ],
                &[],
            ),
            (
                "outcome: ok",
                from_outcome(&outcome(Disposition::Ok, true)),
                200,
                &[("etag", "W/\"2\"")],
                &["location"],
            ),
            (
                "outcome: no content",
                from_outcome(&Outcome::no_content(Uuid::nil())),
                204,
                &[],
                &["location", "content-type"],
            ),
            (
                "outcome: rejected",
                from_outcome(&outcome(
                    Disposition::Rejected(ScimError::uniqueness("taken")),
                    false,
                )),
                409,
                &[("content-type", SCIM_CONTENT_TYPE)],
                &["location", "retry-after"],
            ),
            (
                "outcome: precondition",
                from_outcome(&Outcome::from_error(
                    Uuid::nil(),
                    &ScimError::precondition_failed("changed"),
                )),
                412,
                &[],
                &[],
            ),
            (
                "outcome: dead lettered",
                from_outcome(&Outcome::dead_lettered(Uuid::nil(), 7)),
                500,
                &[("content-type", SCIM_CONTENT_TYPE)],
                &["retry-after"],
            ),
            (
                "read",
                conditional(&HeaderMap::new(), etag, &body),
                200,
                &[("etag", "W/\"3\"")],
                &[],
            ),
            (
                "read: If-None-Match weak",
                conditional(&if_none_match("W/\"3\""), etag, &body),
                304,
                &[("etag", "W/\"3\"")],
                &["content-type"],
            ),
            (
                "read: If-None-Match without W/",
                conditional(&if_none_match("\"3\""), etag, &body),
                304,
                &[("etag", "W/\"3\"")],
                &[],
            ),
            (
                "read: If-None-Match *",
                conditional(&if_none_match("*"), etag, &body),
                304,
                &[],
                &[],
            ),
            (
                "read: If-None-Match another version",
                conditional(&if_none_match("\"2\", W/\"4\""), etag, &body),
                200,
                &[],
                &[],
            ),
            (
                "list",
                list_response(0, 1, vec![]),
                200,
                &[("content-type", SCIM_CONTENT_TYPE)],
                &[],
            ),
            (
                "queued",
                async_applied(queued(&body, "http://h/Status/1")),
                202,
                &[
                    ("location", "http://h/Status/1"),
                    ("retry-after", "1"),
                    ("preference-applied", "respond-async"),
                ],
                &[],
            ),
            (
                "status monitor: pending",
                queued(&body, "http://h/Status/1"),
                202,
                &[("retry-after", "1")],
                &["preference-applied"],
            ),
            (
                "bulk accepted",
                bulk_accepted(&body),
                202,
                &[("preference-applied", "respond-async")],
                &["retry-after"],
            ),
            (
                "bad request",
                IngressError::Scim(ScimError::invalid_filter("f")).into_response(),
                400,
                &[],
                &["retry-after"],
            ),
            (
                "unauthorized",
                IngressError::Scim(ScimError::unauthorized("no")).into_response(),
                401,
                &[("www-authenticate", "Bearer")],
                &[],
            ),
            (
                "not found",
                IngressError::Scim(ScimError::not_found("gone")).into_response(),
                404,
                &[],
                &[],
            ),
            (
                "bulk reference",
                IngressError::Scim(scimflow_shared::scim::bulk::Unrunnable::Circular.error())
                    .into_response(),
                409,
                &[],
                &[],
            ),
            (
                "too large",
                IngressError::Scim(ScimError::payload_too_large(None, "big")).into_response(),
                413,
                &[],
                &[],
            ),
            (
                "rate limited",
                IngressError::RateLimited(Duration::from_millis(2500)).into_response(),
                429,
                &[("retry-after", "3")],
                &[],
            ),
            (
                "auth throttled",
                IngressError::AuthThrottled(Duration::from_secs(60)).into_response(),
                429,
                &[("retry-after", "60")],
                &[],
            ),
            (
                "internal",
                IngressError::Scim(ScimError::internal("bug")).into_response(),
                500,
                &[],
                &["retry-after"],
            ),
            (
                "not implemented",
                IngressError::Scim(ScimError::not_implemented("/Me")).into_response(),
                501,
                &[],
                &[],
            ),
            (
                "overloaded",
                IngressError::Overloaded(512).into_response(),
                503,
                &[("retry-after", "5")],
                &[],
            ),
            (
                "timed out",
                IngressError::TimedOut(Duration::from_secs(25)).into_response(),
                503,
                &[("retry-after", "5")],
                &[],
            ),
            (
                "broker or deadline",
                IngressError::Unavailable("no reply").into_response(),
                503,
                &[("retry-after", "5")],
                &[],
            ),
            (
                "database",
                IngressError::Store(StoreError::Corrupt("x".into())).into_response(),
                503,
                &[("retry-after", "5")],
                &[],
            ),
            (
                "unavailable as a SCIM error",
                IngressError::Scim(ScimError::unavailable("x")).into_response(),
                503,
                &[("retry-after", "5")],
                &[],
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (what, resp, status, present, absent) in cases {
            assert_eq!(resp.status().as_u16(), status, "{what}");
            for (name, value) in present {
                assert_eq!(
                    resp.headers().get(*name).and_then(|v| v.to_str().ok()),
                    Some(*value),
                    "{what}: {name}"
                );
            }
            for name in absent {
                assert!(resp.headers().get(*name).is_none(), "{what}: no {name}");
            }
            seen.insert(status);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), EVERY_STATUS);
    }

    /// The number an outcome is stored and sent with is the status it is
    /// answered with, so a stored outcome means the same on every build.
    #[test]
    fn dispositions_answer_with_the_status_they_are_stored_with() {
        let cases = [
            Disposition::Created,
            Disposition::Ok,
            Disposition::NoContent,
            Disposition::Rejected(ScimError::uniqueness("x")),
            Disposition::Rejected(ScimError::not_found("x")),
            Disposition::Rejected(ScimError::unauthorized("x")),
            Disposition::DeadLettered { dead_letter_id: 1 },
        ];
        for d in cases {
            assert_eq!(status_of(&d).as_u16(), d.wire_status(), "{d:?}");
        }
    }
}
