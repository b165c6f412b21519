//! The batch's user creates, prepared together before any is applied:
//! each body normalised once, and which of their emails and userNames no
//! user held when the batch began.

use std::collections::{HashMap, HashSet};

use diesel::PgConnection;
use uuid::Uuid;

use scimflow_shared::command::{Command, CommandEnvelope};
use scimflow_shared::rules::identity::identity_email;
use scimflow_shared::scim::user::{normalize_user, UserInput};
use scimflow_shared::store::users::held_identities;
use scimflow_shared::store::StoreError;

use super::users::user_name_of;

/// The batch's user creates: normalised bodies by command id (taken by
/// `users::create`), and the emails and userNames no user of their tenant
/// held when the batch began, found with one query per tenant instead of
/// two per create.
///
/// The identities are only ever a shortcut: a create whose email or
/// userName is not known to be unheld looks both up as before. What the
/// batch's creates write is struck off (`claim`); any other command may
/// read or rename users, so it ends the shortcut for the rest of the batch
/// (`forget`, `batch.rs`). Retries run without it, so a batch that failed
/// on a uniqueness index (another processor won a race, or Rust's and
/// PostgreSQL's lowercase disagree on some userName) is re-run with each
/// create's own lookups and gets its 409.
#[derive(Debug, Default)]
pub struct BatchCreates {
    inputs: HashMap<Uuid, UserInput>,
    emails: HashSet<(Uuid, String)>,
    user_names: HashSet<(Uuid, String)>,
    /// Lowercased: I4 compares userNames without case.
    claimed_names: HashSet<(Uuid, String)>,
}

impl BatchCreates {
    /// Normalise the batch's user creates and, if `look_up`, find which of
    /// their identities are unheld. A body that does not normalise is left
    /// for `users::create` to refuse.
    pub fn prepare(
        conn: &mut PgConnection,
        batch: &[Result<CommandEnvelope, String>],
        look_up: bool,
    ) -> Result<Self, StoreError> {
        let mut creates = BatchCreates::default();
        let mut wanted: HashMap<Uuid, (Vec<String>, Vec<String>)> = HashMap::new();
        for env in batch.iter().flatten() {
            let Command::CreateUser { body, .. } = &env.command else {
                continue;
            };
            let Ok(input) = normalize_user(body) else {
                continue;
            };
            if let (Ok(email), Ok(user_name)) =
                (identity_email(&input.attrs), user_name_of(&input.attrs))
            {
                let (emails, names) = wanted.entry(env.tenant_id).or_default();
                emails.push(email);
                names.push(user_name);
            }
            creates.inputs.insert(env.command_id, input);
        }
        if !look_up {
            return Ok(creates);
        }
        for (tenant_id, (emails, user_names)) in wanted {
            let held = held_identities(conn, tenant_id, &emails, &user_names)?;
            creates.emails.extend(
                emails
                    .into_iter()
                    .filter(|e| !held.emails.contains(e))
                    .map(|e| (tenant_id, e)),
            );
            creates.user_names.extend(
                user_names
                    .into_iter()
                    .filter(|n| !held.user_names.contains(n))
                    .map(|n| (tenant_id, n)),
            );
        }
        Ok(creates)
    }

    /// The normalised body of a create in this batch (once).
    pub fn take_input(&mut self, command_id: Uuid) -> Option<UserInput> {
        self.inputs.remove(&command_id)
    }

    /// Did no user hold `email` nor `user_name` when the batch began, and
    /// has no command of the batch taken them since?
    pub fn both_unheld(&self, tenant_id: Uuid, email: &str, user_name: &str) -> bool {
        self.emails.contains(&(tenant_id, email.to_string()))
            && self
                .user_names
                .contains(&(tenant_id, user_name.to_string()))
            && !self
                .claimed_names
                .contains(&(tenant_id, user_name.to_lowercase()))
    }

    /// A command of the batch gave a user `email` and `user_name`.
    pub fn claim(&mut self, tenant_id: Uuid, email: &str, user_name: &str) {
        self.emails.remove(&(tenant_id, email.to_string()));
        self.claimed_names
            .insert((tenant_id, user_name.to_lowercase()));
    }

    /// Nothing is known to be unheld any more.
    pub fn forget(&mut self) {
        self.emails.clear();
        self.user_names.clear();
        self.claimed_names.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(tenant: Uuid, emails: &[&str], names: &[&str]) -> BatchCreates {
        BatchCreates {
            emails: emails.iter().map(|e| (tenant, e.to_string())).collect(),
            user_names: names.iter().map(|n| (tenant, n.to_string())).collect(),
            ..BatchCreates::default()
        }
    }

    struct Case {
        /// (email, userName) given to users earlier in the batch
        claimed: &'static [(&'static str, &'static str)],
        tenant: Uuid,
        email: &'static str,
        user_name: &'static str,
        skips: bool,
    }

    #[test]
    fn a_create_skips_its_lookups_only_while_both_identities_are_unheld() {
        let t = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let case = |claimed, tenant, email, user_name, skips| Case {
            claimed,
            tenant,
            email,
            user_name,
            skips,
        };
        let cases = [
            case(&[], t, "ada@x.test", "Ada", true),
            case(&[], t, "ada@x.test", "Bob", false), // userName held
            case(&[], t, "bob@x.test", "Ada", false), // email held
            case(&[], other, "ada@x.test", "Ada", false), // another tenant's
            case(&[("ada@x.test", "Zed")], t, "ada@x.test", "Ada", false),
            case(&[("z@x.test", "ADA")], t, "ada@x.test", "Ada", false),
            case(&[("z@x.test", "Zed")], t, "ada@x.test", "Ada", true),
        ];
        for c in cases {
            let mut unheld = known(t, &["ada@x.test"], &["Ada"]);
            for (email, user_name) in c.claimed {
                unheld.claim(t, email, user_name);
            }
            assert_eq!(
                unheld.both_unheld(c.tenant, c.email, c.user_name),
                c.skips,
                "claimed {:?}, create {} / {}",
                c.claimed,
                c.email,
                c.user_name
            );
        }
    }

    #[test]
    fn forgetting_sends_every_create_back_to_its_lookups() {
        let t = Uuid::from_u128(1);
        let mut unheld = known(t, &["ada@x.test"], &["Ada"]);
        unheld.forget();
        assert!(!unheld.both_unheld(t, "ada@x.test", "Ada"));
    }
}
