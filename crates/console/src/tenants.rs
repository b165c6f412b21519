//! Tenants: the list with search, one tenant's page (connection,
//! provisioning, chart, plan), and the actions on it, each behind a
//! confirmation page.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use uuid::Uuid;

use scimflow_admin::service::tenants::{self, TenantSummary, TenantView, CHART_DAYS};
use scimflow_admin::service::{on_pool, Page, DEFAULT_PAGE};

use crate::chart::{self, Chart};
use crate::fields::Fields;
use crate::page::{
    done, link, pager, render, tenant_id, when, ConfirmPage, Confirmation, ConsoleError, Frame,
    PageResult, Pager,
};
use crate::session::{Session, Submitted};
use crate::ConsoleState;

/// A tenant's facts as the pages print them.
pub struct TenantFacts {
    pub id: Uuid,
    pub name: String,
    pub external_ref: Option<String>,
    pub plan: String,
    pub state: String,
    pub scim_base_url: String,
    pub created_at: String,
    pub token_rotated_at: String,
}

impl From<&TenantView> for TenantFacts {
    fn from(t: &TenantView) -> Self {
        TenantFacts {
            id: t.tenant_id,
            name: t.name.clone(),
            external_ref: t.external_ref.clone(),
            plan: if t.features.is_empty() {
                "base".into()
            } else {
                format!("base + {}", t.features.join(", "))
            },
            state: t.status.clone(),
            scim_base_url: t.scim_base_url.clone(),
            created_at: when(&t.created_at),
            token_rotated_at: t
                .token_rotated_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
        }
    }
}

struct Row {
    id: Uuid,
    name: String,
    external_ref: Option<String>,
    plan: String,
    state: String,
    users: i64,
    groups: i64,
    last_request: String,
    errors_last_day: i64,
    open_dead_letters: i64,
}

impl From<TenantSummary> for Row {
    fn from(s: TenantSummary) -> Self {
        let facts = TenantFacts::from(&s.tenant);
        Row {
            id: facts.id,
            name: facts.name,
            external_ref: facts.external_ref,
            plan: facts.plan,
            state: facts.state,
            users: s.users,
            groups: s.groups,
            last_request: s
                .last_request_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            errors_last_day: s.errors_last_day,
            open_dead_letters: s.open_dead_letters,
        }
    }
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct ListPage {
    frame: Frame,
    q: String,
    total: i64,
    rows: Vec<Row>,
    pager: Pager,
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Fields,
) -> PageResult {
    let q = query.text("q").unwrap_or_default().to_string();
    let page = Page::new(query.number("offset")?, Some(DEFAULT_PAGE))?;
    let search = q.clone();
    let (total, found) = on_pool(&state.pool, &state.config, move |conn, config| {
        tenants::search(conn, config, &search, page)
    })
    .await?;
    let at = |offset: i64| {
        link(
            "/console/tenants",
            &[("q", &q), ("offset", &offset.to_string())],
        )
    };
    let frame = Frame::of(&session).with_done(query.get("done"));
    render(
        StatusCode::OK,
        &ListPage {
            frame,
            pager: pager(page, page.offset.saturating_add(page.limit) < total, at),
            q,
            total,
            rows: found.into_iter().map(Row::from).collect(),
        },
    )
}

#[derive(Template)]
#[template(path = "tenant.html")]
struct TenantPage {
    frame: Frame,
    t: TenantFacts,
    voice: bool,
    listener: bool,
    users_active: i64,
    users_inactive: i64,
    users_deleted: i64,
    groups: i64,
    last_request: String,
    writes_last_hour: i64,
    writes_last_day: i64,
    rejections_last_hour: i64,
    rejections_last_day: i64,
    open_dead_letters: i64,
    days: i64,
    max_rows: i64,
    chart: Chart,
}

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(tenant): Path<String>,
    query: Fields,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let (view, status, hours) = on_pool(&state.pool, &state.config, move |conn, config| {
        Ok((
            tenants::get(conn, config, id)?,
            tenants::status(conn, config, id)?,
            tenants::hourly(conn, config, id, Utc::now())?,
        ))
    })
    .await?;
    let has = |f: &str| view.features.iter().any(|x| x == f);
    render(
        StatusCode::OK,
        &TenantPage {
            frame: Frame::of(&session).with_done(query.get("done")),
            voice: has("voice"),
            listener: has("listener"),
            t: TenantFacts::from(&view),
            users_active: status.users.active,
            users_inactive: status.users.inactive,
            users_deleted: status.users.deleted,
            groups: status.groups,
            last_request: status
                .last_request_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            writes_last_hour: status.writes_last_hour,
            writes_last_day: status.writes_last_day,
            rejections_last_hour: status.rejections_last_hour,
            rejections_last_day: status.rejections_last_day,
            open_dead_letters: status.open_dead_letters,
            days: CHART_DAYS,
            max_rows: state.config.activity_max_rows,
            chart: chart::draw(&hours.hours, hours.log_begins),
        },
    )
}

pub async fn set_features(
    State(state): State<ConsoleState>,
    Path(tenant): Path<String>,
    submitted: Submitted,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let features = submitted.form.all("feature");
    on_pool(&state.pool, &state.config, move |conn, _| {
        tenants::set_features(conn, id, &features)
    })
    .await?;
    tracing::info!(tenant_id = %id, "console: a tenant's features were set");
    done(&format!("/console/tenants/{id}"), "features")
}

