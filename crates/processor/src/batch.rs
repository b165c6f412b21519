//! One batch of commands, one database transaction.
//!
//! Each command runs behind its own boundary (`guarded`): panics are
//! caught, and a savepoint rolls back what it did, so a rejected command
//! (a SCIM error for the IdP) or a broken one (a dead letter) does not
//! undo its neighbours and leaves the transaction usable. The exception is
//! a user create in a whole batch, which is rejected only before it writes
//! anything: it takes no savepoint (a savepoint per create cost two round
//! trips, and past 64 in one transaction PostgreSQL's subtransaction cache
//! overflows, slowing every concurrent reader). What then happens to a
//! failing command is `policy::decide`'s call: in a whole batch it fails
//! the batch, to be retried or isolated; in an isolated one it is
//! dead-lettered. The dedup record (P3), the history, the change events and
//! the dead letters are written in the same transaction as the effects;
//! the caller commits Kafka offsets only after this transaction commits
//! (P1).
//!
//! The tenants of the batch are share-locked for the whole transaction, so
//! a tenant deletion waits for the batch, or the batch for the deletion.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::{Connection, PgConnection};
use uuid::Uuid;

use scimflow_bus::{headers, Topics};
use scimflow_shared::command::{Command, CommandEnvelope, Outcome};
use scimflow_shared::store::commands::{
    find_outcomes, record_dead_letter, NewDeadLetter, PendingWrites,
};
use scimflow_shared::store::dead_letters::{
    holds, mark_replayed, storable, Hold, TENANT_SUSPENDED,
};
use scimflow_shared::store::outbox::enqueue_message;
use scimflow_shared::store::tenants::{self, TenantRow};
use scimflow_shared::store::StoreError;
use scimflow_shared::telemetry;
use scimflow_shared::trace_context;
use scimflow_shared::ScimError;

use crate::apply::{apply, ApplyError, BatchCreates, Context};
use crate::policy::{decide, Attempt, Decision, Failure, HoldState, Mode};

/// A command as it came off the topic.
pub use scimflow_bus::Inbound;

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
    /// How many attempts failed before, and how this one runs.
    pub attempt: Attempt,
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The database failed outside any one command's boundary.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Work the batch's commands share panicked.
    #[error("panicked: {0}")]
    Panic(String),
    /// One command failed, and the policy wants the batch run again.
    #[error("command {index} of the batch failed: {detail}")]
    Command {
        index: usize,
        failure: Failure,
        detail: String,
    },
}

impl From<diesel::result::Error> for BatchError {
    fn from(e: diesel::result::Error) -> Self {
        BatchError::Store(StoreError::Db(e))
    }
}

impl BatchError {
    /// The kind of failure, for `policy::decide`.
    pub fn failure(&self) -> Failure {
        match self {
            BatchError::Store(e) if e.is_outage() => Failure::Outage,
            BatchError::Store(_) | BatchError::Panic(_) => Failure::Unattributed,
            BatchError::Command { failure, .. } => *failure,
        }
    }
}

