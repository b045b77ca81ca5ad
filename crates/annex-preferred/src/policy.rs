//! Expressions compiled for one repository: `standard` and `groupwanted`
//! expanded as git-annex expands them (Annex/FileMatcher.hs makeMatcher),
//! preferred and required content combined, and an expression that cannot
//! be read replaced by `present` (Logs/PreferredContent.hs), so that a
//! repository whose configuration came from a newer git-annex keeps what
//! it has and asks for nothing more.

use std::collections::BTreeMap;

use annex_types::Uuid;

use crate::facts::Facts;
use crate::standard::standard_group_of;
use crate::syntax::{generate, words, Matcher, Token};
use crate::term::{parse_word, Term, Word};

/// A node of a compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A term.
    Term(Word),
    /// `standard` or `groupwanted`, with the expression it stands for.
    Call {
        /// `standard` or `groupwanted`.
        name: &'static str,
        /// The expression it expands to.
        inner: Box<Matcher<Node>>,
    },
}

impl Node {
    fn any_term(&self, pred: &impl Fn(&Word) -> bool) -> bool {
        match self {
            Node::Term(w) => pred(w),
            Node::Call { inner, .. } => inner.any(&|n: &Node| n.any_term(pred)),
        }
    }

    /// How git-annex names the node when explaining a decision.
    pub fn describe(&self) -> &str {
        match self {
            Node::Term(w) => w.describe(),
            Node::Call { name, .. } => name,
        }
    }
}

/// What `standard` and `groupwanted` mean while compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// For a repository: its standard group's expression and its group's
    /// preferred content.
    Repository,
    /// As `git annex matchexpression` reads them: both match anything.
    MatchAll,
}

/// An expression compiled for one repository.
#[derive(Debug, Clone)]
pub struct Policy {
    uuid: Uuid,
    tree: Matcher<Node>,
    description: &'static str,
    unreadable: Option<String>,
    /// Worked out once, read by every decision.
    needs_sizes: bool,
    unstable: std::sync::Arc<[String]>,
}

fn present() -> Matcher<Node> {
    Matcher::Op(Node::Term(Word {
        text: "present".into(),
        term: Term::Present,
    }))
}

