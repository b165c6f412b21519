//! The dead-letter decision (P4), in one pure function: given how many
//! times a batch has failed, how it is being run, what went wrong and
//! whether the command's resource is held, what happens next.
//!
//! The principle: what only one command can have caused (it panics, it
//! does not decode, the database refuses what it does) becomes a dead
//! letter for that command after a bounded number of attempts, so other
//! tenants wait no longer than those attempts take; what no command can
//! have caused (the database or the broker is unreachable) is retried
//! without end. Nothing is applied ahead of a dead letter of its resource
//! (P2): it is held behind it.

/// How a batch is being run on this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One transaction; most commands without a savepoint of their own.
    Whole,
    /// One transaction; every command behind its own boundary (a
    /// savepoint, its rows written inside it, panics caught), so a failure
    /// names its command.
    Isolated,
    /// One transaction per command: for a failure that an isolated run
    /// could not pin on a command.
    Alone,
}

/// The attempt about to be decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Failed attempts before this one that counted (outages do not).
    pub failed: u32,
    pub mode: Mode,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing (yet): the command is about to be applied.
    None,
    /// The database or the broker is unreachable or in a passing state
    /// (`StoreError::is_outage`): nobody's fault.
    Outage,
    /// The message does not decode, is too large, or its key does not
    /// name the command's resource: no attempt can change that.
    Undecodable,
    /// Applying the command panicked.
    Panic,
    /// The database refused what applying the command did.
    Database,
    /// The batch failed outside every command's boundary (a panic or a
    /// database error in work the batch's commands share).
    Unattributed,
}

/// Whether the command's resource is held: an earlier command for it is
/// dead-lettered and not yet replayed or discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Free,
    Held,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Apply,
    /// Fail the batch; run it again the same way after a back-off.
    Retry,
    /// Fail the batch; run it again with each command behind its own
    /// boundary (`Mode::Isolated`, then `Mode::Alone`).
    Isolate,
    /// Record a dead letter for this command; the rest go on.
    DeadLetter,
    /// Record it as held behind its resource's dead letter, unapplied.
    Hold,
}

/// Whole-batch attempts a panic gets before the batch is isolated: a panic
/// is a bug meeting an input, rarely a passing condition.
pub const PANIC_ATTEMPTS: u32 = 2;
/// Whole-batch attempts a database refusal gets: another processor
/// winning a race (a uniqueness index refusing a create) passes. Deadlocks,
/// serialization failures, a read-only primary and the like are outages
/// (`StoreError::is_outage`), retried without end.
pub const DATABASE_ATTEMPTS: u32 = 5;
/// Attempts, one command alone, of a failure nothing else could pin on it.
pub const ALONE_ATTEMPTS: u32 = 2;

pub fn decide(attempt: Attempt, failure: Failure, hold: HoldState) -> Decision {
    use Decision::*;
    use Failure as F;
    let failed = attempt.failed + 1;
    match (failure, hold, attempt.mode) {
        (F::None, HoldState::Free, _) => Apply,
        (F::None, HoldState::Held, _) => Hold,
        (F::Outage, _, _) => Retry,
        // Its own reason says more than "held", and it is never replayed.
        (F::Undecodable, _, _) => DeadLetter,
        (F::Panic | F::Database, HoldState::Held, _) => Hold,
        (F::Panic, _, Mode::Whole) if failed < PANIC_ATTEMPTS => Retry,
        (F::Database | F::Unattributed, _, Mode::Whole) if failed < DATABASE_ATTEMPTS => Retry,
        (F::Panic | F::Database | F::Unattributed, _, Mode::Whole) => Isolate,
        (F::Panic | F::Database, _, Mode::Isolated) => DeadLetter,
        (F::Unattributed, _, Mode::Isolated) => Isolate,
        (F::Panic | F::Database | F::Unattributed, _, Mode::Alone) if failed < ALONE_ATTEMPTS => {
            Retry
        }
        (F::Panic | F::Database | F::Unattributed, _, Mode::Alone) => DeadLetter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use Failure as F;
    use HoldState::{Free, Held};
    use Mode::{Alone, Isolated, Whole};

    #[test]
    fn the_dead_letter_decision_table() {
        // (failed attempts before, mode, failure, hold, decision)
        let cases: &[(u32, Mode, Failure, HoldState, Decision)] = &[
            // Nothing failed: apply, unless an earlier letter holds it.
            (0, Whole, F::None, Free, Apply),
            (0, Whole, F::None, Held, Hold),
            (6, Isolated, F::None, Free, Apply),
            (6, Isolated, F::None, Held, Hold),
            // Outages: retried without end, in any mode.
            (0, Whole, F::Outage, Free, Retry),
            (1_000, Whole, F::Outage, Free, Retry),
            (9, Isolated, F::Outage, Free, Retry),
            (9, Alone, F::Outage, Held, Retry),
            // Undecodable: a dead letter at once; nothing can change it.
            (0, Whole, F::Undecodable, Free, DeadLetter),
            (0, Whole, F::Undecodable, Held, DeadLetter),
            (3, Isolated, F::Undecodable, Free, DeadLetter),
            // A panic: one more whole attempt, then isolated, then a letter.
            (0, Whole, F::Panic, Free, Retry),
            (1, Whole, F::Panic, Free, Isolate),
            (2, Isolated, F::Panic, Free, DeadLetter),
            // A database refusal: five whole attempts (as before), then
            // isolated, then a letter.
            (0, Whole, F::Database, Free, Retry),
            (3, Whole, F::Database, Free, Retry),
            (4, Whole, F::Database, Free, Isolate),
            (5, Isolated, F::Database, Free, DeadLetter),
            // A failing command of a held resource stays behind its letter.
            (5, Isolated, F::Panic, Held, Hold),
            (5, Isolated, F::Database, Held, Hold),
            // Unattributed: like a database refusal while whole; an
            // isolated run that still cannot name the command goes one
            // command at a time, where it can.
            (0, Whole, F::Unattributed, Free, Retry),
            (4, Whole, F::Unattributed, Free, Isolate),
            (5, Isolated, F::Unattributed, Free, Isolate),
            (0, Alone, F::Unattributed, Free, Retry),
            (1, Alone, F::Unattributed, Free, DeadLetter),
            (1, Alone, F::Panic, Free, DeadLetter),
        ];
        for &(failed, mode, failure, hold, want) in cases {
            let got = decide(Attempt { failed, mode }, failure, hold);
            assert_eq!(
                got, want,
                "{failed} failed, {mode:?}, {failure:?}, {hold:?}"
            );
        }
    }

    #[test]
    fn a_failure_of_a_command_never_retries_without_end() {
        // Whatever fails, a command's own failure ends in a letter (or a
        // hold behind one) within a bounded number of attempts per mode.
        for failure in [F::Panic, F::Database, F::Unattributed, F::Undecodable] {
            let mut attempt = Attempt {
                failed: 0,
                mode: Whole,
            };
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 20, "{failure:?} retried without end");
                match decide(attempt, failure, Free) {
                    Retry => attempt.failed += 1,
                    Isolate => {
                        attempt.failed += 1;
                        attempt.mode = match attempt.mode {
                            Whole => Isolated,
                            _ => Alone,
                        };
                        // An isolated run pins a command's own failure on it.
                        if attempt.mode == Alone {
                            attempt.failed = 0;
                        }
                    }
                    DeadLetter | Hold => break,
                    Apply => panic!("{failure:?} applied"),
                }
            }
        }
    }
}
