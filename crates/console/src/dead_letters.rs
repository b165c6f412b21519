//! Dead letters: the list, one letter with its payload, reason and the
//! actions taken on it, and replay or discard, each confirmed first and
//! recorded with who did it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use scimflow_admin::service::dead_letters::{self, DeadLetterView, ReplayWhat, ResolutionView};
use scimflow_admin::service::{on_pool, tenants, Page, ServiceError, DEFAULT_PAGE};

use crate::fields::Fields;
use crate::page::{
    done, link, pager, render, tenant_id, when, ConfirmPage, Confirmation, ConsoleError, Frame,
    PageResult, Pager,
};
use crate::session::{Session, Submitted};
use crate::ConsoleState;

struct Letter {
    id: i64,
    status: String,
    tenant_id: Option<Uuid>,
    reason: String,
    attempts: i32,
    created: String,
    resolved: String,
}

impl From<&DeadLetterView> for Letter {
    fn from(d: &DeadLetterView) -> Self {
        Letter {
            id: d.id,
            status: d.status.clone(),
            tenant_id: d.tenant_id,
            reason: d.reason.clone(),
            attempts: d.attempts,
            created: when(&d.created_at),
            resolved: d.resolved_at.as_ref().map(when).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct ListPage {
    frame: Frame,
    tenant_name: Option<String>,
    all: bool,
    all_link: String,
    open_link: String,
    letters: Vec<Letter>,
    pager: Pager,
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    query: Fields,
) -> PageResult {
    let tenant = query.text("tenant").map(tenant_id).transpose()?;
    let all = query.text("all") == Some("1");
    let page = Page::new(query.number("offset")?, Some(DEFAULT_PAGE))?;
    let (tenant_name, letters) = on_pool(&state.pool, &state.config, move |conn, config| {
        let name = match tenant {
            Some(id) => Some(tenants::get(conn, config, id)?.name),
            None => None,
        };
        Ok((name, dead_letters::list(conn, tenant, all, page)?))
    })
    .await?;
    let tenant_text = tenant.map(|t| t.to_string()).unwrap_or_default();
    let at = |all: bool, offset: i64| {
        link(
            "/console/dead-letters",
            &[
                ("tenant", &tenant_text),
                ("all", if all { "1" } else { "" }),
                ("offset", &offset.to_string()),
            ],
        )
    };
    render(
        StatusCode::OK,
        &ListPage {
            frame: Frame::of(&session),
            tenant_name,
            all,
            all_link: at(true, 0),
            open_link: at(false, 0),
            pager: pager(page, letters.len() as i64 == page.limit, |offset| {
                at(all, offset)
            }),
            letters: letters.iter().map(Letter::from).collect(),
        },
    )
}

struct Action {
    action: String,
    reason: String,
    actor: String,
    time: String,
}

#[derive(Template)]
#[template(path = "dead_letter.html")]
struct LetterPage {
    frame: Frame,
    d: Letter,
    open: bool,
    command_id: String,
    origin: String,
    replay_of: Option<i64>,
    replayed_as: Vec<i64>,
    actions: Vec<Action>,
    payload: String,
}

fn letter_id(text: &str) -> Result<i64, ConsoleError> {
    text.parse().map_err(|_| ConsoleError::NotFound)
}

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    query: Fields,
) -> PageResult {
    let id = letter_id(&id)?;
    let detail = on_pool(&state.pool, &state.config, move |conn, _| {
        dead_letters::show(conn, id)
    })
    .await?;
    let view = &detail.dead_letter;
    render(
        StatusCode::OK,
        &LetterPage {
            frame: Frame::of(&session).with_done(query.get("done")),
            open: view.status == "open",
            command_id: view.command_id.map(|c| c.to_string()).unwrap_or_default(),
            origin: format!(
                "{} partition {} offset {}",
                view.topic, view.kafka_partition, view.kafka_offset
            ),
            replay_of: detail.replay_of,
            replayed_as: detail.replayed_as.clone(),
            actions: detail
                .actions
                .iter()
                .map(|a| Action {
                    action: a.action.clone(),
                    reason: a.reason.clone().unwrap_or_default(),
                    actor: a.actor.clone(),
                    time: when(&a.occurred_at),
                })
                .collect(),
            payload: serde_json::to_string_pretty(&detail.payload).unwrap_or_default(),
            d: Letter::from(view),
        },
    )
}

/// The actions on a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LetterAction {
    Replay,
    Discard,
}

impl LetterAction {
    fn parse(text: &str) -> Result<LetterAction, ConsoleError> {
        match text {
            "replay" => Ok(LetterAction::Replay),
            "discard" => Ok(LetterAction::Discard),
            _ => Err(ConsoleError::NotFound),
        }
    }

