//! Evaluating a compiled expression for a repository and a key (git-annex's
//! Limit.hs), with the explanation git-annex gives under `--explain`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;

use annex_branch::logs::metadata::MetaData;
use annex_branch::logs::trust::TrustLevel;
use annex_types::key::{HashKind, KeyVariety};
use annex_types::{Key, Uuid};

use crate::facts::Facts;
use crate::glob::GlobError;
use crate::live::{LiveSizes, Reservation, SizeView};
use crate::policy::{Node, Policy};
use crate::syntax::Matcher;
use crate::term::{Balanced, Copies, CopiesFilter, Term, Word};

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Information the decision needs was not given (only when the subject
    /// asks for that to be an error, as `matchexpression` does).
    #[error("cannot match this expression without {0} data")]
    Missing(&'static str),
    /// A glob that git-annex's regex engine would refuse.
    #[error(transparent)]
    Glob(#[from] GlobError),
    /// Reading the branch failed.
    #[error(transparent)]
    Branch(#[from] annex_branch::BranchError),
    /// Another source of key information failed.
    #[error("{0}")]
    Source(String),
}

/// Per-key information, read only when a term needs it.
pub trait KeyInfo {
    /// The repositories the location log says have the key, with the
    /// clusters of those that are cluster nodes (git-annex's
    /// loggedLocations: dead repositories included).
    fn locations(&self, key: &Key) -> Result<Cow<'_, [Uuid]>, EvalError>;

    /// The key's current metadata.
    fn metadata(&self, key: &Key) -> Result<MetaData, EvalError> {
        let _ = key;
        Ok(MetaData::default())
    }

    /// Whether the content is present in the local repository, checked on
    /// disk; `None` to go by the location log.
    fn has_content_here(&self, key: &Key) -> Result<Option<bool>, EvalError> {
        let _ = key;
        Ok(None)
    }

    /// Whether the key is listed as unused (`git annex unused`).
    fn is_unused(&self, key: &Key) -> Result<bool, EvalError> {
        let _ = key;
        Ok(false)
    }

    /// The URLs the key's content is recorded as present at (the web
    /// log), as written there (with any downloader prefix).
    fn urls(&self, key: &Key) -> Result<Vec<String>, EvalError> {
        let _ = key;
        Ok(Vec::new())
    }
}

/// A URL of the web log without its downloader's mark (`yt:`, `quvi:`,
/// or `:` for a special remote's), as git-annex's getDownloader strips it.
fn without_downloader(url: &str) -> &str {
    match url.split_once(':') {
        Some(("yt" | "quvi" | "", rest)) => rest,
        _ => url,
    }
}

/// How the subject of a decision was given, which changes what a term does
/// when information is missing (git-annex's MatchInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A file in the work tree and its key.
    File,
    /// A key, perhaps with a file name, not looked at on disk.
    Provided,
    /// Values given on a command line: missing information is an error.
    User,
}

/// What a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The key.
    pub key: Option<&'a Key>,
    /// The file, relative to the top of the work tree.
    pub file: Option<&'a str>,
    /// The file's size, when known apart from the key.
    pub size: Option<i128>,
    /// How it was given.
    pub kind: SubjectKind,
    /// The file's numcopies (gitattributes), when known.
    pub numcopies: Option<u64>,
    /// The key's logged locations, when the caller has them already (a
    /// gateway that just read the location log, a simulation): then they
    /// are not asked of the [`KeyInfo`].
    pub locations: Option<&'a [Uuid]>,
}

impl<'a> Subject<'a> {
    /// A key, with the file it is the content of when there is one; as
    /// git-annex asks about content it is sending or receiving.
    pub fn key(key: &'a Key, file: Option<&'a str>) -> Subject<'a> {
        Subject {
            key: Some(key),
            file,
            size: None,
            kind: if file.is_some() {
                SubjectKind::File
            } else {
                SubjectKind::Provided
            },
            numcopies: None,
            locations: None,
        }
    }

    /// The same subject, with the key's logged locations given.
    pub fn with_locations(mut self, locations: &'a [Uuid]) -> Subject<'a> {
        self.locations = Some(locations);
        self
    }
}

/// Settings that change decisions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The local repository, whose `present` is checked on disk.
    pub here: Option<Uuid>,
    /// `--rebalance`: balanced terms act as their fully balanced forms.
    pub rebalance: bool,
    /// annex.fullybalancedthreshhold as a fraction (default 0.9).
    pub fully_balanced_threshold: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            here: None,
            rebalance: false,
            fully_balanced_threshold: 0.9,
        }
    }
}

