//! The shape of an expression: words, the syntax tokens between them, and
//! the tree they make, with git-annex's rules (Utility/Matcher.hs).
//!
//! - Words are separated by whitespace; `(` and `)` are always words of
//!   their own. There is no quoting.
//! - Terms not joined by `and` or `or` are joined by `and`.
//! - `and` and `or` have the same precedence and group to the left:
//!   `a or b and c` is `(a or b) and c`.
//! - Parentheses are forgiving: a missing `)` is supplied at the end, an
//!   extra `)` is ignored, and syntax words out of place are skipped.

/// One word of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<Op> {
    /// A term.
    Op(Op),
    /// `and`
    And,
    /// `or`
    Or,
    /// `not`
    Not,
    /// `(`
    Open,
    /// `)`
    Close,
}

impl<Op> Token<Op> {
    /// The syntax token a word names, if it is one.
    pub fn syntax(word: &str) -> Option<Token<Op>> {
        Some(match word {
            "and" => Token::And,
            "or" => Token::Or,
            "not" => Token::Not,
            "(" => Token::Open,
            ")" => Token::Close,
            _ => return None,
        })
    }
}

/// A compiled expression tree over terms of type `Op`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher<Op> {
    /// Matches everything (the empty expression).
    Any,
    /// Both sides match; the right side is not evaluated when the left fails.
    And(Box<Matcher<Op>>, Box<Matcher<Op>>),
    /// Either side matches; the right side is not evaluated when the left matches.
    Or(Box<Matcher<Op>>, Box<Matcher<Op>>),
    /// The inner matcher does not match.
    Not(Box<Matcher<Op>>),
    /// A term.
    Op(Op),
}

pub use annex_types::haskell::is_space;

/// The most words an expression may have. git-annex has no limit; here
/// the tree is built and evaluated recursively, and a limit keeps an
/// expression from the branch (written by anyone) from exhausting the
/// stack. Real expressions have tens of words.
pub const MAX_WORDS: usize = 200;

/// Refuses an expression of more than [`MAX_WORDS`] words.
pub fn check_size(words: &[&str]) -> Result<(), String> {
    if words.len() > MAX_WORDS {
        Err(format!(
            "expression too long: {} words, more than the {MAX_WORDS} this program accepts",
            words.len()
        ))
    } else {
        Ok(())
    }
}

/// Splits an expression into words as git-annex does: at whitespace, with
/// each parenthesis a word of its own.
pub fn words(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for word in expr.split(is_space) {
        let mut start = 0;
        for (i, c) in word.char_indices() {
            if c == '(' || c == ')' {
                if i > start {
                    out.push(&word[start..i]);
                }
                out.push(&word[i..i + 1]);
                start = i + 1;
            }
        }
        if start < word.len() {
            out.push(&word[start..]);
        }
    }
    out
}

enum Group<Op> {
    One(Token<Op>),
    Many(Vec<Group<Op>>),
}

fn token_groups<Op>(
    tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token<Op>>>,
) -> Vec<Group<Op>> {
    let mut out = Vec::new();
    while let Some(t) = tokens.next() {
        match t {
            Token::Open => out.push(find_close(tokens)),
            Token::Close => {}
            t => out.push(Group::One(t)),
        }
    }
    out
}

fn find_close<Op>(tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token<Op>>>) -> Group<Op> {
    let mut inner = Vec::new();
    while let Some(t) = tokens.next() {
        match t {
            Token::Close => return Group::Many(inner),
            Token::Open => inner.push(find_close(tokens)),
            t => inner.push(Group::One(t)),
        }
    }
    Group::Many(inner)
}

fn implicit_and<Op>(groups: Vec<Group<Op>>) -> Vec<Group<Op>> {
    let needs = |g: &Group<Op>| matches!(g, Group::One(Token::Op(_)) | Group::Many(_));
    let mut out: Vec<Group<Op>> = Vec::with_capacity(groups.len());
    for g in groups {
        if let Some(prev) = out.last() {
            if needs(prev) && needs(&g) {
                out.push(Group::One(Token::And));
            }
        }
        out.push(g);
    }
    out
}