/// How one command is applied: `apply::apply` in production; a test may
/// pass one that fails on purpose, to prove the boundary holds.
pub type ApplyFn = dyn Fn(&mut PgConnection, &Context<'_>) -> Result<Outcome, ApplyError>;

/// Decode a command and check it came keyed by its own resource (P2 rests
/// on the key). Nothing here can change on a retry.
pub fn decode(msg: &Inbound) -> Result<CommandEnvelope, String> {
    let env = CommandEnvelope::decode(&msg.payload)?;
    let key = env.partition_key();
    if msg.key.as_deref() != Some(key.as_str()) {
        return Err(format!(
            "the message key {:?} does not name the command's resource ({key})",
            msg.key.as_deref().unwrap_or_default()
        ));
    }
    Ok(env)
}

pub fn run_batch(
    conn: &mut PgConnection,
    batch: &[Inbound],
    settings: &BatchSettings<'_>,
) -> Result<Vec<Disposition>, BatchError> {
    run_batch_with(conn, batch, settings, &apply_or_fault)
}

/// The request id of the end-to-end tests' deliberate fault: in a debug
/// build, a command carrying it panics while it is applied, so the tests
/// can prove that a panic is contained. It starts with a control
/// character, which no HTTP header can carry, so no IdP request can ask
/// for it; a release build has no such fault at all.
pub const TEST_PANIC_REQUEST_ID: &str = "\u{1}scimflow-test-panic";

fn apply_or_fault(conn: &mut PgConnection, ctx: &Context<'_>) -> Result<Outcome, ApplyError> {
    #[cfg(debug_assertions)]
    if ctx.envelope.request_id == TEST_PANIC_REQUEST_ID {
        panic!("a deliberate fault for the tests");
    }
    apply(conn, ctx)
}

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Why a command behind its boundary did not apply.
enum Stopped {
    Rejected(ScimError),
    Store(StoreError),
    Panic(String),
}

/// Run `f` behind a command's boundary: in a savepoint if `savepoint`,
/// with panics caught. After a panic, the savepoint it left open is rolled
/// back, so the transaction goes on as if the command had not run (without
/// a savepoint, the caller fails the batch). A rollback that fails leaves
/// the connection broken: the pool discards it.
fn guarded<T>(
    conn: &mut PgConnection,
    savepoint: bool,
    f: impl FnOnce(&mut PgConnection) -> Result<T, ApplyError>,
) -> Result<T, Stopped> {
    let depth = depth(conn);
    let ran = catch_unwind(AssertUnwindSafe(|| {
        if savepoint {
            conn.transaction::<T, ApplyError, _>(f)
        } else {
            f(conn)
        }
    }));
    match ran {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(ApplyError::Rejected(e))) => Err(Stopped::Rejected(e)),
        Ok(Err(ApplyError::Store(e))) => Err(Stopped::Store(e)),
        Err(panic) => {
            while self::depth(conn) > depth {
                if let Err(e) = AnsiTransactionManager::rollback_transaction(conn) {
                    return Err(Stopped::Store(StoreError::Db(e)));
                }
            }
            Err(Stopped::Panic(panic_message(&*panic)))
        }
    }
}

/// Open transactions and savepoints on `conn`.
fn depth(conn: &mut PgConnection) -> u32 {
    AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map_or(0, |d| d.get())
}