/// The answer to one decision.
#[derive(Debug)]
pub struct Verdict {
    /// Whether the expression matched (and may be used).
    pub matches: bool,
    /// Information a term needed and did not have (a term then does not
    /// match): `"key"`, `"file"`, `"size"`.
    pub lacking: Vec<&'static str>,
    /// git-annex's explanation, when asked for.
    pub explanation: Option<String>,
    /// Content now counted as in flight to the repository, when the
    /// decision wanted it because of sizes. Finish it when the transfer
    /// succeeds; dropping it gives it up.
    pub reservation: Option<Reservation>,
}

/// Everything a decision reads.
#[derive(Clone, Copy)]
pub struct Decider<'a> {
    /// Repository-wide facts.
    pub facts: &'a Facts,
    /// Per-key information.
    pub keys: &'a dyn KeyInfo,
    /// Repository sizes; without them every size is unknown.
    pub sizes: Option<&'a LiveSizes>,
    /// Settings.
    pub settings: &'a Settings,
}

#[derive(Debug, Clone)]
enum Step {
    Open,
    Close,
    And,
    Or,
    Not,
    Op(String, bool),
}

struct Run<'d, 's> {
    d: &'d Decider<'d>,
    subject: &'s Subject<'s>,
    u: &'s Uuid,
    not_present: &'s HashSet<Uuid>,
    view: Option<&'s SizeView<'s>>,
    locations: OnceCell<Cow<'d, [Uuid]>>,
    metadata: OnceCell<MetaData>,
    live_needed: bool,
    lacking: Vec<&'static str>,
    trace: Option<Vec<Step>>,
}

impl Decider<'_> {
    /// Evaluates `policy` (for its repository) on `subject`, assuming the
    /// repositories in `not_present` do not have the key (git-annex asks
    /// "does U still want what it has" with U there).
    ///
    /// An expression with a negated `present`, or a term built on it,
    /// never matches, as in git-annex.
    pub fn evaluate(
        &self,
        policy: &Policy,
        subject: &Subject<'_>,
        not_present: &HashSet<Uuid>,
        explain: bool,
    ) -> Result<Verdict, EvalError> {
        match self.sizes {
            Some(sizes) if policy.needs_sizes() => {
                let (res, reservation) = sizes.decide(subject.key, |view| {
                    let r = self.run(policy, subject, not_present, Some(view), explain);
                    let reserve = match &r {
                        Ok((v, true)) if v.matches => Some((
                            policy.uuid().clone(),
                            subject.key.and_then(|k| k.size()).unwrap_or(0) as i128,
                        )),
                        _ => None,
                    };
                    (r, reserve)
                });
                let (mut v, _) = res?;
                v.reservation = reservation;
                Ok(v)
            }
            _ => self
                .run(policy, subject, not_present, None, explain)
                .map(|(v, _)| v),
        }
    }

    fn run(
        &self,
        policy: &Policy,
        subject: &Subject<'_>,
        not_present: &HashSet<Uuid>,
        view: Option<&SizeView<'_>>,
        explain: bool,
    ) -> Result<(Verdict, bool), EvalError> {
        let mut run = Run {
            d: self,
            subject,
            u: policy.uuid(),
            not_present,
            view,
            locations: OnceCell::new(),
            metadata: OnceCell::new(),
            live_needed: false,
            lacking: Vec::new(),
            trace: explain.then(Vec::new),
        };
        let matched = run.tree(policy.tree())?;
        let unstable = policy.unstable_negations();
        let matches = matched && unstable.is_empty();
        let explanation = run.trace.take().map(|t| {
            let prefix = format!(
                "{} {}: ",
                if matched { "matches" } else { "does not match" },
                policy.description()
            );
            let mut s = describe(&t, &prefix).unwrap_or_default();
            if !unstable.is_empty() {
                s.push_str(&format!(
                    ", but that expression is not stable due to negated use of {}, so will not be used",
                    unstable.join(" ")
                ));
            }
            s
        });
        Ok((
            Verdict {
                matches,
                lacking: run.lacking,
                explanation,
                reservation: None,
            },
            run.live_needed,
        ))
    }
}

