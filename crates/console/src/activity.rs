//! A tenant's activity log: what its IdP asked and what it was answered,
//! filtered by status, user, time and request id; each refusal with its
//! SCIM error detail and the rule that refused it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use scimflow_admin::service::tenants::{self, ActivityEntry, ActivityFilter};
use scimflow_admin::service::users::{self, UserRef};
use scimflow_admin::service::{on_pool, ServiceError, DEFAULT_PAGE};

use crate::fields::{time_box, Fields};
use crate::page::{link, render, tenant_id, when, ConsoleError, Frame, PageResult};
use crate::session::Session;
use crate::ConsoleState;

struct Entry {
    id: i64,
    time: String,
    method: String,
    resource: String,
    user_link: Option<String>,
    status: i16,
    request_id: String,
    scim_type: String,
    detail: String,
    rule: String,
}

impl Entry {
    fn of(tenant: Uuid, e: ActivityEntry) -> Entry {
        let resource = match (&e.resource_type, &e.resource_id) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            (Some(kind), None) => kind.clone(),
            (None, _) => String::new(),
        };
        Entry {
            id: e.id,
            time: when(&e.occurred_at),
            method: e.method,
            resource,
            user_link: e
                .user_id
                .map(|u| format!("/console/tenants/{tenant}/users/{u}")),
            status: e.status,
            request_id: e.request_id.unwrap_or_default(),
            scim_type: e.scim_type.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
            rule: e.rule.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    frame: Frame,
    id: Uuid,
    name: String,
    status: String,
    user: String,
    since: String,
    until: String,
    request: String,
    entries: Vec<Entry>,
    older: Option<String>,
}

fn read_filter(query: &Fields) -> Result<ActivityFilter, ConsoleError> {
    Ok(ActivityFilter {
        status: query.text("status").map(str::to_string),
        user_id: None,
        request_id: query.text("request").map(str::to_string),
        since: query.time("since")?,
        until: query.time("until")?,
        before: query.number("before")?,
        limit: Some(DEFAULT_PAGE),
    })
}

/// The page, empty, saying why its filter was refused.
fn refuse(mut page: ActivityPage, why: String) -> PageResult {
    page.frame.error = Some(why);
    render(StatusCode::BAD_REQUEST, &page)
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Path(tenant): Path<String>,
    query: Fields,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let text = |name| query.text(name).unwrap_or_default().to_string();
    let view = on_pool(&state.pool, &state.config, move |conn, config| {
        tenants::get(conn, config, id)
    })
    .await?;
    let mut page = ActivityPage {
        frame: Frame::of(&session),
        id,
        name: view.name,
        status: text("status"),
        user: text("user"),
        since: text("since"),
        until: text("until"),
        request: text("request"),
        entries: Vec::new(),
        older: None,
    };
    let mut filter = match read_filter(&query) {
        Ok(filter) => filter,
        Err(ConsoleError::BadRequest(why)) => return refuse(page, why),
        Err(other) => return Err(other),
    };
    // What the boxes can show, whatever form the time was sent in.
    if let Some(since) = &filter.since {
        page.since = time_box(since);
    }
    if let Some(until) = &filter.until {
        page.until = time_box(until);
    }
    let named_user = page.user.clone();
    let listed = on_pool(&state.pool, &state.config, move |conn, config| {
        if !named_user.is_empty() {
            filter.user_id = Some(users::find(conn, id, &UserRef::parse(&named_user)?)?);
        }
        tenants::activity(conn, config, id, filter)
    })
    .await;
    let entries = match listed {
        Ok(entries) => entries,
        // The tenant exists: what was not found is the user named.
        Err(ServiceError::Invalid(why) | ServiceError::NotFound(why)) => return refuse(page, why),
        Err(other) => return Err(other.into()),
    };
    if entries.len() as i64 == DEFAULT_PAGE {
        if let Some(last) = entries.last() {
            let before = last.id.to_string();
            page.older = Some(link(
                &format!("/console/tenants/{id}/activity"),
                &[
                    ("status", &page.status),
                    ("user", &page.user),
                    ("since", &page.since),
                    ("until", &page.until),
                    ("request", &page.request),
                    ("before", &before),
                ],
            ));
        }
    }
    page.entries = entries.into_iter().map(|e| Entry::of(id, e)).collect();
    render(StatusCode::OK, &page)
}
