//! The batch's user creates, looked up together: which of their emails and
//! userNames no user held when the batch began.

use std::collections::{HashMap, HashSet};

use diesel::PgConnection;
use uuid::Uuid;

use scimflow_shared::store::users::held_identities;
use scimflow_shared::store::StoreError;

/// Emails and userNames that no user of their tenant held when the batch
/// began: one query per tenant and batch instead of two per create.
///
/// Only ever a shortcut: a create whose email or userName is not known to
/// be unheld looks both up as before. What the batch's commands write is
/// struck off (`claim`); a PUT or PATCH of a user may change anyone's
/// userName or email, so it ends the shortcut for the rest of the batch
/// (`forget`); a delete only frees identities, which the lookups then
/// find. Retries run without it (`batch.rs`), so a batch that failed on a
/// uniqueness index (another processor won a race, or Rust's and
/// PostgreSQL's lowercase disagree on some userName) is re-run with each
/// create's own lookups and gets its 409.
#[derive(Debug, Default)]
pub struct Unheld {
    emails: HashSet<(Uuid, String)>,
    user_names: HashSet<(Uuid, String)>,
    /// Lowercased: I4 compares userNames without case.
    claimed_names: HashSet<(Uuid, String)>,
}

impl Unheld {
    /// `wanted`: per tenant, the emails and userNames its creates carry.
    pub fn look_up(
        conn: &mut PgConnection,
        wanted: HashMap<Uuid, (Vec<String>, Vec<String>)>,
    ) -> Result<Self, StoreError> {
        let mut unheld = Unheld::default();
        for (tenant_id, (emails, user_names)) in wanted {
            let held = held_identities(conn, tenant_id, &emails, &user_names)?;
            unheld.emails.extend(
                emails
                    .into_iter()
                    .filter(|e| !held.emails.contains(e))
                    .map(|e| (tenant_id, e)),
            );
            unheld.user_names.extend(
                user_names
                    .into_iter()
                    .filter(|n| !held.user_names.contains(n))
                    .map(|n| (tenant_id, n)),
            );
        }
        Ok(unheld)
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
        *self = Unheld::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(tenant: Uuid, emails: &[&str], names: &[&str]) -> Unheld {
        Unheld {
            emails: emails.iter().map(|e| (tenant, e.to_string())).collect(),
            user_names: names.iter().map(|n| (tenant, n.to_string())).collect(),
            claimed_names: HashSet::new(),
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