impl<'d, 's> Run<'d, 's> {
    fn push(&mut self, s: Step) {
        if let Some(t) = &mut self.trace {
            t.push(s);
        }
    }

    fn tree(&mut self, m: &Matcher<Node>) -> Result<bool, EvalError> {
        Ok(match m {
            Matcher::Any => true,
            Matcher::And(a, b) => {
                self.push(Step::Open);
                if self.tree(a)? {
                    self.push(Step::And);
                    let r = self.tree(b)?;
                    self.push(Step::Close);
                    r
                } else {
                    self.push(Step::Close);
                    false
                }
            }
            Matcher::Or(a, b) => {
                self.push(Step::Open);
                if self.tree(a)? {
                    self.push(Step::Close);
                    true
                } else {
                    self.push(Step::Or);
                    let r = self.tree(b)?;
                    self.push(Step::Close);
                    r
                }
            }
            Matcher::Not(a) => {
                self.push(Step::Open);
                self.push(Step::Not);
                let r = !self.tree(a)?;
                self.push(Step::Close);
                r
            }
            Matcher::Op(node) => {
                let r = match node {
                    Node::Term(w) => self.word(w)?,
                    Node::Call { inner, .. } => {
                        // A call's inner steps are not explained.
                        let saved = self.trace.take();
                        let r = self.tree(inner);
                        self.trace = saved;
                        r?
                    }
                };
                self.push(Step::Op(node.describe().to_owned(), r));
                r
            }
        })
    }

    fn lack(&mut self, what: &'static str) -> Result<(), EvalError> {
        if self.subject.kind == SubjectKind::User {
            return Err(EvalError::Missing(what));
        }
        if !self.lacking.contains(&what) {
            self.lacking.push(what);
        }
        Ok(())
    }

