//! SCIM responses: JSON bodies with `application/scim+json`.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use scimflow_shared::command::Outcome;
use scimflow_shared::scim::{LIST_RESPONSE_SCHEMA, SCIM_CONTENT_TYPE};

pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}

pub fn with_etag(mut resp: Response, etag: Option<&str>) -> Response {
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The HTTP response for a processor outcome.
pub fn from_outcome(outcome: &Outcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match &outcome.body {
        Some(body) => {
            let mut resp = scim_json(status, body);
            // A rule's refusal, for the activity log.
            if status.as_u16() >= 400 {
                resp.extensions_mut().insert(crate::activity::ErrorNote {
                    scim_type: body["scimType"].as_str().map(str::to_string),
                    detail: body["detail"].as_str().unwrap_or_default().to_string(),
                });
            }
            resp
        }
        None => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
    };
    if let Some(v) = outcome
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        if status == StatusCode::CREATED {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
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
    scim_json(StatusCode::OK, &body)
}

/// A resource read: its ETag, or 304 when `If-None-Match` names it
/// (RFC 7644 §3.14).
pub fn conditional(headers: &axum::http::HeaderMap, etag: &str, body: &Value) -> Response {
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if cached {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return with_etag(r, Some(etag));
    }
    with_etag(scim_json(StatusCode::OK, body), Some(etag))
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
