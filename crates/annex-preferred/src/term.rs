//! The terms of a preferred content expression and how each word is read
//! (git-annex's Annex/FileMatcher.hs preferredContentTokens and Limit.hs).

use std::fmt;

use annex_branch::logs::readish::read_int;
use annex_branch::logs::trust::TrustLevel;

use crate::glob::Glob;
use crate::metadata::MetaDataMatcher;
use crate::syntax::{haskell_show, Token};

/// Which repositories a `copies=` term counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopiesFilter {
    /// `copies=N`: every repository.
    All,
    /// `copies=LEVEL:N`: repositories at exactly that trust level.
    TrustExactly(TrustLevel),
    /// `copies=LEVEL+:N`: repositories at that trust level or more trusted.
    TrustAtLeast(TrustLevel),
    /// `copies=GROUP:N`: repositories in the group.
    Group(String),
}

/// A `copies=` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copies {
    /// Which repositories count.
    pub filter: CopiesFilter,
    /// How many are needed.
    pub n: i64,
}

/// Which of the balanced terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancedKind {
    /// `balanced=`
    Balanced,
    /// `fullybalanced=`
    FullyBalanced,
    /// `sizebalanced=`
    SizeBalanced,
    /// `fullysizebalanced=`
    FullySizeBalanced,
}

impl BalancedKind {
    /// The term's name.
    pub fn name(self) -> &'static str {
        match self {
            BalancedKind::Balanced => "balanced",
            BalancedKind::FullyBalanced => "fullybalanced",
            BalancedKind::SizeBalanced => "sizebalanced",
            BalancedKind::FullySizeBalanced => "fullysizebalanced",
        }
    }

    /// Whether this is one of the two that keep what is present
    /// (`balanced`, `sizebalanced`).
    pub fn keeps_present(self) -> bool {
        matches!(self, BalancedKind::Balanced | BalancedKind::SizeBalanced)
    }

    /// Whether repositories are chosen by free space rather than by hash.
    pub fn by_size(self) -> bool {
        matches!(
            self,
            BalancedKind::SizeBalanced | BalancedKind::FullySizeBalanced
        )
    }
}

/// A balanced term: `KIND=GROUP[:N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balanced {
    /// Which term.
    pub kind: BalancedKind,
    /// The group balanced over.
    pub group: String,
    /// How many repositories of the group get each key (when not
    /// `lacking_copies`).
    pub n: i64,
    /// `KIND=GROUP:lackingcopies` (git-annex 10.20250520): as many
    /// repositories as the key lacks copies for its numcopies.
    pub lacking_copies: bool,
    /// For `balanced` and `sizebalanced`: the copies term that says the
    /// group already has enough (`copies=GROUP:N`).
    pub enough: Copies,
}

/// One term of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `anything`
    Anything,
    /// `nothing`
    Nothing,
    /// `include=GLOB`
    Include(Glob),
    /// `exclude=GLOB`
    Exclude(Glob),
    /// `largerthan=SIZE`
    LargerThan(i128),
    /// `smallerthan=SIZE`
    SmallerThan(i128),
    /// `unused`
    Unused,
    /// `standard`: the standard group's expression.
    Standard,
    /// `groupwanted`: the group's preferred content.
    GroupWanted,
    /// `inpreferreddir`
    InPreferredDir,
    /// `present`
    Present,
    /// `securehash`
    SecureHash,
    /// `copies=...`
    Copies(Copies),
    /// `lackingcopies=N` (`approx`: `approxlackingcopies=N`)
    LackingCopies {
        /// `approxlackingcopies`
        approx: bool,
        /// How many copies must be lacking.
        n: i64,
    },
    /// `inbackend=NAME`
    InBackend(String),
    /// `metadata=...`
    MetaData(MetaDataMatcher),
    /// `inallgroup=GROUP`
    InAllGroup(String),
    /// `onlyingroup=GROUP`
    OnlyInGroup(String),
    /// The balanced family.
    Balanced(Balanced),
    /// `url=GLOB` (git-annex 10.20250721): the content is recorded as
    /// present at a URL that matches.
    Url(Glob),
}