    /// The key, when the term can go on (git-annex's checkKey).
    fn key(&mut self) -> Result<Option<&'s Key>, EvalError> {
        match self.subject.key {
            Some(k) => Ok(Some(k)),
            None => {
                self.lack("key")?;
                Ok(None)
            }
        }
    }

    fn file(&mut self) -> Result<Option<&'s str>, EvalError> {
        match self.subject.file {
            Some(f) => Ok(Some(f)),
            None => {
                self.lack("file")?;
                Ok(None)
            }
        }
    }

    /// The key's logged locations (git-annex's loggedLocations), read once
    /// per decision.
    fn logged(&self, key: &Key) -> Result<&[Uuid], EvalError> {
        if let Some(given) = self.subject.locations {
            return Ok(given);
        }
        if self.locations.get().is_none() {
            let l = self.d.keys.locations(key)?;
            let _ = self.locations.set(l);
        }
        Ok(self.locations.get().map(|v| v.as_ref()).unwrap_or(&[]))
    }

    /// Locations without dead repositories (git-annex's keyLocations).
    fn live_locations<'a>(
        &'a self,
        key: &Key,
    ) -> Result<impl Iterator<Item = &'a Uuid> + 'a, EvalError> {
        let facts = self.d.facts;
        let dead_known = !facts.trust.is_empty();
        Ok(self
            .logged(key)?
            .iter()
            .filter(move |u| !dead_known || facts.trust_of(u) != TrustLevel::Dead))
    }

    fn word(&mut self, w: &Word) -> Result<bool, EvalError> {
        let facts = self.d.facts;
        match &w.term {
            Term::Anything => Ok(true),
            Term::Nothing => Ok(false),
            Term::Include(g) => match self.file()? {
                Some(f) => Ok(g.matches(f)?),
                None => Ok(false),
            },
            Term::Exclude(g) => match self.file()? {
                Some(f) => Ok(!g.matches(f)?),
                None => Ok(true),
            },
            Term::InPreferredDir => {
                let dir = facts
                    .preferreddirs
                    .get(self.u)
                    .map(String::as_str)
                    .unwrap_or("public");
                match self.file()? {
                    Some(f) => Ok(in_dir(f, dir)),
                    None => Ok(false),
                }
            }
            Term::LargerThan(n) | Term::SmallerThan(n) => {
                let size = match self.subject.kind {
                    SubjectKind::User => match self.subject.size {
                        Some(s) => Some(s),
                        None => return Err(EvalError::Missing("size")),
                    },
                    SubjectKind::Provided if self.subject.size.is_some() => self.subject.size,
                    _ => match self.key()? {
                        Some(k) => k.size().map(i128::from),
                        None => return Ok(false),
                    },
                };
                // Haskell orders Nothing below every Just.
                Ok(match w.term {
                    Term::LargerThan(_) => size.is_some_and(|s| s > *n),
                    _ => size.is_none_or(|s| s < *n),
                })
            }
            Term::Unused => match self.subject.kind {
                SubjectKind::File => Ok(false),
                SubjectKind::Provided => match self.subject.key {
                    Some(k) => self.d.keys.is_unused(k),
                    None => Ok(false),
                },
                SubjectKind::User => match self.key()? {
                    Some(k) => self.d.keys.is_unused(k),
                    None => Ok(false),
                },
            },
            Term::Standard | Term::GroupWanted => Ok(true),
            Term::Present => self.present(),
            Term::SecureHash => Ok(match self.key()? {
                Some(k) => secure(k),
                None => false,
            }),
            Term::InBackend(name) => Ok(match self.key()? {
                Some(k) => k.variety() == KeyVariety::parse(name),
                None => false,
            }),
            Term::Copies(c) => self.copies(c),
            Term::LackingCopies { approx, n } => {
                Ok(self.lacking(*approx)?.is_some_and(|l| l >= *n))
            }
            Term::Url(g) => {
                let Some(key) = self.key()? else {
                    return Ok(false);
                };
                for url in self.d.keys.urls(key)? {
                    if g.matches(without_downloader(&url))? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Term::MetaData(m) => {
                let Some(key) = self.key()? else {
                    return Ok(false);
                };
                if self.metadata.get().is_none() {
                    let md = self.d.keys.metadata(key)?;
                    let _ = self.metadata.set(md);
                }
                match self.metadata.get() {
                    Some(md) => Ok(m.try_matches(md)?),
                    None => Ok(false),
                }
            }
            Term::InAllGroup(g) => {
                let members = facts.members(g);
                if members.is_empty() {
                    return Ok(true);
                }
                if members.iter().any(|m| self.not_present.contains(m)) {
                    return Ok(false);
                }
                let Some(key) = self.key()? else {
                    return Ok(false);
                };
                let locs: Vec<&Uuid> = self.live_locations(key)?.collect();
                Ok(members.iter().all(|m| locs.contains(&m)))
            }
            Term::OnlyInGroup(g) => {
                let members = facts.members(g);
                if members.is_empty() {
                    return Ok(false);
                }
                let Some(key) = self.key()? else {
                    return Ok(false);
                };
                let present: Vec<&Uuid> = self
                    .live_locations(key)?
                    .filter(|u| !self.not_present.contains(*u))
                    .collect();
                Ok(present.iter().any(|u| members.binary_search(u).is_ok())
                    && present.iter().all(|u| members.binary_search(u).is_ok()))
            }
            Term::Balanced(b) => self.balanced(b),
        }
    }

    fn present(&mut self) -> Result<bool, EvalError> {
        let Some(key) = self.key()? else {
            return Ok(false);
        };
        if self.d.settings.here.as_ref() == Some(self.u) {
            if let Some(here) = self.d.keys.has_content_here(key)? {
                return Ok(here);
            }
        }
        let u = self.u;
        let found = self.live_locations(key)?.any(|l| l == u);
        Ok(found)
    }

    fn copies(&mut self, c: &Copies) -> Result<bool, EvalError> {
        let Some(key) = self.key()? else {
            return Ok(false);
        };
        let facts = self.d.facts;
        let members = match &c.filter {
            CopiesFilter::Group(g) => facts.members(g),
            _ => &[],
        };
        let count = self
            .live_locations(key)?
            .filter(|u| match &c.filter {
                CopiesFilter::All => true,
                CopiesFilter::TrustExactly(t) => facts.trust_of(u) == *t,
                CopiesFilter::TrustAtLeast(t) => facts.trust_of(u) >= *t,
                CopiesFilter::Group(_) => members.binary_search(u).is_ok(),
            })
            .filter(|u| !self.not_present.contains(*u))
            .filter(|u| !u.is_cluster())
            .count() as i64;
        Ok(count >= c.n)
    }

    /// How many copies the key lacks for its numcopies (`approx`: the
    /// global numcopies, not the file's); `None` without a key.
    fn lacking(&mut self, approx: bool) -> Result<Option<i64>, EvalError> {
        let facts = self.d.facts;
        let Some(key) = self.key()? else {
            return Ok(None);
        };
        let numcopies = match (approx, self.subject.kind, self.subject.numcopies) {
            (false, SubjectKind::File, Some(n)) => n,
            _ => facts.numcopies_or_default(),
        } as i64;
        let have = self
            .live_locations(key)?
            .filter(|u| facts.trust_of(u) != TrustLevel::Untrusted)
            .filter(|u| !self.not_present.contains(u))
            .filter(|u| !u.is_cluster())
            .count() as i64;
        Ok(Some(numcopies.wrapping_sub(have)))
    }

    fn balanced(&mut self, b: &Balanced) -> Result<bool, EvalError> {
        // With `:lackingcopies`, the number of repositories is what the
        // key lacks, worked out for each key.
        let n = match b.lacking_copies {
            false => b.n,
            true => match self.lacking(false)? {
                Some(n) => n,
                None => return Ok(false),
            },
        };
        if !b.kind.keeps_present() || self.d.settings.rebalance {
            return self.fully_balanced(b, n);
        }
        if self.present()? {
            return Ok(true);
        }
        // Wanted only while the group lacks copies: fewer than N there, or
        // (`:lackingcopies`) fewer than numcopies anywhere.
        let enough = match b.lacking_copies {
            false => self.copies(&b.enough)?,
            true => n < 1,
        };
        if enough {
            return Ok(false);
        }
        self.fully_balanced(b, n)
    }

    fn size_of(&self, u: &Uuid) -> Option<i128> {
        self.view.and_then(|v| v.size(u))
    }

    fn fully_balanced(&mut self, b: &Balanced, n: i64) -> Result<bool, EvalError> {
        let Some(key) = self.key()? else {
            return Ok(false);
        };
        let facts = self.d.facts;
        let Some(group) = facts.groups.get(&b.group) else {
            return Ok(false);
        };
        let members = &group.members;
        let by_size = b.kind.by_size() || {
            // Rebalancing a group too full to hold N copies balances by size.
            self.d.settings.rebalance && n > 1 && {
                let threshold = self.d.settings.fully_balanced_threshold;
                let too_full = members
                    .iter()
                    .filter(|u| match (facts.maxsizes.get(*u), self.size_of(u)) {
                        (Some(0), _) => false,
                        (Some(&m), Some(s)) => s as f64 >= m as f64 * threshold,
                        _ => false,
                    })
                    .count();
                n > (members.len() - too_full) as i64
            }
        };
        let keysize = i128::from(key.size().unwrap_or(0));
        let current = self.logged(key)?;
        // Candidates as positions in the sorted member list.
        let candidates: Vec<u32> = if by_size {
            self.size_candidates(members, n, keysize, current)
        } else if facts.maxsizes.is_empty() {
            (0..members.len() as u32).collect()
        } else {
            (0..members.len() as u32)
                .filter(|&i| {
                    let u = &members[i as usize];
                    match facts.maxsizes.get(u) {
                        Some(&m) => match self.size_of(u) {
                            Some(s) => has_space(keysize, current.contains(u), s, m),
                            None => true,
                        },
                        None => true,
                    }
                })
                .collect()
        };
        let wanted = match members.binary_search(self.u) {
            Ok(me) => group.picker.picks_among(&candidates, key, n, me as u32),
            Err(_) => false,
        };
        if wanted {
            self.live_needed = true;
        }
        Ok(wanted)
    }

    /// The `n` members with the most free space in proportion to their
    /// maxsize, among those with a maxsize and room for the key, as
    /// positions in the sorted member list.
    fn size_candidates(
        &self,
        members: &[Uuid],
        n: i64,
        keysize: i128,
        current: &[Uuid],
    ) -> Vec<u32> {
        let facts = self.d.facts;
        let mut scored: Vec<(u32, f64)> = members
            .iter()
            .enumerate()
            .filter_map(|(i, u)| {
                let &max = facts.maxsizes.get(u)?;
                let size = self.size_of(u).unwrap_or(0);
                let inrepo = current.contains(u);
                if !has_space(keysize, inrepo, size, max) || max <= 0 {
                    return None;
                }
                let free = max - size + if inrepo { keysize } else { 0 };
                Some((i as u32, free as f64 / max as f64))
            })
            .collect();
        // Stable sort ascending, then the whole list reversed, as git-annex.
        scored.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        scored.reverse();
        let take = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        let mut out: Vec<u32> = scored.into_iter().take(take).map(|(i, _)| i).collect();
        out.sort_unstable();
        out
    }
}

fn has_space(keysize: i128, inrepo: bool, size: i128, max: i128) -> bool {
    if inrepo {
        size <= max
    } else {
        size + keysize <= max
    }
}

/// Whether keys of this backend are cryptographically secure, as git-annex
/// decides for its built-in backends.
fn secure(key: &Key) -> bool {
    match key.variety() {
        KeyVariety::Hash { kind, .. } => !matches!(kind, HashKind::Sha1 | HashKind::Md5),
        KeyVariety::GitBundle => true,
        _ => false,
    }
}

/// Whether the last directory of `path` is `dir` (git-annex: `dir` among
/// the components of `splitPath (takeDirectory path)`, where all but the
/// last keep their trailing slash).
fn in_dir(path: &str, dir: &str) -> bool {
    let parent = match path.rfind('/') {
        None => ".",
        Some(i) => {
            let p = path[..i].trim_end_matches('/');
            if p.is_empty() {
                "/"
            } else {
                p
            }
        }
    };
    // splitPath: pieces each ending after a run of slashes.
    let mut pieces = Vec::new();
    let mut start = 0;
    let bytes = parent.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'/' {
            let mut j = i;
            while j < bytes.len() && bytes[j] == b'/' {
                j += 1;
            }
            pieces.push(&parent[start..j]);
            start = j;
            i = j;
        } else {
            i += 1;
        }
    }
    if start < parent.len() {
        pieces.push(&parent[start..]);
    }
    pieces.contains(&dir)
}

