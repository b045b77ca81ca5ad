//! File name globs as git-annex matches them (Utility/Glob.hs).
//!
//! git-annex turns a glob into a POSIX regular expression anchored at both
//! ends: `*` is any run of characters, `/` included; `?` is one
//! character; `[...]` and `[!...]` are bracket expressions; a `/` matches
//! one or more `/`; letters and digits stand for themselves and every other
//! character is escaped. A few escapes mean something to git-annex's regex
//! engine: `` \` `` and `\'` are the start and end of the text, `\<` and
//! `\>` the start and end of a word, so a glob holding one of `` ` ' < > ``
//! matches as git-annex's does, however odd. The engine also works line by
//! line: a path holding a newline matches when one of its lines does.
//! Matching is case-sensitive.
//!
//! A glob whose regex would not compile (an unclosed `[`) is accepted when
//! the expression is parsed and fails when it is first used, as in
//! git-annex.

use std::fmt;

/// A compiled glob.
#[derive(Clone)]
pub struct Glob {
    source: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// `*`: anything.
    Any,
    /// No special characters: the whole name.
    Exact(String),
    /// `*LITERAL`
    Suffix(String),
    /// `LITERAL*`
    Prefix(String),
    /// `*LITERAL*`
    Contains(String),
    Regex(regex::Regex),
    /// The regex git-annex would build does not compile.
    Invalid(String),
}

/// A glob that cannot be used, with the regex git-annex would have built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to compile regex: {0}")]
pub struct GlobError(pub String);

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.source == other.source
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || ".-_ ,+=@%~#:;!&$".contains(c))
}

impl Glob {
    /// Compiles a glob for file paths.
    pub fn new(glob: &str) -> Glob {
        let kind = if glob == "*" {
            Kind::Any
        } else if is_plain(glob) {
            Kind::Exact(glob.to_owned())
        } else if let Some(rest) = glob.strip_prefix('*').filter(|r| is_plain(r)) {
            Kind::Suffix(rest.to_owned())
        } else if let Some(rest) = glob.strip_suffix('*').filter(|r| is_plain(r)) {
            Kind::Prefix(rest.to_owned())
        } else if let Some(mid) = glob
            .strip_prefix('*')
            .and_then(|r| r.strip_suffix('*'))
            .filter(|r| is_plain(r))
        {
            Kind::Contains(mid.to_owned())
        } else {
            match translate(glob, true) {
                Ok(re) => match regex::Regex::new(&re) {
                    Ok(r) => Kind::Regex(r),
                    Err(_) => Kind::Invalid(posix_regex(glob, true)),
                },
                Err(()) => Kind::Invalid(posix_regex(glob, true)),
            }
        };
        Glob {
            source: glob.to_owned(),
            kind,
        }
    }

    /// Compiles a glob as git-annex does for a metadata value
    /// (`metadata=FIELD=GLOB`): case-insensitive, and not a file path, so a
    /// `/` or `\\` is only that character.
    pub fn new_metadata(glob: &str) -> Glob {
        let invalid = || Kind::Invalid(posix_regex(glob, false));
        let kind = match translate(glob, false) {
            Ok(re) => {
                regex::Regex::new(&format!("(?i){re}")).map_or_else(|_| invalid(), Kind::Regex)
            }
            Err(()) => invalid(),
        };
        Glob {
            source: glob.to_owned(),
            kind,
        }
    }

