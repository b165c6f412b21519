//! What every page shares: the frame (navigation, who is signed in, the
//! message of the last action), rendering, the one mapping from an error
//! to a page with its status, and the security headers of every answer.

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use scimflow_admin::service::{Page, ServiceError};
use uuid::Uuid;

use crate::session::Session;

/// The largest form: every form is a few short fields.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// No script or style but the console's own, no framing, no form posted
/// elsewhere, nothing fetched from another origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The frame around every page: who is signed in, the token their forms
/// carry, and the outcome of the action just taken.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Absent on the sign-in page.
    pub actor: Option<String>,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The navigation without a session (error pages: whoever reads one
    /// may be signed in).
    pub nav: bool,
}

impl Frame {
    pub fn of(session: &Session) -> Frame {
        Frame {
            actor: Some(session.actor.clone()),
            csrf: session.csrf.clone(),
            ..Frame::default()
        }
    }

    /// With the message a redirect after an action carries (`?done=`),
    /// chosen from a fixed list so that no link can put words on a page.
    pub fn with_done(mut self, done: Option<&str>) -> Frame {
        self.notice = done.and_then(done_message).map(str::to_string);
        self
    }
}

/// What each completed action says on the page it lands on.
fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "features" => "The plan's features were saved.",
        "suspended" => "The tenant is suspended: its token is refused until it is resumed.",
        "resumed" => "The tenant is active again; its held dead letters were replayed.",
        "deleted" => "The tenant was deleted and its data purged.",
        "replayed" => "The dead letter was sent to be applied again.",
        "discarded" => "The dead letter was discarded.",
        _ => return None,
    })
}

/// Why a page could not be shown or an action not taken.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    BadRequest(String),
    /// A form without this session's anti-forgery token, or posted from
    /// another origin.
    #[error("this form has expired or was sent from another site; reload the page and try again")]
    Forbidden,
    /// No session: the browser is sent to sign in.
    #[error("sign in first")]
    SignIn,
    #[error("there is no such page")]
    NotFound,
    #[error("the form is larger than any form of the console")]
    TooLarge,
    #[error("the page could not be rendered")]
    Render(#[from] askama::Error),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
    status: u16,
    title: &'static str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            ConsoleError::SignIn => return Redirect::to("/console/sign-in").into_response(),
            ConsoleError::Service(ServiceError::NotFound(_)) | ConsoleError::NotFound => {
                (StatusCode::NOT_FOUND, "Not found")
            }
            ConsoleError::Service(ServiceError::Invalid(_)) | ConsoleError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "That request is not valid")
            }
            ConsoleError::Service(ServiceError::Conflict(_)) => {
                (StatusCode::CONFLICT, "That cannot be done now")
            }
            ConsoleError::Forbidden => (StatusCode::FORBIDDEN, "Refused"),
            ConsoleError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
            ConsoleError::Service(ServiceError::Store(_) | ServiceError::Interrupted) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable")
            }
            ConsoleError::Render(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something broke"),
        };
        let message = match &self {
            ConsoleError::Service(ServiceError::Store(e)) => {
                tracing::warn!(error = %e, "database error while serving a console page");
                "the database did not answer; retry in a moment".to_string()
            }
            ConsoleError::Render(e) => {
                tracing::error!(error = %e, "a console page failed to render");
                "the page could not be rendered".to_string()
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            frame: Frame {
                error: Some(message),
                nav: true,
                ..Frame::default()
            },
            status: status.as_u16(),
            title,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title).into_response(),
        }
    }
}

pub type PageResult = Result<Response, ConsoleError>;

/// A rendered page with its status.
pub fn render(status: StatusCode, page: &impl Template) -> PageResult {
    Ok((status, Html(page.render()?)).into_response())
}

/// After an action: back to a page, saying what was done.
pub fn done(to: &str, what: &str) -> PageResult {
    Ok(Redirect::to(&format!("{to}?done={what}")).into_response())
}

