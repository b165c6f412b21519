//! Signing in and the checks every action passes.
//!
//! Signing in presents the admin token once, in a form's body; it makes a
//! session whose random id only the browser holds (an HttpOnly,
//! SameSite=Strict cookie scoped to `/console`) and whose hash the store
//! keeps, with who signed in and the anti-forgery token of its forms.
//! An action (`Submitted`) needs the session, the session's token in its
//! form, and no foreign `Origin`. The sign-in form itself carries a token
//! of its own, matched against a cookie it set (double submit). A session
//! lasts 8 hours, until signed out, or until the admin token is replaced.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use subtle::ConstantTimeEq;

use scimflow_admin::service::console_sessions;
use scimflow_admin::service::{on_pool, ServiceError};
use scimflow_shared::token;

use crate::fields::Fields;
use crate::page::{render, ConsoleError, Frame, PageResult, MAX_FORM_BYTES};
use crate::ConsoleState;

/// The session cookie, and the sign-in form's own.
const COOKIE: &str = "scimflow_console";
const SIGN_IN_COOKIE: &str = "scimflow_console_sign_in";

/// A signed-in support engineer. Not `Debug`: it holds the session's id.
#[derive(Clone)]
pub struct Session {
    /// The id the cookie holds.
    id: String,
    /// Who actions are recorded as: `console:<name>`.
    pub actor: String,
    /// What every form of this session carries.
    pub csrf: String,
}