    /// Compiles a glob as git-annex does for a URL (`url=GLOB`):
    /// case-sensitive, and not a file path, so a `/` is only that
    /// character.
    pub fn new_url(glob: &str) -> Glob {
        let invalid = || Kind::Invalid(posix_regex(glob, false));
        let kind = match translate(glob, false) {
            Ok(re) => regex::Regex::new(&re).map_or_else(|_| invalid(), Kind::Regex),
            Err(()) => invalid(),
        };
        Glob {
            source: glob.to_owned(),
            kind,
        }
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the glob could be used; git-annex fails when it is.
    pub fn check(&self) -> Result<(), GlobError> {
        match &self.kind {
            Kind::Invalid(r) => Err(GlobError(r.clone())),
            _ => Ok(()),
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> Result<bool, GlobError> {
        Ok(match &self.kind {
            Kind::Any => true,
            // git-annex's regex engine matches line by line: `^` and `$`
            // are line boundaries and `.` stops at a newline.
            Kind::Exact(s) => path.split('\n').any(|l| l == s),
            Kind::Suffix(s) => path.split('\n').any(|l| l.ends_with(s.as_str())),
            Kind::Prefix(s) => path.split('\n').any(|l| l.starts_with(s.as_str())),
            Kind::Contains(s) => path.split('\n').any(|l| l.contains(s.as_str())),
            Kind::Regex(r) => r.is_match(path),
            Kind::Invalid(r) => return Err(GlobError(r.clone())),
        })
    }
}

/// The POSIX regex git-annex builds from a glob (for messages); with
/// `file_path`, a `/` or `\\` matches a run of them.
fn posix_regex(glob: &str, file_path: bool) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    let mut in_bracket = false;
    while let Some(c) = chars.next() {
        if in_bracket {
            match c {
                ']' => {
                    out.push(']');
                    in_bracket = false;
                }
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
            continue;
        }
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                in_bracket = true;
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push_str("[^");
                } else {
                    out.push('[');
                }
            }
            '/' if file_path => out.push_str("[/]+"),
            '\\' if file_path => out.push_str("[\\]+"),
            c if c.is_alphanumeric() => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out.push('$');
    out
}

/// Translates a glob into a Rust regex with the meaning git-annex's POSIX
/// regex has: git-annex's regex text is built first, then read by POSIX
/// rules. Fails where git-annex's regex would not compile.
fn translate(glob: &str, file_path: bool) -> Result<String, ()> {
    let text: Vec<char> = posix_regex(glob, file_path).chars().collect();
    let mut out = String::from("(?m)");
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        match c {
            '^' | '$' | '.' | '*' | '+' => out.push(c),
            '\\' => {
                let e = *text.get(i).ok_or(())?;
                i += 1;
                match e {
                    '`' => out.push_str("\\A"),
                    '\'' => out.push_str("\\z"),
                    '<' => out.push_str("\\b{start}"),
                    '>' => out.push_str("\\b{end}"),
                    e => push_literal(&mut out, e),
                }
            }
            '[' => {
                let (class, next) = bracket(&text, i)?;
                out.push_str(&class);
                i = next;
            }
            c => push_literal(&mut out, c),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Reads a POSIX bracket expression whose text starts at `i` (after the
/// `[`); returns it as a Rust class and the index after its `]`.
fn bracket(text: &[char], mut i: usize) -> Result<(String, usize), ()> {
    let negate = text.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    // A negated class never matches a newline: git-annex's engine works
    // line by line.
    let mut out = String::from(if negate { "[^\\n" } else { "[" });
    let mut first = true;
    loop {
        let c = *text.get(i).ok_or(())?;
        if c == ']' && !first {
            out.push(']');
            return Ok((out, i + 1));
        }
        first = false;
        if c == '[' && matches!(text.get(i + 1), Some(':' | '.' | '=')) {
            let kind = text[i + 1];
            let rest: String = text[i + 2..].iter().collect();
            let end = rest.find(&format!("{kind}]")).ok_or(())?;
            let name = &rest[..end];
            const CLASSES: [&str; 12] = [
                "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
                "space", "upper", "xdigit",
            ];
            match kind {
                ':' if CLASSES.contains(&name) => out.push_str(&format!("[:{name}:]")),
                '.' | '=' if name.chars().count() == 1 => {
                    push_class_char(&mut out, name.chars().next().unwrap_or(' '))
                }
                _ => return Err(()),
            }
            i += 2 + name.chars().count() + 2;
            continue;
        }
        if text.get(i + 1) == Some(&'-') && text.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = text[i + 2];
            if hi < c {
                return Err(());
            }
            push_class_char(&mut out, c);
            out.push('-');
            push_class_char(&mut out, hi);
            i += 3;
            continue;
        }
        push_class_char(&mut out, c);
        i += 1;
    }
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_alphanumeric() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(g: &str, p: &str) -> bool {
        Glob::new(g).matches(p).unwrap()
    }

    #[test]
    fn star_crosses_directories() {
        assert!(m("*.jpg", "a/b/c.jpg"));
        assert!(m("*", "a/b"));
        assert!(m("*/archive/*", "x/archive/y"));
        assert!(!m("*/archive/*", "archive/y"));
        assert!(m("archive/*", "archive/y/z"));
        assert!(!m("*.jpg", "a.JPG"));
    }

    #[test]
    fn slashes_match_runs_of_slashes() {
        assert!(m("a/b", "a//b"));
        assert!(m("a/*", "a///x"));
        assert!(!m("a/b", "ab"));
    }

    #[test]
    fn brackets_and_questions() {
        assert!(m("file?.txt", "file1.txt"));
        assert!(!m("file?.txt", "file12.txt"));
        assert!(m("[abc]x", "bx"));
        assert!(!m("[!abc]x", "bx"));
        assert!(m("[!abc]x", "dx"));
        assert!(m("[a-c]", "b"));
        assert!(Glob::new("[abc").check().is_err());
        assert!(Glob::new("[abc").matches("a").is_err());
    }

    #[test]
    fn special_characters_are_literal() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("a+b(c)", "a+b(c)"));
        assert!(m("*$", "x$"));
    }

    #[test]
    fn brackets_read_by_posix_rules() {
        // git-annex writes `^[[:digit:]\\].*$`: digits or a backslash.
        assert!(m("[[:digit:]]*", "1abc"));
        assert!(m("[[:digit:]]*", "\\abc"));
        assert!(!m("[[:digit:]]*", "abc"));
        // `]` first is a member.
        assert!(m("[]a]", "a"));
        assert!(m("[a-]", "-"));
    }

    #[test]
    fn git_annex_escape_quirks() {
        // \' is the end of the text in git-annex's regex engine.
        assert!(m("*'*", "no quote here"));
        assert!(m("a'", "a"));
    }
}
