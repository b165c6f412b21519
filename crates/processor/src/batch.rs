//! One batch of commands, one database transaction.
//!
//! Each command runs in its own savepoint, so a rejected command (a SCIM
//! error for the IdP) or a broken one (dead-lettered) does not undo its
//! neighbours. The exception is a user create, which is rejected only
//! before it writes anything: it takes no savepoint until failures are
//! being isolated (a savepoint per create cost two round trips, and past 64
//! in one transaction PostgreSQL's subtransaction cache overflows, slowing
//! every concurrent reader). The dedup record (P3), the history, the change
//! events and the dead letters are written in the same transaction as the
//! effects; the caller commits Kafka offsets only after this transaction
//! commits (P1).

use std::cell::RefCell;
use std::collections::HashMap;

use diesel::{Connection, PgConnection};
use uuid::Uuid;

use scimflow_shared::bus::{headers, Topics};
use scimflow_shared::command::{Command, CommandEnvelope, Outcome, ENVELOPE_VERSION};
use scimflow_shared::store::commands::{
    enqueue_message, find_outcomes, record_dead_letter, NewDeadLetter, PendingWrites,
};
use scimflow_shared::store::dead_letters::{holds, mark_replayed, Hold, TENANT_SUSPENDED};
use scimflow_shared::store::tenants::{self, TenantRow};
use scimflow_shared::store::StoreError;
use scimflow_shared::ScimError;

use crate::apply::{apply, ApplyError, BatchCreates, Context};

/// A command as it came off the topic.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// What became of one command.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// Applied now, rejected by a rule, or applied before (redelivery):
    /// either way, this is the answer.
    Answered(Outcome),
    /// Parked in the dead-letter topic and table; the IdP gets a 500.
    DeadLettered {
        command_id: Option<Uuid>,
        dead_letter_id: i64,
    },
}

pub struct BatchSettings<'a> {
    pub topics: &'a Topics,
    /// Dead-letter commands that fail with a database error instead of
    /// failing the batch: set once plain retries have not helped.
    pub isolate_failures: bool,
    pub attempt: u32,
}

pub fn decode(payload: &[u8]) -> Result<CommandEnvelope, String> {
    let env: CommandEnvelope =
        serde_json::from_slice(payload).map_err(|e| format!("undecodable command: {e}"))?;
    if env.v != ENVELOPE_VERSION {
        return Err(format!("unsupported envelope version {}", env.v));
    }
    Ok(env)
}