/// The value of cookie `name`, if the request has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for `name`: HttpOnly, SameSite=Strict, on `path`; Secure
/// when the console's configured origin is https. The listener cannot
/// know: a TLS proxy may stand before a loopback bind, and a plain-HTTP
/// bind on every interface would lose a Secure cookie on every request.
fn set_cookie(state: &ConsoleState, name: &str, value: &str, path: &str) -> Option<HeaderValue> {
    let secure = match &state.config.console_origin {
        Some(origin) if origin.starts_with("https://") => "; Secure",
        _ => "",
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

fn clear_cookie(name: &str, path: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .ok()
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Was this request sent by a page of this console? A browser names the
/// origin of a cross-site POST (`Origin`, `Sec-Fetch-Site`); one that
/// names none is a same-origin navigation or not a browser. The origin
/// must be the configured one (`SCIMFLOW_CONSOLE_ORIGIN`), else the one
/// the request itself names (`Host`, or the authority of an HTTP/2 URI).
fn same_origin(headers: &HeaderMap, authority: Option<&str>, configured: Option<&str>) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = text("origin") else {
        return true;
    };
    if let Some(expected) = configured {
        return origin == expected;
    }
    let host = text("host").or(authority).unwrap_or_default();
    let named = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && named == Some(host)
}

/// `same_origin` for a request's parts.
fn from_this_console(parts: &Parts, state: &ConsoleState) -> bool {
    same_origin(
        &parts.headers,
        parts.uri.authority().map(|a| a.as_str()),
        state.config.console_origin.as_deref(),
    )
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, ConsoleError> {
        let Some(id) = cookie(&parts.headers, COOKIE).filter(|v| !v.is_empty() && v.len() <= 128)
        else {
            return Err(ConsoleError::SignIn);
        };
        let (id, lookup) = (id.to_string(), id.to_string());
        let admin_token = state.token.clone();
        let found = on_pool(&state.pool, &state.config, move |conn, _| {
            console_sessions::find(conn, &admin_token, &lookup, Utc::now())
        })
        .await?;
        let found = found.ok_or(ConsoleError::SignIn)?;
        Ok(Session {
            id,
            actor: found.actor,
            csrf: found.csrf,
        })
    }
}

/// An action: a signed-in session and the form it sent, checked for
/// forgery before any handler sees it.
pub struct Submitted {
    pub session: Session,
    pub form: Fields,
}

impl Submitted {
    /// The actor an action is recorded as.
    pub fn actor(&self) -> String {
        format!("console:{}", self.session.actor)
    }
}

impl FromRequest<ConsoleState> for Submitted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        if !from_this_console(&parts, state) {
            return Err(ConsoleError::Forbidden);
        }
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ConsoleError::TooLarge)?;
        let form = Fields::parse(&bytes);
        match form.get("csrf") {
            Some(sent) if same(sent, &session.csrf) => Ok(Submitted { session, form }),
            _ => Err(ConsoleError::Forbidden),
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    frame: Frame,
    actor: String,
}

/// The sign-in form, with a fresh token of its own in it and in a cookie.
fn sign_in_form(
    state: &ConsoleState,
    status: StatusCode,
    frame: Frame,
    actor: String,
) -> PageResult {
    let nonce = token::generate();
    let mut resp = render(
        status,
        &SignInPage {
            frame: Frame {
                csrf: nonce.clone(),
                ..frame
            },
            actor,
        },
    )?;
    if let Some(c) = set_cookie(state, SIGN_IN_COOKIE, &nonce, "/console/sign-in") {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

pub async fn sign_in_page(
    axum::extract::State(state): axum::extract::State<ConsoleState>,
) -> PageResult {
    sign_in_form(&state, StatusCode::OK, Frame::default(), String::new())
}

pub async fn sign_in(
    axum::extract::State(state): axum::extract::State<ConsoleState>,
    req: Request,
) -> PageResult {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ConsoleError::TooLarge)?;
    let form = Fields::parse(&body);
    let sent = form.get("csrf").unwrap_or_default();
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !from_this_console(&parts, &state) || sent.is_empty() || !same(sent, expected) {
        return Err(ConsoleError::Forbidden);
    }
    let actor_text = form.get("actor").unwrap_or_default().to_string();
    let refuse = |status: StatusCode, message: &str| {
        sign_in_form(
            &state,
            status,
            Frame {
                error: Some(message.to_string()),
                ..Frame::default()
            },
            actor_text.clone(),
        )
    };
    let token_sent = form.get("token").unwrap_or_default().trim();
    if token_sent.len() > 512 || !state.token.verify(token_sent) {
        tracing::warn!("a console sign-in presented a wrong admin token");
        return refuse(StatusCode::UNAUTHORIZED, "That admin token is not valid.");
    }
    let admin_token = state.token.clone();
    let actor = actor_text.clone();
    let started = on_pool(&state.pool, &state.config, move |conn, _| {
        console_sessions::start(conn, &admin_token, &actor, Utc::now())
    })
    .await;
    let started = match started {
        Ok(started) => started,
        Err(ServiceError::Invalid(why)) => return refuse(StatusCode::BAD_REQUEST, &why),
        Err(other) => return Err(other.into()),
    };
    tracing::info!("a console session started");
    let mut resp = Redirect::to("/console/tenants").into_response();
    let h = resp.headers_mut();
    if let Some(c) = set_cookie(&state, COOKIE, &started.id, "/console") {
        h.append(header::SET_COOKIE, c);
    }
    if let Some(c) = clear_cookie(SIGN_IN_COOKIE, "/console/sign-in") {
        h.append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

pub async fn sign_out(
    axum::extract::State(state): axum::extract::State<ConsoleState>,
    submitted: Submitted,
) -> PageResult {
    let id = submitted.session.id;
    on_pool(&state.pool, &state.config, move |conn, _| {
        console_sessions::end(conn, &id)
    })
    .await?;
    let mut resp: Response = Redirect::to("/console/sign-in").into_response();
    if let Some(c) = clear_cookie(COOKIE, "/console") {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_consoles_pages_may_post() {
        let cases: [(Vec<(&'static str, &'static str)>, bool); 9] = [
            (vec![("host", "127.0.0.1:8081")], true),
            (
                vec![
                    ("host", "127.0.0.1:8081"),
                    ("origin", "http://127.0.0.1:8081"),
                ],
                true,
            ),
            (
                vec![
                    ("host", "console.example"),
                    ("origin", "https://console.example"),
                ],
                true,
            ),
            (
                vec![
                    ("host", "127.0.0.1:8081"),
                    ("origin", "http://evil.example"),
                ],
                false,
            ),
            (vec![("host", "127.0.0.1:8081"), ("origin", "null")], false),
            (vec![("origin", "http://127.0.0.1:8081")], false),
            (
                vec![("host", "127.0.0.1:8081"), ("sec-fetch-site", "cross-site")],
                false,
            ),
            (
                vec![("host", "127.0.0.1:8081"), ("sec-fetch-site", "same-site")],
                false,
            ),
            (
                vec![
                    ("host", "127.0.0.1:8081"),
                    ("sec-fetch-site", "same-origin"),
                ],
                true,
            ),
        ];
        for (pairs, allowed) in cases {
            assert_eq!(
                same_origin(&headers(&pairs), None, None),
                allowed,
                "{pairs:?}"
            );
        }
        // HTTP/2 names the authority in the URI, not in Host.
        let h2 = headers(&[("origin", "https://console.example")]);
        assert!(same_origin(&h2, Some("console.example"), None));
        assert!(!same_origin(&h2, None, None));
        // Behind a proxy that rewrites Host, the configured origin decides.
        let proxied = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "https://console.example"),
        ]);
        assert!(same_origin(&proxied, None, Some("https://console.example")));
        assert!(!same_origin(&proxied, None, Some("https://other.example")));
        let direct = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
        ]);
        assert!(!same_origin(&direct, None, Some("https://console.example")));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[
            ("cookie", "a=1; scimflow_console_sign_in=x"),
            ("cookie", "scimflow_console=abc ; b=2"),
        ]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, SIGN_IN_COOKIE), Some("x"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
