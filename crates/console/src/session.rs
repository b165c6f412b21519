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

use scimflow_admin::service::{on_pool, ServiceError};
use scimflow_shared::store::console_sessions::{self, ConsoleSessionRow};
use scimflow_shared::token;

use crate::fields::Fields;
use crate::page::{render, ConsoleError, Frame, PageResult, MAX_FORM_BYTES};
use crate::ConsoleState;

/// The session cookie, and the sign-in form's own.
const COOKIE: &str = "scimflow_console";
const SIGN_IN_COOKIE: &str = "scimflow_console_sign_in";
/// How long a session lasts, however busy.
const SESSION_HOURS: i64 = 8;
/// The longest name one signs in as.
const MAX_ACTOR: usize = 100;

/// A signed-in support engineer.
#[derive(Debug, Clone)]
pub struct Session {
    id_hash: String,
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
/// unless the listener is loopback (plain HTTP on this machine only).
fn set_cookie(state: &ConsoleState, name: &str, value: &str, path: &str) -> Option<HeaderValue> {
    let secure = if state.config.admin_api_addr.ip().is_loopback() {
        ""
    } else {
        "; Secure"
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
/// names none is a same-origin navigation or not a browser.
fn same_origin(headers: &HeaderMap) -> bool {
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
    match text("origin") {
        None => true,
        Some(origin) => {
            let host = text("host").unwrap_or_default();
            let named = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            !host.is_empty() && named == Some(host)
        }
    }
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
        let id_hash = token::hash(id);
        let lookup = id_hash.clone();
        let admin_token = state.token.fingerprint();
        let row = on_pool(&state.pool, &state.config, move |conn, _| {
            Ok(console_sessions::find_live(
                conn,
                &lookup,
                &admin_token,
                Utc::now(),
            )?)
        })
        .await?;
        let row = row.ok_or(ConsoleError::SignIn)?;
        Ok(Session {
            id_hash,
            actor: row.actor,
            csrf: row.csrf_token,
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
        if !same_origin(req.headers()) {
            return Err(ConsoleError::Forbidden);
        }
        let (mut parts, body) = req.into_parts();
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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> PageResult {
    let form = Fields::parse(&body);
    let sent = form.get("csrf").unwrap_or_default();
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || sent.is_empty() || !same(sent, expected) {
        return Err(ConsoleError::Forbidden);
    }
    let actor_text = form.get("actor").unwrap_or_default().to_string();
    let refuse = |message: &str| {
        sign_in_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Frame {
                error: Some(message.to_string()),
                ..Frame::default()
            },
            actor_text.clone(),
        )
    };
    let actor = actor_text.trim();
    if actor.is_empty() || actor.chars().count() > MAX_ACTOR || actor.chars().any(char::is_control)
    {
        return refuse(
            "Give your name (at most 100 characters): it is recorded with every action.",
        );
    }
    let token_sent = form.get("token").unwrap_or_default().trim();
    if token_sent.len() > 512 || !state.token.verify(token_sent) {
        tracing::warn!("a console sign-in presented a wrong admin token");
        return refuse("That admin token is not valid.");
    }
    let id = token::generate();
    let now = Utc::now();
    let row = ConsoleSessionRow {
        id_hash: token::hash(&id),
        actor: actor.to_string(),
        csrf_token: token::generate(),
        admin_token: state.token.fingerprint(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
    };
    on_pool(&state.pool, &state.config, move |conn, _| {
        console_sessions::insert(conn, &row).map_err(ServiceError::from)
    })
    .await?;
    tracing::info!("a console session started");
    let mut resp = Redirect::to("/console/tenants").into_response();
    let h = resp.headers_mut();
    if let Some(c) = set_cookie(&state, COOKIE, &id, "/console") {
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
    let id_hash = submitted.session.id_hash;
    on_pool(&state.pool, &state.config, move |conn, _| {
        console_sessions::delete(conn, &id_hash).map_err(ServiceError::from)
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
        let cases = [
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
            assert_eq!(same_origin(&headers(&pairs)), allowed, "{pairs:?}");
        }
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
