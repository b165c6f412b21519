//! User commands: create (or link, I3, or bring back, L5), replace,
//! patch, delete.

use chrono::Utc;
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use scimflow_core::event::{UserChangeEvent, UserChanged, UserEventType, SCHEMA_VERSION};
use scimflow_shared::command::{Disposition, Outcome};
use scimflow_shared::rules::identity::{create_as, identity_email, CreateAs, EmailHolder};
use scimflow_shared::rules::roles::{apply_role_effects, apply_roles, parse_role_values, Roles};
use scimflow_shared::scim::patch::{apply_user_patch, parse_patch_request, patched_user};
use scimflow_shared::scim::user::{normalize_user, UserView};
use scimflow_shared::store::commands::HistoryEntry;
use scimflow_shared::store::groups as group_store;
use scimflow_shared::store::users::{self, UserRow};
use scimflow_shared::ScimError;

use super::{check_if_match, emit_event, no_content, ApplyError, Context};

/// Every rule is checked before the first write: `batch.rs` runs creates
/// without a savepoint, so a rejection after a write would keep the write.
pub(super) fn create(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let tenant_id = ctx.tenant.id;
    let prepared = ctx.creates.borrow_mut().take_input(ctx.envelope.command_id);
    let input = match prepared {
        Some(input) => input,
        None => normalize_user(body)?,
    };
    let email = identity_email(&input.attrs)?;
    let sent = match &input.roles {
        Some(v) => parse_role_values(v)?,
        None => Vec::new(),
    };
    let user_name = user_name_of(&input.attrs)?;
    let now = Utc::now();
    let unheld = ctx
        .creates
        .borrow()
        .both_unheld(tenant_id, &email, &user_name);
    let existing = if unheld {
        None
    } else {
        // The batch's new users must be visible to the lookups.
        ctx.pending.borrow_mut().flush_new_users(conn)?;
        users::find_by_email(conn, tenant_id, &email, true)?
    };
    ctx.creates
        .borrow_mut()
        .claim(tenant_id, &email, &user_name);
    // The row, and whether it is new (inserted with the batch's others).
    let (row, new) = match existing {
        Some(existing) => {
            let decision = create_as(Some(EmailHolder {
                id: existing.id,
                deleted: existing.deleted_at.is_some(),
                scim_managed: existing.scim_managed,
            }))?;
            check_user_name_free(conn, tenant_id, &user_name, Some(existing.id))?;
            let roles = apply_roles(Some(existing.roles()?), &sent, ctx.tenant.plan())?;
            let row = UserRow {
                user_name,
                external_id: external_id_of(&input.attrs),
                primary_email: email,
                active: input.active.unwrap_or(true),
                primary_role: roles.primary.as_str().into(),
                permission: roles.permission.as_str().into(),
                attrs: Value::Object(input.attrs),
                scim_managed: true,
                version: existing.version + 1,
                updated_at: now,
                deleted_at: None,
                ..existing.clone()
            };
            users::update(conn, &row)?;
            record_change(ctx, Some(&existing), &row, decision.change())?;
            (row, false)
        }
        None => {
            if !unheld {
                check_user_name_free(conn, tenant_id, &user_name, None)?;
            }
            let roles = apply_roles(None, &sent, ctx.tenant.plan())?;
            let row = UserRow {
                id: user_id,
                tenant_id,
                user_name,
                external_id: external_id_of(&input.attrs),
                primary_email: email,
                active: input.active.unwrap_or(true),
                primary_role: roles.primary.as_str().into(),
                permission: roles.permission.as_str().into(),
                attrs: Value::Object(input.attrs),
                scim_managed: true,
                version: 1,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            };
            record_change(ctx, None, &row, CreateAs::New.change())?;
            (row, true)
        }
    };
    let outcome = resource_outcome(conn, ctx, &row, Disposition::Created)?;
    if new {
        ctx.pending.borrow_mut().new_user(row);
    }
    Ok(outcome)
}