/// git-annex's description of a run: the steps with needless parentheses
/// removed, after `prefix`; `None` when nothing was evaluated.
fn describe(steps: &[Step], prefix: &str) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let simplified = simplify(steps.to_vec(), true);
    let words: Vec<String> = simplified
        .iter()
        .map(|s| match s {
            Step::Open => "(".to_owned(),
            Step::Close => ")".to_owned(),
            Step::And => "and".to_owned(),
            Step::Or => "or".to_owned(),
            Step::Not => "not".to_owned(),
            Step::Op(d, b) => format!("{d}[{}]", if *b { "TRUE" } else { "FALSE" }),
        })
        .collect();
    Some(format!("{prefix}{}", words.join(" ")))
}

fn simplify(steps: Vec<Step>, first: bool) -> Vec<Step> {
    use Step::*;
    let mut out = Vec::with_capacity(steps.len());
    let mut rest: &[Step] = &steps;
    let owned: Vec<Step>;
    let mut first = first;
    loop {
        if first {
            first = false;
            if let [Open, tail @ ..] = rest {
                owned = if matches!(tail.last(), Some(Close)) {
                    tail[..tail.len() - 1].to_vec()
                } else {
                    tail.to_vec()
                };
                let mut more = simplify(owned, false);
                out.append(&mut more);
                return out;
            }
        }
        match rest {
            [Open, o1 @ Op(..), Or, o2 @ Op(..), Close, Or, tail @ ..] => {
                out.extend([o1.clone(), Or, o2.clone(), Or]);
                rest = tail;
            }
            [Open, o1 @ Op(..), And, o2 @ Op(..), Close, And, tail @ ..] => {
                out.extend([o1.clone(), And, o2.clone(), And]);
                rest = tail;
            }
            [Or, Open, o @ Op(..), Close, tail @ ..] => {
                out.extend([Or, o.clone()]);
                rest = tail;
            }
            [And, Open, o @ Op(..), Close, tail @ ..] => {
                out.extend([And, o.clone()]);
                rest = tail;
            }
            [Open, Not, o @ Op(..), Close, tail @ ..] => {
                out.extend([Not, o.clone()]);
                rest = tail;
            }
            [Open, Open, tail @ ..] => {
                out.push(Open);
                owned = remove_close(tail);
                let mut more = simplify(owned, false);
                out.append(&mut more);
                return out;
            }
            [v, tail @ ..] => {
                out.push(v.clone());
                rest = tail;
            }
            [] => return out,
        }
    }
}