/// Builds the tree from tokens, as git-annex's `generate` does.
pub fn generate<Op>(tokens: Vec<Token<Op>>) -> Matcher<Op> {
    let mut it = tokens.into_iter().peekable();
    let groups = implicit_and(token_groups(&mut it));
    simplify(process(Matcher::Any, groups))
}

fn process<Op>(mut m: Matcher<Op>, groups: Vec<Group<Op>>) -> Matcher<Op> {
    let mut rest = groups.into_iter();
    loop {
        let (next, done) = consume(m, &mut rest);
        m = next;
        if done {
            return m;
        }
    }
}

/// Consumes one unit after `m`; returns the new matcher and whether the
/// input is exhausted.
fn consume<Op>(m: Matcher<Op>, rest: &mut std::vec::IntoIter<Group<Op>>) -> (Matcher<Op>, bool) {
    loop {
        let Some(g) = rest.next() else {
            return (m, true);
        };
        return match g {
            Group::One(Token::And) => {
                let (p, done) = consume(Matcher::Any, rest);
                (Matcher::And(Box::new(m), Box::new(p)), done)
            }
            Group::One(Token::Or) => {
                let (p, done) = consume(Matcher::Any, rest);
                (Matcher::Or(Box::new(m), Box::new(p)), done)
            }
            Group::One(Token::Not) => {
                let (p, done) = consume(Matcher::Any, rest);
                (
                    Matcher::And(Box::new(m), Box::new(Matcher::Not(Box::new(p)))),
                    done,
                )
            }
            Group::One(Token::Op(o)) => {
                (Matcher::And(Box::new(m), Box::new(Matcher::Op(o))), false)
            }
            Group::Many(g) => (process(m, g), false),
            Group::One(_) => continue,
        };
    }
}

fn simplify<Op>(m: Matcher<Op>) -> Matcher<Op> {
    match m {
        Matcher::And(a, b) => match (*a, *b) {
            (Matcher::Any, x) => simplify(x),
            (x, Matcher::Any) => simplify(x),
            (x, y) => Matcher::And(Box::new(simplify(x)), Box::new(simplify(y))),
        },
        Matcher::Or(a, b) => Matcher::Or(Box::new(simplify(*a)), Box::new(simplify(*b))),
        Matcher::Not(a) => Matcher::Not(Box::new(simplify(*a))),
        x => x,
    }
}

impl<Op> Matcher<Op> {
    /// Whether the matcher has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        matches!(self, Matcher::Any)
    }

    /// Every term, left to right.
    pub fn ops(&self) -> Vec<&Op> {
        let mut out = Vec::new();
        self.visit(&mut |o, _| out.push(o), false);
        out
    }

    /// Every term with whether it sits under an odd number of `not`s.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Op, bool), negated: bool) {
        match self {
            Matcher::Any => {}
            Matcher::And(a, b) | Matcher::Or(a, b) => {
                a.visit(f, negated);
                b.visit(f, negated);
            }
            Matcher::Not(a) => a.visit(f, !negated),
            Matcher::Op(o) => f(o, negated),
        }
    }

    /// Whether any term satisfies `pred`.
    pub fn any(&self, pred: &impl Fn(&Op) -> bool) -> bool {
        match self {
            Matcher::Any => false,
            Matcher::And(a, b) | Matcher::Or(a, b) => a.any(pred) || b.any(pred),
            Matcher::Not(a) => a.any(pred),
            Matcher::Op(o) => pred(o),
        }
    }

    /// Evaluates with short-circuits, as git-annex does, calling `run` for
    /// each term reached.
    pub fn eval<E>(&self, run: &mut impl FnMut(&Op) -> Result<bool, E>) -> Result<bool, E> {
        Ok(match self {
            Matcher::Any => true,
            Matcher::And(a, b) => a.eval(run)? && b.eval(run)?,
            Matcher::Or(a, b) => a.eval(run)? || b.eval(run)?,
            Matcher::Not(a) => !a.eval(run)?,
            Matcher::Op(o) => run(o)?,
        })
    }
}

