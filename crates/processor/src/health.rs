//! The processor's readiness on its admin listener. Ready: the database
//! answers and the group gave this member partitions. Idle (also 200): the
//! group has more members than the command topic has partitions, so this
//! member is a standby by design. Otherwise not ready, with the reason.
//! The assignment comes from the rebalance callback (`scimflow_bus::Membership`); the
//! rest is checked by a background task every `READINESS_INTERVAL`, so a
//! probe costs nothing.

use std::collections::BTreeSet;

use scimflow_bus::Membership;

use scimflow_shared::metrics::{Readiness, ReadyState, READINESS_INTERVAL};
use scimflow_shared::store::{self, PgPool};
use serde_json::json;
use tokio::sync::watch;

/// What `/readyz` answers, from what was last observed. An empty
/// assignment after a rebalance means the group has more members than the
/// topic has partitions: the assignors the Kafka client offers (range,
/// roundrobin) give every member a partition while there are enough. (The
/// group is not described to find out: that needs another request kind, and
/// tansu 0.6 drops the connection on it.)
pub fn ready_state(database: Result<(), String>, assignment: Option<&BTreeSet<i32>>) -> ReadyState {
    if let Err(e) = database {
        return ReadyState::not_ready(format!("the database is unreachable: {e}"));
    }
    match assignment {
        None => ReadyState::not_ready("no partitions assigned yet: joining the consumer group"),
        Some(p) if p.is_empty() => ReadyState::ready(json!({
            "status": "idle",
            "reason": "more group members than partitions",
        })),
        Some(p) => ReadyState::ready(json!({"status": "ready", "partitions": p})),
    }
}

/// Keep `readiness` current until `shutdown` turns true.
pub fn follow(
    pool: PgPool,
    membership: Membership,
    readiness: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let pool = pool.clone();
            let database = tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                store::ping(&mut conn).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            readiness.set(ready_state(database, membership.assignment().as_ref()));
            let _ = tokio::time::timeout(READINESS_INTERVAL, shutdown.wait_for(|stop| *stop)).await;
            if *shutdown.borrow() {
                readiness.set(ReadyState::not_ready("shutting down"));
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_from_database_and_assignment() {
        let none = BTreeSet::new();
        let two = BTreeSet::from([0, 2]);
        // (database, assignment, ready, body status, body fragment)
        type Case<'a> = (
            Result<(), String>,
            Option<&'a BTreeSet<i32>>,
            bool,
            &'a str,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (Ok(()), Some(&two), true, "ready", "\"partitions\":[0,2]"),
            (
                Err("down".into()),
                Some(&two),
                false,
                "not_ready",
                "database",
            ),
            (Ok(()), None, false, "not_ready", "joining"),
            (
                Ok(()),
                Some(&none),
                true,
                "idle",
                "more group members than partitions",
            ),
            (
                Err("down".into()),
                Some(&none),
                false,
                "not_ready",
                "database",
            ),
        ];
        for (db, assigned, ready, status, fragment) in cases {
            let s = ready_state(db.clone(), assigned);
            assert_eq!(s.ready, ready, "{db:?} {assigned:?}");
            assert_eq!(s.body["status"], status, "{s:?}");
            assert!(
                s.body.to_string().contains(fragment),
                "{s:?} lacks {fragment}"
            );
        }
    }
}