fn remove_close(steps: &[Step]) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len());
    let mut depth = 0usize;
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Open => {
                depth += 1;
                out.push(Step::Open);
            }
            Step::Close if depth > 0 => {
                depth -= 1;
                out.push(Step::Close);
            }
            Step::Close => {
                out.extend_from_slice(&steps[i + 1..]);
                return out;
            }
            s => out.push(s.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_directory_is_the_last_directory() {
        assert!(in_dir("public/a.jpg", "public"));
        assert!(in_dir("x/public/a.jpg", "public"));
        assert!(!in_dir("public/sub/a.jpg", "public"));
        assert!(!in_dir("a.jpg", "public"));
        assert!(in_dir("x//public/a", "public"));
    }

    #[test]
    fn explanations_drop_needless_parentheses() {
        use Step::*;
        let op = |s: &str, b| Op(s.into(), b);
        // ( a or ( b and not c ) )  as git-annex traces
        // include=*.jpg or (largerthan=1mb and not copies=2)
        let steps = vec![
            Open,
            op("include=*.jpg", false),
            Or,
            Open,
            op("largerthan=1mb", true),
            And,
            Open,
            Not,
            op("copies=2", false),
            Close,
            Close,
            Close,
        ];
        assert_eq!(
            describe(&steps, "matches provided expression: ").unwrap(),
            "matches provided expression: include=*.jpg[FALSE] or ( largerthan=1mb[TRUE] and not copies=2[FALSE] )"
        );
    }
}