pub fn run_batch_with(
    conn: &mut PgConnection,
    batch: &[Inbound],
    settings: &BatchSettings<'_>,
    apply_one: &ApplyFn,
) -> Result<Vec<Disposition>, BatchError> {
    let isolated = settings.attempt.mode != Mode::Whole;
    conn.transaction(|conn| {
        let pending = RefCell::new(PendingWrites::default());
        let decoded: Vec<Result<CommandEnvelope, String>> = batch
            .iter()
            .map(|m| {
                catch_unwind(|| decode(m)).unwrap_or_else(|p| {
                    Err(format!("decoding panicked: {}", panic_message(&*p)))
                })
            })
            .collect();
        // First, so the batch takes its locks in the order a tenant
        // deletion does: tenant, then users.
        let tenant_ids: Vec<Uuid> = decoded.iter().flatten().map(|e| e.tenant_id).collect();
        let tenants: HashMap<Uuid, TenantRow> = tenants::lock_for_batch(conn, &tenant_ids)?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let ids: Vec<Uuid> = decoded.iter().flatten().map(|e| e.command_id).collect();
        let mut done: HashMap<Uuid, Outcome> = find_outcomes(conn, &ids)?
            .into_iter()
            .map(|o| (o.command_id, o))
            .collect();
        let keys: Vec<String> = batch
            .iter()
            .filter_map(|m| m.key.as_deref())
            .map(|k| storable(k).into_owned())
            .collect();
        let mut held: HashMap<String, Hold> = holds(conn, &keys)?;
        // Identities are looked up on first attempts only, and an isolated
        // run normalises each create behind its own boundary. A parser
        // that panics here only costs the shortcut.
        let creates = RefCell::new(if isolated {
            BatchCreates::default()
        } else {
            let first = settings.attempt.failed == 0;
            match catch_unwind(AssertUnwindSafe(|| {
                BatchCreates::prepare(conn, &decoded, first)
            })) {
                Ok(prepared) => prepared?,
                Err(p) => {
                    tracing::error!(panic = %panic_message(&*p), "preparing the batch's creates panicked");
                    BatchCreates::default()
                }
            }
        });
        let mut out = Vec::with_capacity(batch.len());

        for (index, (msg, decoded)) in batch.iter().zip(decoded).enumerate() {
            let env = match decoded {
                Ok(env) => env,
                Err(reason) => {
                    // Named where it can be: its tenant and command id from
                    // the payload if they read, else the tenant from the key.
                    let (command_id, tenant_id) = CommandEnvelope::peek_ids(&msg.payload);
                    let letter = Letter {
                        command_id,
                        tenant_id: tenant_id.or_else(|| tenant_of_key(msg.key.as_deref())),
                        reason,
                        replay_of: None,
                    };
                    out.push(dead_letter(conn, settings, msg, letter, &mut held)?);
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
            telemetry::set_parent(&span, msg.trace.as_ref());
            // Its change events continue the trace from this span.
            let trace = telemetry::outgoing(&span, msg.trace.as_ref())
                .map(|c| trace_context::inject(&c))
                .unwrap_or_default();
            let _in_span = span.enter();
            // A replay may pass its held key, in order: no open letter of
            // the key may come before its own.
            let hold = msg.key.as_ref().and_then(|k| held.get_mut(k));
            let (replay, hold_state) = match hold {
                Some(hold) => match hold.take_replay(env.command_id) {
                    Some(r) => {
                        let closed = mark_replayed(conn, env.command_id)?;
                        (closed.or(Some((r.letter, r.position))), held_if(!r.free))
                    }
                    None => (None, held_if(hold.holds_new_commands())),
                },
                None => (None, HoldState::Free),
            };
            if let Some(outcome) = done.get(&env.command_id) {
                out.push(Disposition::Answered(outcome.clone().shaped(env.reply)));
                continue;
            }
            let letter = |reason: &str| Letter {
                command_id: Some(env.command_id),
                tenant_id: Some(env.tenant_id),
                reason: reason.to_string(),
                replay_of: replay,
            };
            // P2: nothing for a resource overtakes its dead letter.
            if decide(settings.attempt, Failure::None, hold_state) == Decision::Hold {
                let reason = "held: an earlier command for the same resource is dead-lettered";
                out.push(dead_letter(conn, settings, msg, letter(reason), &mut held)?);
                continue;
            }
            let tenant = tenants.get(&env.tenant_id);
            if tenant.is_some_and(|t| t.suspended_at.is_some() && t.deleted_at.is_none()) {
                // Held, not dropped: replayed when the tenant is resumed.
                out.push(dead_letter(
                    conn,
                    settings,
                    msg,
                    letter(TENANT_SUSPENDED),
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
                tenant,
                envelope: &env,
                topics: settings.topics,
                pending: &pending,
                creates: &creates,
                trace: &trace,
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
                let outcome = apply_one(conn, &ctx)?.shaped(env.reply);
                pending.borrow_mut().outcome(tenant.id, &outcome)?;
                if isolated {
                    // Looking for the command that breaks the batch: its
                    // rows are written inside its own savepoint, so a
                    // failure there is its own.
                    pending.borrow_mut().flush(conn)?;
                }
                Ok(outcome)
            };
            let savepoint = isolated || !decides_before_writing(&env.command);
            let applied = guarded(conn, savepoint, run);
            if applied.is_err() {
                // The savepoint rolled the effect back (a create without
                // one had written nothing yet); its rows go too.
                pending.borrow_mut().rollback_to(mark);
            }
            let (failure, detail) = match applied {
                Ok(outcome) => {
                    tracing::debug!(status = outcome.status(), "command applied");
                    done.insert(env.command_id, outcome.clone());
                    out.push(Disposition::Answered(outcome));
                    continue;
                }
                Err(Stopped::Rejected(err)) => {
                    let outcome = Outcome::from_error(env.command_id, &err);
                    pending.borrow_mut().outcome(tenant.id, &outcome)?;
                    if isolated {
                        pending.borrow_mut().flush(conn)?;
                    }
                    done.insert(env.command_id, outcome.clone());
                    out.push(Disposition::Answered(outcome));
                    continue;
                }
                Err(Stopped::Store(e)) if e.is_outage() => return Err(e.into()),
                Err(Stopped::Store(e)) => (Failure::Database, e.to_string()),
                Err(Stopped::Panic(message)) => {
                    tracing::error!(panic = %message, "applying the command panicked");
                    // What it had claimed of the batch's creates may be
                    // half done: the rest of the batch looks up for itself.
                    creates.borrow_mut().forget();
                    (Failure::Panic, format!("panicked: {message}"))
                }
            };
            match decide(settings.attempt, failure, hold_state) {
                Decision::DeadLetter | Decision::Hold | Decision::Apply => {
                    let reason = format!(
                        "could not be applied after {} attempts: {detail}",
                        settings.attempt.failed + 1
                    );
                    out.push(dead_letter(conn, settings, msg, letter(&reason), &mut held)?);
                }
                Decision::Retry | Decision::Isolate => {
                    return Err(BatchError::Command {
                        index,
                        failure,
                        detail,
                    })
                }
            }
        }
        pending.borrow_mut().flush(conn)?;
        Ok(out)
    })
}

fn held_if(held: bool) -> HoldState {
    if held {
        HoldState::Held
    } else {
        HoldState::Free
    }
}

/// The tenant of a `tenant/resource` message key, if it names one.
pub fn tenant_of_key(key: Option<&str>) -> Option<Uuid> {
    key?.split('/').next()?.parse().ok()
}

/// Commands whose `apply` can be rejected only before its first write:
/// they need no savepoint of their own until failures are being isolated.
/// (A database error fails the whole batch either way.)
fn decides_before_writing(command: &Command) -> bool {
    matches!(command, Command::CreateUser { .. })
}

/// What a dead letter says about its command.
pub struct Letter {
    pub command_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub reason: String,
    /// When a replay fails again: the letter it was replayed from, and
    /// that letter's place in its key's order, which the new one keeps.
    pub replay_of: Option<(i64, i64)>,
}

fn dead_letter(
    conn: &mut PgConnection,
    settings: &BatchSettings<'_>,
    msg: &Inbound,
    letter: Letter,
    held: &mut HashMap<String, Hold>,
) -> Result<Disposition, StoreError> {
    let disposition = record(conn, settings.topics, settings.attempt, msg, &letter)?;
    if let (Some(k), Disposition::DeadLettered { dead_letter_id, .. }) = (&msg.key, &disposition) {
        held.entry(storable(k).into_owned())
            .or_default()
            .opened(letter.replay_of.map_or(*dead_letter_id, |(_, at)| at));
    }
    Ok(disposition)
}

/// Record a dead letter and queue it for the dead-letter topic, in the
/// caller's transaction. Also used, in a transaction of its own, for a
/// command that failed alone.
pub fn record(
    conn: &mut PgConnection,
    topics: &Topics,
    attempt: Attempt,
    msg: &Inbound,
    letter: &Letter,
) -> Result<Disposition, StoreError> {
    let attempts = attempt.failed as i32 + 1;
    // A key or a reason may hold what PostgreSQL cannot store (a NUL).
    let key = msg.key.as_deref().map(storable);
    let reason = storable(&letter.reason);
    let id = record_dead_letter(
        conn,
        NewDeadLetter {
            command_id: letter.command_id,
            tenant_id: letter.tenant_id,
            topic: &msg.topic,
            partition: msg.partition,
            offset: msg.offset,
            key: key.as_deref(),
            payload: &msg.payload,
            reason: &reason,
            attempts,
            replay_of: letter.replay_of.map(|(id, _)| id),
            replay_origin: letter.replay_of.map(|(_, at)| at),
        },
    )?;
    enqueue_message(
        conn,
        &topics.dead_letters(),
        key.as_deref().unwrap_or(""),
        &msg.payload,
        &[
            (headers::DLQ_REASON, reason.to_string()),
            (headers::DLQ_ATTEMPTS, attempts.to_string()),
            (headers::DLQ_ORIGINAL_TOPIC, msg.topic.clone()),
            (headers::DLQ_ORIGINAL_PARTITION, msg.partition.to_string()),
            (headers::DLQ_ORIGINAL_OFFSET, msg.offset.to_string()),
            (
                headers::DLQ_ORIGINAL_KEY,
                key.as_deref().unwrap_or_default().to_string(),
            ),
        ],
    )?;
    tracing::warn!(
        dead_letter_id = id,
        partition = msg.partition,
        offset = msg.offset,
        reason = %reason,
        "command dead-lettered"
    );
    Ok(Disposition::DeadLettered {
        command_id: letter.command_id,
        dead_letter_id: id,
    })
}

/// Dead-letter a command that failed alone in a way nothing could pin on
/// it, in a transaction of its own: it names what it can of the command.
pub fn dead_letter_alone(
    conn: &mut PgConnection,
    topics: &Topics,
    attempt: Attempt,
    msg: &Inbound,
    detail: &str,
) -> Result<Disposition, StoreError> {
    let (command_id, tenant_id) = CommandEnvelope::peek_ids(&msg.payload);
    conn.transaction(|conn| {
        // A replay that failed again: its letter is done, the new one
        // says where it came from.
        let replay_of = match command_id {
            Some(id) => mark_replayed(conn, id)?,
            None => None,
        };
        let letter = Letter {
            command_id,
            tenant_id: tenant_id.or_else(|| tenant_of_key(msg.key.as_deref())),
            reason: format!(
                "could not be applied after {} attempts: {detail}",
                attempt.failed + 1
            ),
            replay_of,
        };
        record(conn, topics, attempt, msg, &letter)
    })
}
