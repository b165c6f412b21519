//! Group commands (L6). Membership changes touch only the rows they name;
//! a PATCH answers 204 so that a group of 100,000 members is never loaded
//! to answer a PATCH that added one.

use std::collections::BTreeSet;

use chrono::Utc;
use diesel::PgConnection;
use serde_json::Value;
use uuid::Uuid;

use scimflow_core::event::{GroupChangeEvent, GroupChanged, GroupEventType, SCHEMA_VERSION};
use scimflow_shared::command::{Disposition, Outcome};
use scimflow_shared::scim::group::{
    check_patched_group, normalize_group, plan_group_patch, MemberChange,
};
use scimflow_shared::scim::patch::parse_patch_request;
use scimflow_shared::store::groups::{self as store, GroupRow};
use scimflow_shared::ScimError;

use super::{check_if_match, emit_event, no_content, ApplyError, Context};

pub(super) fn create(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let input = normalize_group(body)?;
    let tenant_id = ctx.tenant.id;
    check_name_free(conn, tenant_id, &input.display_name, None)?;
    let members = input.members.unwrap_or_default();
    check_members(conn, tenant_id, &members)?;
    let now = Utc::now();
    let row = GroupRow {
        id: group_id,
        tenant_id,
        display_name: input.display_name,
        external_id: input.external_id,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    store::insert(conn, &row)?;
    let added = store::add_members(conn, group_id, &members)?;
    record(
        ctx,
        &row,
        GroupEventType::Created,
        &[GroupChanged::DisplayName],
        &added,
        &[],
    )?;
    resource_outcome(conn, ctx, &row, Disposition::Created)
}

pub(super) fn replace(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, group_id)?;
    let input = normalize_group(body)?;
    if !input
        .display_name
        .eq_ignore_ascii_case(&current.display_name)
    {
        check_name_free(conn, ctx.tenant.id, &input.display_name, Some(group_id))?;
    }
    // Members not given keep what they are; given (even empty) replace.
    let (added, removed) = match &input.members {
        Some(members) => {
            check_members(conn, ctx.tenant.id, members)?;
            let old: BTreeSet<Uuid> = store::clear_members(conn, group_id)?.into_iter().collect();
            store::add_members(conn, group_id, members)?;
            let new: BTreeSet<Uuid> = members.iter().copied().collect();
            (
                new.difference(&old).copied().collect(),
                old.difference(&new).copied().collect(),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    let row = match commit_change(
        conn,
        ctx,
        current.clone(),
        input.display_name,
        input.external_id,
        &added,
        &removed,
    )? {
        Some(row) => row,
        None => current,
    };
    resource_outcome(conn, ctx, &row, Disposition::Ok)
}

pub(super) fn patch(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, group_id)?;
    let plan = plan_group_patch(&parse_patch_request(body)?)?;
    check_members(conn, ctx.tenant.id, &plan.added_ids())?;
    let display_name = plan
        .display_name
        .clone()
        .unwrap_or_else(|| current.display_name.clone());
    if !display_name.eq_ignore_ascii_case(&current.display_name) {
        check_name_free(conn, ctx.tenant.id, &display_name, Some(group_id))?;
    }
    let external_id = plan
        .external_id
        .clone()
        .unwrap_or_else(|| current.external_id.clone());
    // Nothing is written that a PUT of the result would refuse.
    check_patched_group(&display_name, external_id.as_deref())?;

    // Net effect of the membership changes, applied in request order.
    let mut added: BTreeSet<Uuid> = BTreeSet::new();
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    for change in &plan.members {
        let (plus, minus) = match change {
            MemberChange::Add(ids) => (store::add_members(conn, group_id, ids)?, Vec::new()),
            MemberChange::Remove(ids) => (Vec::new(), store::remove_members(conn, group_id, ids)?),
            MemberChange::RemoveAll => (Vec::new(), store::clear_members(conn, group_id)?),
            MemberChange::ReplaceAll(ids) => {
                let minus = store::clear_members(conn, group_id)?;
                (store::add_members(conn, group_id, ids)?, minus)
            }
        };
        for id in minus {
            if !added.remove(&id) {
                removed.insert(id);
            }
        }
        for id in plus {
            if !removed.remove(&id) {
                added.insert(id);
            }
        }
    }
    let (added, removed): (Vec<Uuid>, Vec<Uuid>) =
        (added.into_iter().collect(), removed.into_iter().collect());
    match commit_change(
        conn,
        ctx,
        current,
        display_name,
        external_id,
        &added,
        &removed,
    )? {
        Some(row) => {
            let mut outcome = no_content(ctx);
            outcome.etag = Some(scimflow_shared::scim::user::etag(row.version));
            Ok(outcome)
        }
        None => Ok(no_content(ctx)),
    }
}

/// The tail of PUT and PATCH: if the name, external id or members changed,
/// a new version, its row and its event; `None` when nothing changed.
fn commit_change(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    current: GroupRow,
    display_name: String,
    external_id: Option<String>,
    added: &[Uuid],
    removed: &[Uuid],
) -> Result<Option<GroupRow>, ApplyError> {
    let mut changed = Vec::new();
    if display_name != current.display_name || external_id != current.external_id {
        changed.push(GroupChanged::DisplayName);
    }
    if changed.is_empty() && added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    let row = GroupRow {
        display_name,
        external_id,
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current
    };
    store::update(conn, &row)?;
    record(
        ctx,
        &row,
        event_type(&changed, added, removed),
        &changed,
        added,
        removed,
    )?;
    Ok(Some(row))
}

pub(super) fn delete(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, group_id)?;
    store::delete(conn, group_id)?;
    let gone = GroupRow {
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current
    };
    record(ctx, &gone, GroupEventType::Deleted, &[], &[], &[])?;
    Ok(no_content(ctx))
}

/// A deleted user left this group (L5): a new version and an event.
pub(super) fn record_removal_by_user_delete(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
    user_id: Uuid,
) -> Result<(), ApplyError> {
    let Some(current) = store::find(conn, ctx.tenant.id, group_id, true)? else {
        return Ok(());
    };
    let row = GroupRow {
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current
    };
    store::update(conn, &row)?;
    record(
        ctx,
        &row,
        GroupEventType::MembersRemoved,
        &[],
        &[],
        &[user_id],
    )
}

fn event_type(changed: &[GroupChanged], added: &[Uuid], removed: &[Uuid]) -> GroupEventType {
    match (changed.is_empty(), added.is_empty(), removed.is_empty()) {
        (true, false, true) => GroupEventType::MembersAdded,
        (true, true, false) => GroupEventType::MembersRemoved,
        _ => GroupEventType::Updated,
    }
}

fn load_for_write(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    group_id: Uuid,
) -> Result<GroupRow, ApplyError> {
    let row = store::find(conn, ctx.tenant.id, group_id, true)?
        .ok_or_else(|| ScimError::not_found(format!("Group {group_id} not found")))?;
    check_if_match(ctx, "Group", group_id, row.version)?;
    Ok(row)
}

fn check_name_free(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    name: &str,
    except: Option<Uuid>,
) -> Result<(), ApplyError> {
    match store::display_name_holder(conn, tenant_id, name, except)? {
        Some(holder) => Err(ScimError::uniqueness(format!(
            "displayName is already taken by group {holder}"
        ))
        .into()),
        None => Ok(()),
    }
}

/// Members must be live users of the same tenant.
fn check_members(conn: &mut PgConnection, tenant_id: Uuid, ids: &[Uuid]) -> Result<(), ApplyError> {
    let unknown = store::unknown_users(conn, tenant_id, ids)?;
    if unknown.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = unknown.iter().take(5).map(Uuid::to_string).collect();
    Err(ScimError::invalid_value(format!(
        "{} member(s) are not users of this tenant: {}{}",
        unknown.len(),
        shown.join(", "),
        if unknown.len() > 5 { ", ..." } else { "" }
    ))
    .into())
}

fn resource_outcome(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    row: &GroupRow,
    disposition: Disposition,
) -> Result<Outcome, ApplyError> {
    let members = store::members_of(conn, &[row.id])?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let view = row.view(Some(members));
    Ok(Outcome::success(
        ctx.envelope.command_id,
        disposition,
        view.render(&ctx.envelope.base_url),
        view.etag(),
        format!("{}/Groups/{}", ctx.envelope.base_url, row.id),
    ))
}

/// The change event (P5), without the member list: downstream services
/// get the ids that changed.
fn record(
    ctx: &Context<'_>,
    row: &GroupRow,
    kind: GroupEventType,
    changed: &[GroupChanged],
    added: &[Uuid],
    removed: &[Uuid],
) -> Result<(), ApplyError> {
    let env = ctx.envelope;
    let resource = if kind == GroupEventType::Deleted {
        None
    } else {
        Some(row.view(None).render(&env.base_url))
    };
    let mut changed = changed.to_vec();
    if !added.is_empty() || !removed.is_empty() {
        changed.push(GroupChanged::Members);
    }
    let event = GroupChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::now_v7(),
        kind,
        tenant_id: row.tenant_id,
        resource_id: row.id,
        sequence: row.version,
        occurred_at: row.updated_at,
        command_id: env.command_id,
        request_id: env.request_id.clone(),
        changed,
        members_added: GroupChangeEvent::capped(added),
        members_removed: GroupChangeEvent::capped(removed),
        members_added_count: added.len() as u64,
        members_removed_count: removed.len() as u64,
        resource,
        truncated: false,
    };
    emit_event(
        ctx,
        &ctx.topics.group_changes(),
        row.tenant_id,
        row.id,
        &event,
    )
}