/// The actions on a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    RotateToken,
    Suspend,
    Resume,
    Delete,
}

impl Action {
    fn parse(text: &str) -> Result<Action, ConsoleError> {
        Ok(match text {
            "rotate-token" => Action::RotateToken,
            "suspend" => Action::Suspend,
            "resume" => Action::Resume,
            "delete" => Action::Delete,
            _ => return Err(ConsoleError::NotFound),
        })
    }

    fn confirmation(self, name: &str) -> Confirmation {
        let (heading, explain, button, danger) = match self {
            Action::RotateToken => (
                format!("Rotate the token of {name}?"),
                "A new token is made and shown once. The current token stops working at once: \
                 the customer's IdP is refused until its administrator enters the new one.",
                "Rotate the token",
                true,
            ),
            Action::Suspend => (
                format!("Suspend {name}?"),
                "Its token is refused and commands already queued are held until it is resumed.",
                "Suspend",
                true,
            ),
            Action::Resume => (
                format!("Resume {name}?"),
                "Its token works again, and the commands held while it was suspended are applied in order.",
                "Resume",
                false,
            ),
            Action::Delete => (
                format!("Delete {name}?"),
                "Its token is revoked and every user, group, history entry, dead letter and activity \
                 entry of it is purged. This cannot be undone.",
                "Delete for good",
                true,
            ),
        };
        Confirmation {
            heading,
            explain: explain.into(),
            button,
            danger,
            ask_name: (self == Action::Delete).then(|| name.to_string()),
            ask_reason: false,
        }
    }
}

pub async fn confirm(
    State(state): State<ConsoleState>,
    session: Session,
    Path((tenant, action)): Path<(String, String)>,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let action = Action::parse(&action)?;
    let view = on_pool(&state.pool, &state.config, move |conn, config| {
        tenants::get(conn, config, id)
    })
    .await?;
    confirm_page(Frame::of(&session), &view, action, StatusCode::OK)
}

fn confirm_page(frame: Frame, view: &TenantView, action: Action, status: StatusCode) -> PageResult {
    let path = format!("/console/tenants/{}", view.tenant_id);
    let slug = match action {
        Action::RotateToken => "rotate-token",
        Action::Suspend => "suspend",
        Action::Resume => "resume",
        Action::Delete => "delete",
    };
    render(
        status,
        &ConfirmPage {
            frame,
            c: action.confirmation(&view.name),
            action: format!("{path}/{slug}"),
            back: path,
            back_label: view.name.clone(),
        },
    )
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    frame: Frame,
    id: Uuid,
    name: String,
    token: String,
}

pub async fn act(
    State(state): State<ConsoleState>,
    Path((tenant, action)): Path<(String, String)>,
    submitted: Submitted,
) -> PageResult {
    let id = tenant_id(&tenant)?;
    let action = Action::parse(&action)?;
    let frame = Frame::of(&submitted.session);
    let page = format!("/console/tenants/{id}");
    match action {
        Action::RotateToken => {
            let (view, token) = on_pool(&state.pool, &state.config, move |conn, config| {
                let view = tenants::get(conn, config, id)?;
                Ok((view, tenants::rotate_token(conn, id)?))
            })
            .await?;
            tracing::info!(tenant_id = %id, "console: a tenant's token was rotated");
            render(
                StatusCode::OK,
                &TokenPage {
                    frame,
                    id,
                    name: view.name,
                    token,
                },
            )
        }
        Action::Suspend => {
            on_pool(&state.pool, &state.config, move |conn, _| {
                tenants::suspend(conn, id)
            })
            .await?;
            tracing::info!(tenant_id = %id, "console: a tenant was suspended");
            done(&page, "suspended")
        }
        Action::Resume => {
            let actor = submitted.actor();
            on_pool(&state.pool, &state.config, move |conn, _| {
                tenants::resume(conn, id, &actor)
            })
            .await?;
            tracing::info!(tenant_id = %id, "console: a tenant was resumed");
            done(&page, "resumed")
        }
        Action::Delete => {
            let typed = submitted
                .form
                .get("confirm_name")
                .unwrap_or_default()
                .trim()
                .to_string();
            let view = on_pool(&state.pool, &state.config, move |conn, config| {
                tenants::get(conn, config, id)
            })
            .await?;
            if typed != view.name {
                let frame = Frame {
                    error: Some("The name typed is not the tenant's: nothing was deleted.".into()),
                    ..frame
                };
                return confirm_page(frame, &view, action, StatusCode::BAD_REQUEST);
            }
            on_pool(&state.pool, &state.config, move |conn, config| {
                tenants::delete(conn, config, id, true)
            })
            .await?;
            tracing::info!(tenant_id = %id, "console: a tenant was deleted");
            done("/console/tenants", "deleted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_page_and_nothing_else_does() {
        for (slug, ok) in [
            ("rotate-token", true),
            ("suspend", true),
            ("resume", true),
            ("delete", true),
            ("activity", false),
            ("Delete", false),
            ("", false),
        ] {
            assert_eq!(Action::parse(slug).is_ok(), ok, "{slug}");
        }
        let delete = Action::Delete.confirmation("Acme");
        assert_eq!(delete.ask_name.as_deref(), Some("Acme"));
        assert!(Action::Suspend.confirmation("Acme").ask_name.is_none());
    }
}