pub fn run_batch(
    conn: &mut PgConnection,
    batch: &[Inbound],
    settings: &BatchSettings<'_>,
) -> Result<Vec<Disposition>, StoreError> {
    conn.transaction(|conn| {
        let pending = RefCell::new(PendingWrites::default());
        let decoded: Vec<Result<CommandEnvelope, String>> =
            batch.iter().map(|m| decode(&m.payload)).collect();
        let ids: Vec<Uuid> = decoded.iter().flatten().map(|e| e.command_id).collect();
        let mut done: HashMap<Uuid, Outcome> = find_outcomes(conn, &ids)?
            .into_iter()
            .map(|o| (o.command_id, o))
            .collect();
        let keys: Vec<String> = batch.iter().filter_map(|m| m.key.clone()).collect();
        let mut held: HashMap<String, Hold> = holds(conn, &keys)?;
        // Identities are looked up on first attempts only: a retry checks
        // every create on its own.
        let creates = RefCell::new(BatchCreates::prepare(
            conn,
            &decoded,
            settings.attempt == 0,
        )?);
        let mut tenants: HashMap<Uuid, Option<TenantRow>> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());

        for (msg, decoded) in batch.iter().zip(decoded) {
            let env = match decoded {
                Ok(env) => env,
                Err(reason) => {
                    out.push(dead_letter(
                        conn, settings, msg, None, None, &reason, &mut held,
                    )?);
                    continue;
                }
            };
            // Every line logged about this command, here or in `apply`, names
            // the IdP request that sent it (`ingress::trace`).
            let span = tracing::info_span!(
                "command",
                command_id = %env.command_id,
                request_id = %env.request_id,
                tenant_id = %env.tenant_id,
                kind = env.command.name(),
                partition = msg.partition,
                offset = msg.offset,
            );
            let _in_span = span.enter();
            // A replay lets its own command through a held key, in order.
            let replay = match msg.key.as_ref().and_then(|k| held.get_mut(k)) {
                Some(hold) => match hold.replaying.iter().position(|id| *id == env.command_id) {
                    Some(i) => {
                        hold.replaying.remove(i);
                        mark_replayed(conn, env.command_id)?;
                        true
                    }
                    None => false,
                },
                None => false,
            };
            if let Some(outcome) = done.get(&env.command_id) {
                out.push(Disposition::Answered(outcome.clone().shaped(env.reply)));
                continue;
            }
            // P2: nothing for a resource overtakes its dead letter.
            let is_held = msg
                .key
                .as_ref()
                .and_then(|k| held.get(k))
                .is_some_and(|h| h.open || !h.replaying.is_empty());
            if is_held && !replay {
                let reason = "held: an earlier command for the same resource is dead-lettered";
                out.push(dead_letter(
                    conn,
                    settings,
                    msg,
                    Some(&env),
                    Some(env.tenant_id),
                    reason,
                    &mut held,
                )?);
                continue;
            }
            let tenant = match tenants.get(&env.tenant_id) {
                Some(t) => t.clone(),
                None => {
                    let t = tenants::find(conn, env.tenant_id)?;
                    tenants.insert(env.tenant_id, t.clone());
                    t
                }
            };
            if let Some(t) = tenant
                .as_ref()
                .filter(|t| t.suspended_at.is_some() && t.deleted_at.is_none())
            {
                // Held, not dropped: replayed when the tenant is resumed.
                out.push(dead_letter(
                    conn,
                    settings,
                    msg,
                    Some(&env),
                    Some(t.id),
                    TENANT_SUSPENDED,
                    &mut held,
                )?);
                continue;
            }
            let Some(tenant) = tenant.filter(|t| t.deleted_at.is_none()) else {
                let outcome = Outcome::from_error(
                    env.command_id,
                    &ScimError::unauthorized("the tenant no longer exists"),
                );
                pending.borrow_mut().outcome(env.tenant_id, &outcome)?;
                out.push(Disposition::Answered(outcome));
                continue;
            };
            let ctx = Context {
                tenant: &tenant,
                envelope: &env,
                topics: settings.topics,
                pending: &pending,
                creates: &creates,
            };
            if !matches!(env.command, Command::CreateUser { .. }) {
                // It may read or rename users: the batch's new ones go in
                // first, outside its savepoint (a failure here fails the
                // batch), and nothing is known unheld any more.
                pending.borrow_mut().flush_new_users(conn)?;
                creates.borrow_mut().forget();
            }
            let mark = pending.borrow().mark();
            let run = |conn: &mut PgConnection| -> Result<Outcome, ApplyError> {
                // Kept as it is answered: a redelivery gets the same shape.
                let outcome = apply(conn, &ctx)?.shaped(env.reply);
                pending.borrow_mut().outcome(tenant.id, &outcome)?;
                if settings.isolate_failures {
                    // Looking for the command that breaks the batch: its
                    // rows are written inside its own savepoint, so a
                    // failure there dead-letters it rather than the batch.
                    pending.borrow_mut().flush(conn)?;
                }
                Ok(outcome)
            };
            let applied = if settings.isolate_failures || !decides_before_writing(&env.command) {
                conn.transaction::<Outcome, ApplyError, _>(run)
            } else {
                run(conn)
            };
            if applied.is_err() {
                // The savepoint rolled the effect back (a create without
                // one had written nothing yet); its rows go too.
                pending.borrow_mut().rollback_to(mark);
            }
            match applied {
                Ok(outcome) => {
                    tracing::debug!(status = outcome.status, "command applied");
                    done.insert(env.command_id, outcome.clone());
                    out.push(Disposition::Answered(outcome));
                }
                Err(ApplyError::Rejected(err)) => {
                    let outcome = Outcome::from_error(env.command_id, &err);
                    pending.borrow_mut().outcome(tenant.id, &outcome)?;
                    if settings.isolate_failures {
                        pending.borrow_mut().flush(conn)?;
                    }
                    done.insert(env.command_id, outcome.clone());
                    out.push(Disposition::Answered(outcome));
                }
                Err(ApplyError::Store(e))
                    if settings.isolate_failures && !e.is_connection_lost() =>
                {
                    let reason = format!(
                        "could not be applied after {} attempts: {e}",
                        settings.attempt + 1
                    );
                    out.push(dead_letter(
                        conn,
                        settings,
                        msg,
                        Some(&env),
                        Some(tenant.id),
                        &reason,
                        &mut held,
                    )?);
                }
                Err(ApplyError::Store(e)) => return Err(e),
            }
        }
        pending.borrow_mut().flush(conn)?;
        Ok(out)
    })
}

/// Commands whose `apply` can be rejected only before its first write:
/// they need no savepoint of their own until failures are being isolated.
/// (A database error fails the whole batch either way.)
fn decides_before_writing(command: &Command) -> bool {
    matches!(command, Command::CreateUser { .. })
}

fn dead_letter(
    conn: &mut PgConnection,
    settings: &BatchSettings<'_>,
    msg: &Inbound,
    env: Option<&CommandEnvelope>,
    tenant_id: Option<Uuid>,
    reason: &str,
    held: &mut HashMap<String, Hold>,
) -> Result<Disposition, StoreError> {
    let command_id = env.map(|e| e.command_id);
    let attempts = settings.attempt as i32 + 1;
    let id = record_dead_letter(
        conn,
        NewDeadLetter {
            command_id,
            tenant_id,
            topic: &msg.topic,
            partition: msg.partition,
            offset: msg.offset,
            key: msg.key.as_deref(),
            payload: &msg.payload,
            reason,
            attempts,
        },
    )?;
    enqueue_message(
        conn,
        &settings.topics.dead_letters(),
        msg.key.as_deref().unwrap_or(""),
        &msg.payload,
        &[
            (headers::DLQ_REASON, reason.to_string()),
            (headers::DLQ_ATTEMPTS, attempts.to_string()),
            (headers::DLQ_ORIGINAL_TOPIC, msg.topic.clone()),
            (headers::DLQ_ORIGINAL_PARTITION, msg.partition.to_string()),
            (headers::DLQ_ORIGINAL_OFFSET, msg.offset.to_string()),
            (
                headers::DLQ_ORIGINAL_KEY,
                msg.key.clone().unwrap_or_default(),
            ),
        ],
    )?;
    if let Some(k) = &msg.key {
        held.entry(k.clone()).or_default().open = true;
    }
    tracing::warn!(
        dead_letter_id = id,
        partition = msg.partition,
        offset = msg.offset,
        reason,
        "command dead-lettered"
    );
    Ok(Disposition::DeadLettered {
        command_id,
        dead_letter_id: id,
    })
}