pub(super) fn replace(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, user_id)?;
    let input = normalize_user(body)?;
    let sent = match &input.roles {
        Some(v) => parse_role_values(v)?,
        None => Vec::new(),
    };
    let roles = apply_roles(Some(current.roles()?), &sent, ctx.tenant.plan())?;
    let active = input.active.unwrap_or(current.active);
    write_user(conn, ctx, current, input.attrs, active, roles)
}

pub(super) fn patch(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
    body: &Value,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, user_id)?;
    let ops = parse_patch_request(body)?;
    let view = current.view()?;
    let (doc, effects) = apply_user_patch(view.patchable_document(), &ops)?;
    // What is written is what a PUT of the result would write, or a 400.
    let patched = patched_user(doc)?;
    let active = patched.active.unwrap_or(current.active);
    let roles = apply_role_effects(view.roles, &effects, ctx.tenant.plan())?;
    write_user(conn, ctx, current, patched.attrs, active, roles)
}

/// The shared tail of PUT and PATCH: identity and uniqueness checks (I1,
/// I2, I4), then the write, history and event, unless nothing changed.
fn write_user(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    current: UserRow,
    attrs: Map<String, Value>,
    active: bool,
    roles: Roles,
) -> Result<Outcome, ApplyError> {
    let tenant_id = ctx.tenant.id;
    let user_name = user_name_of(&attrs)?;
    let email = identity_email(&attrs)?;
    if email != current.primary_email {
        if let Some(holder) = users::email_holder(conn, tenant_id, &email, current.id)? {
            return Err(ScimError::uniqueness(format!(
                "another user (id {holder}) has this primary work email (rule I2)"
            ))
            .into());
        }
    }
    if !user_name.eq_ignore_ascii_case(&current.user_name) {
        check_user_name_free(conn, tenant_id, &user_name, Some(current.id))?;
    }
    let attrs = Value::Object(attrs);
    let unchanged = attrs == current.attrs
        && active == current.active
        && roles.primary.as_str() == current.primary_role
        && roles.permission.as_str() == current.permission;
    if unchanged {
        return resource_outcome(conn, ctx, &current, Disposition::Ok);
    }
    let row = UserRow {
        user_name,
        external_id: external_id_of(attrs.as_object().unwrap_or(&Map::new())),
        primary_email: email,
        active,
        primary_role: roles.primary.as_str().into(),
        permission: roles.permission.as_str().into(),
        attrs,
        version: current.version + 1,
        updated_at: Utc::now(),
        ..current.clone()
    };
    users::update(conn, &row)?;
    let change = match (current.active, row.active) {
        (true, false) => "deactivated",
        (false, true) => "reactivated",
        _ if current.attrs == row.attrs
            && (current.primary_role != row.primary_role
                || current.permission != row.permission) =>
        {
            "roles_changed"
        }
        _ => "updated",
    };
    record_change(ctx, Some(&current), &row, change)?;
    resource_outcome(conn, ctx, &row, Disposition::Ok)
}

pub(super) fn delete(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
) -> Result<Outcome, ApplyError> {
    let current = load_for_write(conn, ctx, user_id)?;
    let now = Utc::now();
    let row = UserRow {
        version: current.version + 1,
        updated_at: now,
        deleted_at: Some(now),
        ..current.clone()
    };
    users::update(conn, &row)?;
    // L5: a deleted user leaves every group.
    let left = group_store::remove_user_everywhere(conn, user_id)?;
    record_change(ctx, Some(&current), &row, "deleted")?;
    for group_id in left {
        super::groups::record_removal_by_user_delete(conn, ctx, group_id, user_id)?;
    }
    Ok(no_content(ctx))
}

/// A live user of this tenant, locked, whose version matches If-Match.
fn load_for_write(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
) -> Result<UserRow, ApplyError> {
    let row = users::find_live(conn, ctx.tenant.id, user_id, true)?
        .ok_or_else(|| ScimError::not_found(format!("User {user_id} not found")))?;
    check_if_match(ctx, "User", user_id, row.version)?;
    Ok(row)
}

pub(super) fn user_name_of(attrs: &Map<String, Value>) -> Result<String, ScimError> {
    attrs
        .get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ScimError::invalid_value("userName is required"))
}