    fn confirmation(self, id: i64) -> Confirmation {
        match self {
            LetterAction::Replay => Confirmation {
                heading: format!("Replay dead letter #{id}?"),
                explain: "The command goes back through the normal path once, with the later open \
                          letters of the same resource after it, in order. If it fails again it \
                          becomes a new dead letter."
                    .into(),
                button: "Replay",
                danger: false,
                ask_name: None,
                ask_reason: false,
            },
            LetterAction::Discard => Confirmation {
                heading: format!("Discard dead letter #{id}?"),
                explain: "The command is given up for good; the later commands of its resource \
                          flow again."
                    .into(),
                button: "Discard",
                danger: true,
                ask_name: None,
                ask_reason: true,
            },
        }
    }
}

fn confirm_page(frame: Frame, id: i64, action: LetterAction, status: StatusCode) -> PageResult {
    let page = format!("/console/dead-letters/{id}");
    let slug = match action {
        LetterAction::Replay => "replay",
        LetterAction::Discard => "discard",
    };
    render(
        status,
        &ConfirmPage {
            frame,
            c: action.confirmation(id),
            action: format!("{page}/{slug}"),
            back: page,
            back_label: format!("Dead letter #{id}"),
        },
    )
}

pub async fn confirm(
    State(state): State<ConsoleState>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
) -> PageResult {
    let id = letter_id(&id)?;
    let action = LetterAction::parse(&action)?;
    on_pool(&state.pool, &state.config, move |conn, _| {
        dead_letters::show(conn, id)
    })
    .await?;
    confirm_page(Frame::of(&session), id, action, StatusCode::OK)
}

/// What a replay or discard that did nothing says.
fn not_done(done: &ResolutionView) -> Option<String> {
    done.skipped
        .first()
        .map(|(id, why)| format!("Dead letter #{id} was left as it was: {why}"))
}

pub async fn act(
    State(state): State<ConsoleState>,
    Path((id, action)): Path<(String, String)>,
    submitted: Submitted,
) -> PageResult {
    let id = letter_id(&id)?;
    let action = LetterAction::parse(&action)?;
    let actor = submitted.actor();
    let page = format!("/console/dead-letters/{id}");
    let resolution = match action {
        LetterAction::Replay => {
            on_pool(&state.pool, &state.config, move |conn, _| {
                dead_letters::replay(conn, ReplayWhat::Ids(vec![id]), &actor)
            })
            .await?
        }
        LetterAction::Discard => {
            let reason = submitted.form.get("reason").unwrap_or_default().to_string();
            if reason.trim().is_empty() {
                let frame = Frame {
                    error: Some("Say why it is discarded: the reason is recorded.".into()),
                    ..Frame::of(&submitted.session)
                };
                return confirm_page(frame, id, action, StatusCode::BAD_REQUEST);
            }
            let discarded = on_pool(&state.pool, &state.config, move |conn, _| {
                dead_letters::discard(conn, id, &reason, &actor)
            })
            .await;
            match discarded {
                Ok(done) => done,
                Err(ServiceError::Invalid(why)) => {
                    let frame = Frame {
                        error: Some(why),
                        ..Frame::of(&submitted.session)
                    };
                    return confirm_page(frame, id, action, StatusCode::BAD_REQUEST);
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    if let Some(why) = not_done(&resolution) {
        return Err(ConsoleError::Service(ServiceError::Conflict(why)));
    }
    tracing::info!(
        dead_letter = id,
        ?action,
        "console: a dead letter was resolved"
    );
    match action {
        LetterAction::Replay => done(&page, "replayed"),
        LetterAction::Discard => done(&page, "discarded"),
    }
}