/// A term as it was written, with what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as written.
    pub text: String,
    /// What it means.
    pub term: Term,
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl Word {
    /// How git-annex names the term when it explains a decision
    /// (`lackingcopies` without its number, the others as written).
    pub fn describe(&self) -> &str {
        match &self.term {
            Term::LackingCopies { approx: false, .. } => "lackingcopies",
            Term::LackingCopies { approx: true, .. } => "approxlackingcopies",
            _ => &self.text,
        }
    }

    /// Whether `not TERM` cannot be used in preferred content: git-annex
    /// refuses to act on an expression with `present`, or a term built on
    /// it, under a `not` (its answer would flip once acted on).
    pub fn negation_unstable(&self) -> bool {
        match &self.term {
            Term::Present => true,
            Term::Balanced(b) => b.kind.keeps_present(),
            _ => false,
        }
    }

    /// Whether the term depends on repository sizes.
    pub fn needs_sizes(&self) -> bool {
        matches!(self.term, Term::Balanced(_))
    }
}

/// Reads a trust level as git-annex names it.
pub fn read_trust_level(s: &str) -> Option<TrustLevel> {
    Some(match s {
        "trusted" => TrustLevel::Trusted,
        "untrusted" => TrustLevel::Untrusted,
        "semitrusted" => TrustLevel::Semitrusted,
        "dead" => TrustLevel::Dead,
        _ => return None,
    })
}

/// git-annex's `readish` for an `Int`: the leading number, the rest ignored.
fn readish(s: &str) -> Option<i64> {
    read_int(s.as_bytes())
}

/// Parses the value of a `copies=` term.
pub fn parse_copies(want: &str) -> Result<Copies, String> {
    let parts: Vec<&str> = want.split(':').collect();
    let (filter, num) = match parts.as_slice() {
        [v, n] => {
            // A group named like a trust level is read as the trust level.
            let filter = match v.strip_suffix('+') {
                Some(level) => read_trust_level(level).map(CopiesFilter::TrustAtLeast),
                None => read_trust_level(v).map(CopiesFilter::TrustExactly),
            }
            .unwrap_or_else(|| CopiesFilter::Group((*v).to_owned()));
            (filter, *n)
        }
        [n] => (CopiesFilter::All, *n),
        _ => return Err("bad value for copies".into()),
    };
    let n = readish(num).ok_or("bad number for copies")?;
    Ok(Copies { filter, n })
}

fn parse_balanced(kind: BalancedKind, want: &str) -> Result<Balanced, String> {
    let name = kind.name();
    let parts: Vec<&str> = want.split(':').collect();
    let (group, n) = match parts.as_slice() {
        [g] => (*g, 1),
        [g, "lackingcopies"] => {
            return Ok(Balanced {
                kind,
                group: (*g).to_owned(),
                n: 1,
                lacking_copies: true,
                // Not used: lackingcopies=1 says whether the group has
                // enough.
                enough: Copies {
                    filter: CopiesFilter::Group((*g).to_owned()),
                    n: 1,
                },
            });
        }
        [g, n] => (
            *g,
            readish(n).ok_or_else(|| format!("bad number for {name}"))?,
        ),
        _ => return Err(format!("bad value for {name}")),
    };
    let enough = parse_copies(&if want.contains(':') {
        want.to_owned()
    } else {
        format!("{want}:1")
    })?;
    Ok(Balanced {
        kind,
        group: group.to_owned(),
        n,
        lacking_copies: false,
        enough,
    })
}