fn external_id_of(attrs: &Map<String, Value>) -> Option<String> {
    attrs
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn check_user_name_free(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_name: &str,
    except: Option<Uuid>,
) -> Result<(), ApplyError> {
    match users::user_name_holder(conn, tenant_id, user_name, except)? {
        Some(holder) => Err(ScimError::uniqueness(format!(
            "userName is already taken by user {holder} (rule I4)"
        ))
        .into()),
        None => Ok(()),
    }
}

fn resource_outcome(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    row: &UserRow,
    disposition: Disposition,
) -> Result<Outcome, ApplyError> {
    let mut view: UserView = row.view()?;
    // A user created just now is in no group: skip the query on the
    // hottest write.
    if row.version > 1 {
        view.groups = group_store::groups_of_users(conn, &[row.id])?
            .into_iter()
            .map(|(_, id, name)| (id, name))
            .collect();
    }
    let body = view.render(&ctx.envelope.base_url);
    Ok(Outcome::success(
        ctx.envelope.command_id,
        disposition,
        body,
        view.etag(),
        format!("{}/Users/{}", ctx.envelope.base_url, row.id),
    ))
}

/// The part of a user that history tracks: roles, active state, identity.
fn tracked(row: &UserRow) -> Value {
    json!({
        "primary_email": row.primary_email,
        "user_name": row.user_name,
        "active": row.active,
        "deleted": row.deleted_at.is_some(),
        "roles": {"primary": row.primary_role, "permission": row.permission},
    })
}

/// History row (when tracked fields changed) and change event (always),
/// both committed with the change itself (`PendingWrites`).
fn record_change(
    ctx: &Context<'_>,
    before: Option<&UserRow>,
    after: &UserRow,
    change: &str,
) -> Result<(), ApplyError> {
    let env = ctx.envelope;
    let before_tracked = before.map(tracked);
    let after_tracked = tracked(after);
    if before_tracked.as_ref() != Some(&after_tracked) {
        ctx.pending.borrow_mut().history(HistoryEntry {
            tenant_id: after.tenant_id,
            user_id: after.id,
            command_id: Some(env.command_id),
            request_id: Some(&env.request_id),
            change,
            before: before_tracked,
            after: after_tracked,
        });
    }
    let changed = match before {
        None => vec![],
        Some(b) => {
            let mut c = Vec::new();
            if b.attrs != after.attrs {
                c.push(UserChanged::Attributes);
            }
            if b.active != after.active {
                c.push(UserChanged::Active);
            }
            if b.primary_role != after.primary_role || b.permission != after.permission {
                c.push(UserChanged::Roles);
            }
            if b.primary_email != after.primary_email {
                c.push(UserChanged::Identity);
            }
            c
        }
    };
    let resource = if after.deleted_at.is_some() {
        None
    } else {
        Some(after.view()?.render(&env.base_url))
    };
    let event = UserChangeEvent {
        schema_version: SCHEMA_VERSION,
        event_id: Uuid::now_v7(),
        kind: event_type(change),
        tenant_id: after.tenant_id,
        resource_id: after.id,
        sequence: after.version,
        occurred_at: after.updated_at,
        command_id: env.command_id,
        request_id: env.request_id.clone(),
        changed,
        resource,
        truncated: false,
    };
    emit_event(
        ctx,
        &ctx.topics.user_changes(),
        after.tenant_id,
        after.id,
        &event,
    )?;
    Ok(())
}

/// The public event type of a change (docs/events.md). History keeps the
/// finer name: linking a manual user (I3) is an update to downstream
/// services, and a returning user (L5) is created again.
fn event_type(change: &str) -> UserEventType {
    match change {
        "created" | "restored" => UserEventType::Created,
        "deactivated" => UserEventType::Deactivated,
        "reactivated" => UserEventType::Reactivated,
        "deleted" => UserEventType::Deleted,
        "roles_changed" => UserEventType::RolesChanged,
        _ => UserEventType::Updated,
    }
}
