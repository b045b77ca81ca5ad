//! A parsed expression, before it is compiled for a repository.

use std::fmt;

use crate::syntax::{generate, words, Matcher};
use crate::term::{parse_word, Word};

/// An expression git-annex would refuse, with git-annex's words for why:
/// each word it could not read, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// Why each refused word was refused (`near "bogus=1"`, `bad size`).
    pub failures: Vec<String>,
}

impl fmt::Display for ParseError {
    /// `Parse failure: A Parse failure: B`, as git-annex writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "Parse failure: {e}")?;
        }
        Ok(())
    }
}

/// A preferred content expression, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    tree: Matcher<Word>,
}

impl Expression {
    /// Parses an expression as git-annex parses preferred content.
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        let mut tokens = Vec::new();
        let mut failures = Vec::new();
        let words = words(source);
        if let Err(e) = crate::syntax::check_size(&words) {
            return Err(ParseError { failures: vec![e] });
        }
        for w in words {
            match parse_word(w) {
                Ok(t) => tokens.push(t),
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            return Err(ParseError { failures });
        }
        Ok(Expression {
            source: source.to_owned(),
            tree: generate(tokens),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The tree of terms.
    pub fn tree(&self) -> &Matcher<Word> {
        &self.tree
    }

    /// Whether the expression has no terms.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Checks that git-annex would accept an expression as preferred or
/// required content (what `git annex wanted` checks before it writes).
pub fn check_expression(source: &str) -> Result<(), ParseError> {
    Expression::parse(source).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_collected_in_order() {
        let e = Expression::parse("bogus=1 or copies=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parse failure: near \"bogus=1\" Parse failure: bad number for copies"
        );
        assert!(Expression::parse("include=*.png and and").is_ok());
        assert!(Expression::parse("(").is_ok());
    }
}