/// Reads one word of a preferred content expression: a syntax word or a
/// term. The error is git-annex's text for the word.
pub fn parse_word(word: &str) -> Result<Token<Word>, String> {
    if let Some(t) = Token::syntax(word) {
        return Ok(t);
    }
    let simple = match word {
        "standard" => Some(Term::Standard),
        "groupwanted" => Some(Term::GroupWanted),
        "inpreferreddir" => Some(Term::InPreferredDir),
        "present" => Some(Term::Present),
        "securehash" => Some(Term::SecureHash),
        "anything" => Some(Term::Anything),
        "nothing" => Some(Term::Nothing),
        "unused" => Some(Term::Unused),
        _ => None,
    };
    let term = match simple {
        Some(t) => t,
        None => {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            match k {
                "copies" => Term::Copies(parse_copies(v)?),
                "lackingcopies" | "approxlackingcopies" => Term::LackingCopies {
                    approx: k == "approxlackingcopies",
                    n: readish(v).ok_or("bad value for number of lacking copies")?,
                },
                "inbackend" => Term::InBackend(v.to_owned()),
                "metadata" => Term::MetaData(MetaDataMatcher::parse(v)?),
                "inallgroup" => Term::InAllGroup(v.to_owned()),
                "onlyingroup" => Term::OnlyInGroup(v.to_owned()),
                "balanced" => Term::Balanced(parse_balanced(BalancedKind::Balanced, v)?),
                "fullybalanced" => Term::Balanced(parse_balanced(BalancedKind::FullyBalanced, v)?),
                "sizebalanced" => Term::Balanced(parse_balanced(BalancedKind::SizeBalanced, v)?),
                "fullysizebalanced" => {
                    Term::Balanced(parse_balanced(BalancedKind::FullySizeBalanced, v)?)
                }
                "url" => Term::Url(Glob::new_url(v)),
                "include" => Term::Include(Glob::new(v)),
                "exclude" => Term::Exclude(Glob::new(v)),
                "largerthan" => {
                    Term::LargerThan(annex_types::size::read_size(v).ok_or("bad size")?)
                }
                "smallerthan" => {
                    Term::SmallerThan(annex_types::size::read_size(v).ok_or("bad size")?)
                }
                _ => return Err(format!("near {}", haskell_show(word))),
            }
        }
    };
    Ok(Token::Op(Word {
        text: word.to_owned(),
        term,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(w: &str) -> String {
        parse_word(w).unwrap_err()
    }

    #[test]
    fn errors_as_git_annex_words_them() {
        assert_eq!(err("bogus=1"), "near \"bogus=1\"");
        assert_eq!(err("anything=1"), "near \"anything=1\"");
        assert_eq!(err("copies=x"), "bad number for copies");
        assert_eq!(err("copies"), "bad number for copies");
        assert_eq!(err("copies=a:b:c"), "bad value for copies");
        assert_eq!(
            err("lackingcopies=x"),
            "bad value for number of lacking copies"
        );
        assert_eq!(err("largerthan=1xyz"), "bad size");
        assert_eq!(err("balanced=g:x"), "bad number for balanced");
        assert_eq!(err("balanced=g:1:2"), "bad value for balanced");
        assert_eq!(
            err("sizebalanced=g:lackingcopie"),
            "bad number for sizebalanced"
        );
        assert_eq!(
            err("fullysizebalanced=g:x"),
            "bad number for fullysizebalanced"
        );
    }

    #[test]
    fn newer_terms_read() {
        for kind in [
            "balanced",
            "fullybalanced",
            "sizebalanced",
            "fullysizebalanced",
        ] {
            match parse_word(&format!("{kind}=g:lackingcopies")).unwrap() {
                Token::Op(w) => match w.term {
                    Term::Balanced(b) => {
                        assert!(b.lacking_copies, "{kind}");
                        assert_eq!(b.group, "g");
                    }
                    _ => panic!(),
                },
                _ => panic!(),
            }
        }
        match parse_word("url=https://example.org/*").unwrap() {
            Token::Op(w) => assert!(matches!(w.term, Term::Url(_))),
            _ => panic!(),
        }
    }

    #[test]
    fn terms_read() {
        assert!(parse_word("include").is_ok());
        assert!(parse_word("copies=2abc").is_ok());
        match parse_word("copies=trusted+:2").unwrap() {
            Token::Op(w) => assert_eq!(
                w.term,
                Term::Copies(Copies {
                    filter: CopiesFilter::TrustAtLeast(TrustLevel::Trusted),
                    n: 2
                })
            ),
            _ => panic!(),
        }
        match parse_word("balanced=nodes").unwrap() {
            Token::Op(w) => match w.term {
                Term::Balanced(b) => {
                    assert_eq!(b.group, "nodes");
                    assert_eq!(b.n, 1);
                    assert_eq!(b.enough.filter, CopiesFilter::Group("nodes".into()));
                }
                _ => panic!(),
            },
            _ => panic!(),
        }
    }
}