pub async fn home(session: Result<Session, ConsoleError>) -> Response {
    match session {
        Ok(_) => Redirect::to("/console/tenants").into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

/// Set on every console answer; pages are never cached, assets may be.
/// The referrer goes to this origin only: under `no-referrer` a browser
/// sends `Origin: null` with a form, and the origin check needs the name.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A link to `path` with the query `pairs`, encoded.
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The links to the pages before and after a page, where there are any.
pub struct Pager {
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// `more`: whether anything follows `page`; `at` makes the link to the
/// page starting at an offset.
pub fn pager(page: Page, more: bool, at: impl Fn(i64) -> String) -> Pager {
    Pager {
        previous: (page.offset > 0).then(|| at(page.offset.saturating_sub(page.limit).max(0))),
        next: more.then(|| at(page.offset.saturating_add(page.limit))),
    }
}

/// A tenant id from a path; anything else names no page.
pub fn tenant_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(text).map_err(|_| ConsoleError::NotFound)
}

/// What the confirmation page of an action says.
pub struct Confirmation {
    pub heading: String,
    pub explain: String,
    pub button: &'static str,
    pub danger: bool,
    /// Delete: the name to type.
    pub ask_name: Option<String>,
    /// Discard: a reason.
    pub ask_reason: bool,
}

/// The page every action shows before it is taken: its form posts to
/// `action`; `back` is where cancelling leads.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub frame: Frame,
    pub c: Confirmation,
    pub action: String,
    pub back: String,
    pub back_label: String,
}

/// A time as the console shows it: UTC, to the second.
pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_actions_put_a_notice_on_a_page() {
        let cases = [
            (Some("replayed"), true),
            (Some("deleted"), true),
            (Some("<script>alert(1)</script>"), false),
            (Some("Replayed"), false),
            (None, false),
        ];
        for (done, shown) in cases {
            assert_eq!(
                Frame::default().with_done(done).notice.is_some(),
                shown,
                "{done:?}"
            );
        }
    }

    #[test]
    fn links_encode_their_query_and_drop_empty_values() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "/console/tenants"),
            (&[("q", "")], "/console/tenants"),
            (
                &[("q", "a&b c"), ("offset", "50")],
                "/console/tenants?q=a%26b+c&offset=50",
            ),
            (&[("q", "<é>")], "/console/tenants?q=%3C%C3%A9%3E"),
        ];
        for (pairs, want) in cases {
            assert_eq!(link("/console/tenants", pairs), want);
        }
    }

    #[test]
    fn pages_link_back_and_on_only_where_there_is_a_page() {
        let at = |offset: i64| offset.to_string();
        let page = |offset| Page { offset, limit: 50 };
        let cases = [
            (page(0), true, (None, Some("50"))),
            (page(0), false, (None, None)),
            (page(20), false, (Some("0"), None)),
            (page(100), true, (Some("50"), Some("150"))),
            (
                page(i64::MAX),
                true,
                (Some("9223372036854775757"), Some("9223372036854775807")),
            ),
        ];
        for (p, more, (previous, next)) in cases {
            let got = pager(p, more, at);
            assert_eq!(
                (got.previous.as_deref(), got.next.as_deref()),
                (previous, next),
                "{}",
                p.offset
            );
        }
    }

    #[test]
    fn errors_are_pages_with_their_status() {
        let cases = [
            (ConsoleError::NotFound, 404),
            (ServiceError::NotFound("no tenant".into()).into(), 404),
            (ServiceError::Invalid("bad".into()).into(), 400),
            (ConsoleError::BadRequest("bad".into()), 400),
            (ServiceError::Conflict("not open".into()).into(), 409),
            (ConsoleError::Forbidden, 403),
            (ConsoleError::TooLarge, 413),
            (ServiceError::Interrupted.into(), 503),
            (ConsoleError::SignIn, 303),
        ];
        for (err, status) in cases {
            let what = err.to_string();
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status, "{what}");
        }
    }
}
