//! The questions the rest of a program asks (git-annex's Annex/Wanted.hs):
//! does a repository want a key it does not have, may it drop a key it
//! has, is it required to keep it. A repository with no expression, or an
//! empty one, gets the caller's default, as in git-annex.

use std::collections::HashSet;

use annex_types::{Key, Uuid};

use crate::eval::{Decider, EvalError, Subject, Verdict};
use crate::policy::{Policies, Policy};

/// Decisions for any repository, from compiled policies.
#[derive(Clone, Copy)]
pub struct Wants<'a> {
    /// What decisions read.
    pub decider: Decider<'a>,
    /// Every repository's compiled expressions.
    pub policies: &'a Policies,
}

fn defaulted(default: bool) -> Verdict {
    Verdict {
        matches: default,
        lacking: Vec::new(),
        explanation: None,
        reservation: None,
    }
}

impl Wants<'_> {
    fn ask(
        &self,
        policy: Option<&Policy>,
        subject: &Subject<'_>,
        not_present: &HashSet<Uuid>,
        default: bool,
        explain: bool,
    ) -> Result<Verdict, EvalError> {
        match policy {
            Some(p) if !p.is_empty() && (subject.key.is_some() || subject.file.is_some()) => {
                self.decider.evaluate(p, subject, not_present, explain)
            }
            _ => Ok(defaulted(default)),
        }
    }

    /// Would `u` want the key if it did not have it (`wantGetBy`)? When it
    /// does because of sizes, the verdict carries a reservation: keep it
    /// while the content is sent, and finish it once the content is
    /// recorded there.
    pub fn want_get(
        &self,
        u: &Uuid,
        key: &Key,
        file: Option<&str>,
        default: bool,
    ) -> Result<Verdict, EvalError> {
        let subject = Subject::key(key, file);
        self.ask(
            self.policies.preferred(u),
            &subject,
            &HashSet::new(),
            default,
            false,
        )
    }

    /// Would `u` drop the key it has (`wantDrop`): its preferred content
    /// does not match when `u` is assumed not to have the key. `default`
    /// is what an unconfigured repository's preferred content answers.
    pub fn want_drop(
        &self,
        u: &Uuid,
        key: &Key,
        file: Option<&str>,
        default: bool,
    ) -> Result<bool, EvalError> {
        let subject = Subject::key(key, file);
        let not_present: HashSet<Uuid> = [u.clone()].into_iter().collect();
        let v = self.ask(
            self.policies.preferred(u),
            &subject,
            &not_present,
            default,
            false,
        )?;
        Ok(!v.matches)
    }

    /// Is `u` required to keep the key (its required content matches with
    /// `u` assumed not to have it)? `false` when it has no required
    /// content.
    pub fn required(&self, u: &Uuid, key: &Key, file: Option<&str>) -> Result<bool, EvalError> {
        let subject = Subject::key(key, file);
        let not_present: HashSet<Uuid> = [u.clone()].into_iter().collect();
        Ok(self
            .ask(
                self.policies.required(u),
                &subject,
                &not_present,
                false,
                false,
            )?
            .matches)
    }

    /// The repositories among `candidates` that want the key, with their
    /// reservations (what a cluster gateway asks before an upload).
    pub fn wanting<'c>(
        &self,
        candidates: impl IntoIterator<Item = &'c Uuid>,
        key: &Key,
        file: Option<&str>,
    ) -> Result<Vec<(Uuid, Verdict)>, EvalError> {
        let mut out = Vec::new();
        for u in candidates {
            let v = self.want_get(u, key, file, false)?;
            if v.matches {
                out.push((u.clone(), v));
            }
        }
        Ok(out)
    }
}