/// A string as Haskell's `show` writes it: in double quotes, with
/// non-ASCII characters as decimal escapes (`"foo\233"`).
pub fn haskell_show(s: &str) -> String {
    const NAMES: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a", "b", "t", "n", "v", "f", "r", "SO",
        "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
        "FS", "GS", "RS", "US",
    ];
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut prev_numeric = false;
    let mut prev_so = false;
    for c in s.chars() {
        if prev_numeric && c.is_ascii_digit() || prev_so && c == 'H' {
            out.push_str("\\&");
        }
        prev_numeric = false;
        prev_so = false;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7F}' => out.push_str("\\DEL"),
            c if (c as u32) < 32 => {
                out.push('\\');
                out.push_str(NAMES[c as usize]);
                prev_so = c == '\u{0E}';
            }
            c if (c as u32) > 127 => {
                out.push('\\');
                out.push_str(&(c as u32).to_string());
                prev_numeric = true;
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token<String>> {
        words(s)
            .into_iter()
            .map(|w| Token::syntax(w).unwrap_or_else(|| Token::Op(w.to_string())))
            .collect()
    }

    fn eval_bools(s: &str) -> bool {
        generate(toks(s))
            .eval::<()>(&mut |o: &String| Ok(o == "T"))
            .unwrap()
    }

    #[test]
    fn words_split_parentheses() {
        assert_eq!(words(" a(b) or\tc "), vec!["a", "(", "b", ")", "or", "c"]);
        assert_eq!(words("((x"), vec!["(", "(", "x"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn git_annex_evaluation_examples() {
        // From git-annex's prop_matcher_sane.
        for s in [
            "T",
            "",
            "F or T or F",
            "T or T",
            "T and T",
            "not ( T and F )",
            "not ( not ( not F ) )",
            "not ( not ( not ( not T ) ) )",
            "T and not F",
            "T not F",
            "T not not not F",
            "T not not not F and T",
            "T not not not F T",
            "not ( T and F ) and ( ( T and F ) or ( T and ( not F ) ) ) and ( not F )",
        ] {
            assert!(eval_bools(s), "{s}");
        }
    }

    #[test]
    fn same_trees() {
        for (a, b) in [
            ("foo ( bar or baz )", "foo and ( bar or baz )"),
            ("foo not ( bar or baz )", "foo and not ( bar or baz )"),
            ("( bar or baz ) foo", "( bar or baz ) and foo"),
            ("( bar or baz ) not foo", "( bar or baz ) and not foo"),
            ("foo bar", "foo and bar"),
            ("foo not bar", "foo and not bar"),
        ] {
            assert_eq!(generate(toks(a)), generate(toks(b)));
        }
    }

    #[test]
    fn left_grouping_and_forgiving_parens() {
        // a or b and c is (a or b) and c
        assert!(!eval_bools("T or T and F"));
        assert!(eval_bools("F and F or T"));
        assert!(eval_bools("T and ( F or T"));
        assert!(eval_bools("T and ( F or T ) )"));
        assert!(eval_bools(")"));
        assert!(eval_bools("("));
        assert!(eval_bools("and"));
    }

    #[test]
    fn shows_strings_as_haskell() {
        assert_eq!(haskell_show("bogus=1"), "\"bogus=1\"");
        assert_eq!(haskell_show("fooé"), "\"foo\\233\"");
        assert_eq!(haskell_show("é1"), "\"\\233\\&1\"");
        assert_eq!(haskell_show("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(haskell_show("\u{0E}H"), "\"\\SO\\&H\"");
        assert_eq!(haskell_show("\u{1}"), "\"\\SOH\"");
    }
}