fn compile_expr(
    facts: &Facts,
    u: &Uuid,
    expr: &str,
    standard: bool,
    groupwanted: bool,
    expansion: Expansion,
) -> Result<Matcher<Node>, Vec<String>> {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    let words = words(expr);
    crate::syntax::check_size(&words).map_err(|e| vec![e])?;
    for w in words {
        let tok = match parse_word(w) {
            Err(e) => Err(e),
            Ok(Token::Op(word)) => match word.term {
                Term::Standard | Term::GroupWanted => {
                    let name = if word.term == Term::Standard {
                        "standard"
                    } else {
                        "groupwanted"
                    };
                    expand(facts, u, name, standard, groupwanted, expansion)
                        .map(|inner| {
                            Token::Op(Node::Call {
                                name,
                                inner: Box::new(inner),
                            })
                        })
                        .map_err(|e| e.join(" "))
                }
                _ => Ok(Token::Op(Node::Term(word))),
            },
            Ok(Token::And) => Ok(Token::And),
            Ok(Token::Or) => Ok(Token::Or),
            Ok(Token::Not) => Ok(Token::Not),
            Ok(Token::Open) => Ok(Token::Open),
            Ok(Token::Close) => Ok(Token::Close),
        };
        match tok {
            Ok(t) => tokens.push(t),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(generate(tokens))
    } else {
        Err(errors)
    }
}

fn expand(
    facts: &Facts,
    u: &Uuid,
    name: &str,
    standard: bool,
    groupwanted: bool,
    expansion: Expansion,
) -> Result<Matcher<Node>, Vec<String>> {
    if expansion == Expansion::MatchAll {
        return Ok(Matcher::Any);
    }
    let groups = facts.groups_of.get(u);
    if name == "standard" {
        if !standard {
            return Ok(present());
        }
        match groups.and_then(standard_group_of) {
            Some(g) => compile_expr(facts, u, &g.expression(), false, false, expansion),
            None => Ok(present()),
        }
    } else {
        if !groupwanted {
            return Ok(present());
        }
        let wanted: Vec<&String> = groups
            .map(|gs| {
                facts
                    .group_wanted
                    .iter()
                    .filter(|(g, _)| gs.contains(*g))
                    .map(|(_, e)| e)
                    .collect()
            })
            .unwrap_or_default();
        match wanted.as_slice() {
            [e] => compile_expr(facts, u, e, true, false, expansion),
            _ => Ok(present()),
        }
    }
}

impl Policy {
    /// Compiles an expression for repository `u`. An expression that
    /// cannot be read becomes `present`, with the reason kept
    /// ([`Policy::unreadable`]).
    pub fn compile(facts: &Facts, u: &Uuid, expr: &str, description: &'static str) -> Policy {
        Policy::compile_with(facts, u, expr, description, Expansion::Repository)
    }

    /// Compiles with a choice of what `standard` and `groupwanted` mean.
    pub fn compile_with(
        facts: &Facts,
        u: &Uuid,
        expr: &str,
        description: &'static str,
        expansion: Expansion,
    ) -> Policy {
        match compile_expr(facts, u, expr, true, true, expansion) {
            Ok(tree) => Policy::build(u.clone(), tree, description, None),
            Err(errors) => Policy::build(
                u.clone(),
                present(),
                description,
                Some(
                    errors
                        .iter()
                        .map(|e| format!("Parse failure: {e}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ),
        }
    }

    /// Compiles an expression strictly: an error where it cannot be read.
    pub fn compile_strict(
        facts: &Facts,
        u: &Uuid,
        expr: &str,
        description: &'static str,
        expansion: Expansion,
    ) -> Result<Policy, crate::ParseError> {
        let tree = compile_expr(facts, u, expr, true, true, expansion)
            .map_err(|failures| crate::ParseError { failures })?;
        Ok(Policy::build(u.clone(), tree, description, None))
    }

    fn build(
        uuid: Uuid,
        tree: Matcher<Node>,
        description: &'static str,
        unreadable: Option<String>,
    ) -> Policy {
        let needs_sizes = tree.any(&|n: &Node| n.any_term(&|w: &Word| w.needs_sizes()));
        let mut unstable: Vec<String> = Vec::new();
        tree.visit(
            &mut |n: &Node, negated| {
                if negated && n.any_term(&|w: &Word| w.negation_unstable()) {
                    let d = n.describe().to_owned();
                    if !unstable.contains(&d) {
                        unstable.push(d);
                    }
                }
            },
            false,
        );
        Policy {
            uuid,
            tree,
            description,
            unreadable,
            needs_sizes,
            unstable: unstable.into(),
        }
    }

    /// The repository the policy is for.
    pub fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    /// The compiled tree.
    pub fn tree(&self) -> &Matcher<Node> {
        &self.tree
    }

    /// `preferred content`, `required content` or `provided expression`.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Why the configured expression could not be read, when it could
    /// not (the policy is then `present`).
    pub fn unreadable(&self) -> Option<&str> {
        self.unreadable.as_deref()
    }

    /// Whether the expression has no terms (git-annex then uses the
    /// caller's default).
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Whether some term depends on repository sizes.
    pub fn needs_sizes(&self) -> bool {
        self.needs_sizes
    }

    /// The negated terms that make git-annex refuse to use the expression
    /// (`not present` and terms built on `present`), as it names them.
    pub fn unstable_negations(&self) -> &[String] {
        &self.unstable
    }

    fn combine(pc: Policy, rc: &Policy) -> Policy {
        let tree = if pc.tree.is_empty() {
            rc.tree.clone()
        } else if rc.tree.is_empty() {
            pc.tree
        } else {
            Matcher::Or(Box::new(pc.tree), Box::new(rc.tree.clone()))
        };
        Policy::build(pc.uuid, tree, pc.description, pc.unreadable)
    }
}

/// The preferred and required content of every repository that has any.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    preferred: BTreeMap<Uuid, Policy>,
    required: BTreeMap<Uuid, Policy>,
}

impl Policies {
    /// Compiles every repository's expressions. Required content is also
    /// preferred: a repository's preferred policy is its preferred
    /// expression or its required one.
    pub fn compile(facts: &Facts) -> Policies {
        let mut required = BTreeMap::new();
        let mut required_raw = BTreeMap::new();
        for (u, e) in &facts.required {
            let p = Policy::compile_strict(facts, u, e, "required content", Expansion::Repository);
            required_raw.insert(u.clone(), p.clone());
            required.insert(
                u.clone(),
                p.unwrap_or_else(|_| Policy::compile(facts, u, e, "required content")),
            );
        }
        let mut preferred = BTreeMap::new();
        for (u, e) in &facts.preferred {
            let pc =
                Policy::compile_strict(facts, u, e, "preferred content", Expansion::Repository);
            let combined = match (pc, required_raw.get(u)) {
                (Ok(pc), Some(Ok(rc))) => Policy::combine(pc, rc),
                (Ok(pc), None) => pc,
                _ => {
                    let mut p = Policy::compile(facts, u, e, "preferred content");
                    if p.unreadable.is_none() {
                        p = Policy::build(
                            p.uuid,
                            present(),
                            p.description,
                            required.get(u).and_then(|r: &Policy| r.unreadable.clone()),
                        );
                    }
                    p
                }
            };
            preferred.insert(u.clone(), combined);
        }
        for (u, rc) in &required {
            if !preferred.contains_key(u) {
                let mut p = rc.clone();
                p.description = "preferred content";
                preferred.insert(u.clone(), p);
            }
        }
        Policies {
            preferred,
            required,
        }
    }

    /// A repository's preferred content (required content included).
    pub fn preferred(&self, u: &Uuid) -> Option<&Policy> {
        self.preferred.get(u)
    }

    /// A repository's required content.
    pub fn required(&self, u: &Uuid) -> Option<&Policy> {
        self.required.get(u)
    }

    /// Every repository with preferred content, with its policy.
    pub fn all_preferred(&self) -> impl Iterator<Item = (&Uuid, &Policy)> {
        self.preferred.iter()
    }

    /// Warnings for expressions that could not be read, as
    /// `(repository, policy description, reason)`.
    pub fn warnings(&self) -> Vec<(&Uuid, &'static str, &str)> {
        self.preferred
            .values()
            .chain(self.required.values())
            .filter_map(|p| p.unreadable().map(|r| (&p.uuid, p.description, r)))
            .collect()
    }
}
