//! The sim file language (git-annex's Annex/Sim/File.hs): one command a
//! line, read with git-annex's words and error messages, and written back
//! as `git annex sim show` writes a simulation's history.

use serde::{Deserialize, Serialize};

use annex_types::size::{precise_size, read_size};

/// The direction of one link of a `connect` or `disconnect` chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arrow {
    /// `a -> b`: b becomes a remote of a.
    To,
    /// `a <- b`: a becomes a remote of b.
    From,
    /// `a <-> b`: each becomes a remote of the other.
    Both,
}

impl Arrow {
    fn as_str(self) -> &'static str {
        match self {
            Arrow::To => "->",
            Arrow::From => "<-",
            Arrow::Both => "<->",
        }
    }

    fn parse(s: &str) -> Option<Arrow> {
        match s {
            "->" => Some(Arrow::To),
            "<-" => Some(Arrow::From),
            "<->" => Some(Arrow::Both),
            _ => None,
        }
    }
}

/// A chain of connections, like `foo -> bar <- baz`: `names` has one
/// more element than `arrows`, and `arrows[i]` links `names[i]` and
/// `names[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// The repositories (or remote names) of the chain, left to right.
    pub names: Vec<String>,
    /// The arrows between them.
    pub arrows: Vec<Arrow>,
}

impl Connections {
    /// Each link as `(repository, remote name)`: the repository that gets
    /// (or loses) the remote, in the order git-annex applies them.
    pub fn links(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for (i, a) in self.arrows.iter().enumerate() {
            let (l, r) = (self.names[i].as_str(), self.names[i + 1].as_str());
            match a {
                Arrow::To => out.push((l, r)),
                Arrow::From => out.push((r, l)),
                Arrow::Both => {
                    out.push((l, r));
                    out.push((r, l));
                }
            }
        }
        out
    }

    fn words(&self) -> Vec<String> {
        let mut out = vec![self.names[0].clone()];
        for (a, n) in self.arrows.iter().zip(&self.names[1..]) {
            out.push(a.as_str().to_owned());
            out.push(n.clone());
        }
        out
    }
}

/// An action a simulated repository performs (`action REPO ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `pull REMOTE`: gitpull, getwanted, dropunwanted.
    Pull(String, String),
    /// `push REMOTE`: sendwanted, dropunwantedfrom, gitpush.
    Push(String, String),
    /// `sync REMOTE`: gitpull, getwanted, sendwanted, dropunwantedfrom,
    /// gitpush.
    Sync(String, String),
    /// `getwanted REMOTE`: get the files it wants from the remote.
    GetWanted(String, String),
    /// `dropunwanted` (no remote) or `dropunwantedfrom REMOTE`.
    DropUnwanted(String, Option<String>),
    /// `sendwanted REMOTE`: send the remote the files it wants.
    SendWanted(String, String),
    /// `gitpush REMOTE`: the remote learns what the repository knows.
    GitPush(String, String),
    /// `gitpull REMOTE`: the repository learns what the remote knows.
    GitPull(String, String),
    /// `A while B`: both at once, their files interleaved at random.
    While(Box<Action>, Box<Action>),
}

impl Action {
    fn words(&self) -> Vec<String> {
        let two = |r: &str, what: &str, remote: &str| {
            vec![
                "action".to_owned(),
                r.to_owned(),
                what.to_owned(),
                remote.to_owned(),
            ]
        };
        match self {
            Action::Pull(r, m) => two(r, "pull", m),
            Action::Push(r, m) => two(r, "push", m),
            Action::Sync(r, m) => two(r, "sync", m),
            Action::GetWanted(r, m) => two(r, "getwanted", m),
            Action::DropUnwanted(r, Some(m)) => two(r, "dropunwantedfrom", m),
            Action::DropUnwanted(r, None) => {
                vec!["action".into(), r.clone(), "dropunwanted".into()]
            }
            Action::SendWanted(r, m) => two(r, "sendwanted", m),
            Action::GitPush(r, m) => two(r, "gitpush", m),
            Action::GitPull(r, m) => two(r, "gitpull", m),
            Action::While(a, b) => {
                let mut w = a.words();
                w.push("while".into());
                w.extend(b.words());
                w
            }
        }
    }
}

/// One command of the sim file language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `init NAME`
    Init(String),
    /// `initremote NAME`
    InitRemote(String),
    /// `use NAME here|REMOTE|UUID|DESCRIPTION`
    Use(String, String),
    /// `connect CHAIN`
    Connect(Connections),
    /// `disconnect CHAIN`
    Disconnect(Connections),
    /// `addtree REPO EXPRESSION`
    AddTree(String, String),
    /// `add FILE SIZE REPO...`
    Add(String, i128, Vec<String>),
    /// `addmulti N SUFFIX MINSIZE MAXSIZE REPO...`
    AddMulti(i64, String, i128, i128, Vec<String>),
    /// `step N`
    Step(i64),
    /// `stepstable N`
    StepStable(i64),
    /// `action ...`
    Action(Action),
    /// `seed N`
    Seed(i64),
    /// `present REPO FILE`
    Present(String, String),
    /// `notpresent REPO FILE`
    NotPresent(String, String),
    /// `numcopies N`
    NumCopies(i64),
    /// `mincopies N`
    MinCopies(i64),
    /// `trustlevel REPO LEVEL` (`trusted`, `semitrusted`, `untrusted`,
    /// `dead`).
    TrustLevel(String, String),
    /// `group REPO GROUP`
    Group(String, String),
    /// `ungroup REPO GROUP`
    Ungroup(String, String),
    /// `metadata FILE FIELD=VALUE` (as `git annex metadata --set`).
    MetaData(String, String),
    /// `wanted REPO EXPRESSION`
    Wanted(String, String),
    /// `required REPO EXPRESSION`
    Required(String, String),
    /// `groupwanted GROUP EXPRESSION`
    GroupWanted(String, String),
    /// `randomwanted REPO TERM...`
    RandomWanted(String, Vec<String>),
    /// `randomrequired REPO TERM...`
    RandomRequired(String, Vec<String>),
    /// `randomgroupwanted GROUP TERM...`
    RandomGroupWanted(String, Vec<String>),
    /// `maxsize REPO SIZE`
    MaxSize(String, i128),
    /// `rebalance on|off`
    Rebalance(bool),
    /// `clusternode NODENAME REPO`
    ClusterNode(String, String),
    /// `visit REPO [COMMAND...]`
    Visit(String, Vec<String>),
    /// A line starting with `#` or `--`, kept as written.
    Comment(String),
    /// A blank line.
    Blank,
}

/// Why a line could not be read, in git-annex's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn parse_error(ws: &[&str]) -> ParseError {
    ParseError(format!("Unable to parse sim command: \"{}\"", ws.join(" ")))
}

/// Haskell's `readMaybe` of an `Int`, for the forms a sim file uses.
fn read_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// git's boolean words, as git-annex's `isTrueFalse` reads them.
fn read_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

/// The trust levels `trustlevel` accepts.
pub const TRUST_LEVELS: [&str; 4] = ["trusted", "semitrusted", "untrusted", "dead"];

/// Reads one line. Comments (`#` or `--` at the start) and blank lines
/// are commands too, so that the history keeps them.
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    if line.starts_with('#') || line.starts_with("--") {
        return Ok(Command::Comment(line.to_owned()));
    }
    let ws: Vec<&str> = line.split_whitespace().collect();
    if ws.is_empty() {
        return Ok(Command::Blank);
    }
    parse_words(&ws)
}

fn owned(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|s| (*s).to_owned()).collect()
}

fn size_of(s: &str, what: &str) -> Result<i128, ParseError> {
    read_size(s).ok_or_else(|| ParseError(format!("Unable to parse {what} \"{s}\"")))
}

/// Reads a command given as words (`annex sim COMMAND...`).
pub fn parse_words(ws: &[&str]) -> Result<Command, ParseError> {
    use Command as C;
    let s = |x: &str| x.to_owned();
    Ok(match ws {
        ["init", name] => C::Init(s(name)),
        ["initremote", name] => C::InitRemote(s(name)),
        ["use", name, rest @ ..] => C::Use(s(name), rest.join(" ")),
        ["connect", rest @ ..] => C::Connect(parse_connections(rest)?),
        ["disconnect", rest @ ..] => C::Disconnect(parse_connections(rest)?),
        ["addtree", name, rest @ ..] => C::AddTree(s(name), rest.join(" ")),
        ["add", file, size, repos @ ..] => {
            C::Add(s(file), size_of(size, "file size")?, owned(repos))
        }
        ["addmulti", num, suffix, min, max, repos @ ..] => {
            let min = size_of(min, "file size")?;
            let max = size_of(max, "file size")?;
            let n = read_int(num)
                .ok_or_else(|| ParseError(format!("Unable to parse number \"{num}\"")))?;
            C::AddMulti(n, s(suffix), min, max, owned(repos))
        }
        ["step", n] => C::Step(
            read_int(n).ok_or_else(|| ParseError(format!("Unable to parse step value \"{n}\"")))?,
        ),
        ["stepstable", n] => C::StepStable(
            read_int(n).ok_or_else(|| ParseError(format!("Unable to parse step value \"{n}\"")))?,
        ),
        ["action", ..] => C::Action(parse_action(ws)?),
        ["seed", n] => C::Seed(
            read_int(n).ok_or_else(|| ParseError(format!("Unable to parse seed value \"{n}\"")))?,
        ),
        ["present", repo, file] => C::Present(s(repo), s(file)),
        ["notpresent", repo, file] => C::NotPresent(s(repo), s(file)),
        ["numcopies", n] => C::NumCopies(
            read_int(n)
                .ok_or_else(|| ParseError(format!("Unable to parse numcopies value \"{n}\"")))?,
        ),
        ["mincopies", n] => C::MinCopies(
            read_int(n)
                .ok_or_else(|| ParseError(format!("Unable to parse mincopies value \"{n}\"")))?,
        ),
        ["trustlevel", repo, level] => {
            if !TRUST_LEVELS.contains(level) {
                return Err(ParseError(format!("Unknown trust level \"{level}\".")));
            }
            C::TrustLevel(s(repo), s(level))
        }
        ["group", repo, group] => C::Group(s(repo), s(group)),
        ["ungroup", repo, group] => C::Ungroup(s(repo), s(group)),
        ["metadata", file, modmeta] => C::MetaData(s(file), s(modmeta)),
        ["wanted", repo, expr @ ..] => C::Wanted(s(repo), expr.join(" ")),
        ["required", repo, expr @ ..] => C::Required(s(repo), expr.join(" ")),
        ["groupwanted", group, expr @ ..] => C::GroupWanted(s(group), expr.join(" ")),
        ["randomwanted", repo, terms @ ..] => C::RandomWanted(s(repo), owned(terms)),
        ["randomrequired", repo, terms @ ..] => C::RandomRequired(s(repo), owned(terms)),
        ["randomgroupwanted", group, terms @ ..] => C::RandomGroupWanted(s(group), owned(terms)),
        ["maxsize", repo, size] => C::MaxSize(s(repo), size_of(size, "maxsize")?),
        ["clusternode", node, repo] => C::ClusterNode(s(node), s(repo)),
        ["rebalance", onoff] => {
            C::Rebalance(read_bool(onoff).ok_or_else(|| {
                ParseError(format!("Unable to parse rebalance value \"{onoff}\""))
            })?)
        }
        ["visit", repo, cmd @ ..] => C::Visit(s(repo), owned(cmd)),
        _ => return Err(parse_error(ws)),
    })
}

fn parse_action(ws: &[&str]) -> Result<Action, ParseError> {
    let s = |x: &str| x.to_owned();
    let (a, rest) = match ws {
        ["action", r, "pull", m, rest @ ..] => (Action::Pull(s(r), s(m)), rest),
        ["action", r, "push", m, rest @ ..] => (Action::Push(s(r), s(m)), rest),
        ["action", r, "sync", m, rest @ ..] => (Action::Sync(s(r), s(m)), rest),
        ["action", r, "getwanted", m, rest @ ..] => (Action::GetWanted(s(r), s(m)), rest),
        ["action", r, "sendwanted", m, rest @ ..] => (Action::SendWanted(s(r), s(m)), rest),
        ["action", r, "dropunwantedfrom", m, rest @ ..] => {
            (Action::DropUnwanted(s(r), Some(s(m))), rest)
        }
        ["action", r, "dropunwanted", rest @ ..] => (Action::DropUnwanted(s(r), None), rest),
        ["action", r, "gitpush", m, rest @ ..] => (Action::GitPush(s(r), s(m)), rest),
        ["action", r, "gitpull", m, rest @ ..] => (Action::GitPull(s(r), s(m)), rest),
        _ => return Err(parse_error(ws)),
    };
    match rest {
        [] => Ok(a),
        ["while", more @ ..] => Ok(Action::While(Box::new(a), Box::new(parse_action(more)?))),
        _ => Err(parse_error(rest)),
    }
}

/// Reads a chain as git-annex does: from its right end, so that the words
/// an error quotes are those left over, in reverse order.
fn parse_connections(ws: &[&str]) -> Result<Connections, ParseError> {
    let rev: Vec<&str> = ws.iter().rev().copied().collect();
    let bad = |rest: &[&str]| ParseError(format!("Bad connect syntax near \"{}\"", rest.join(" ")));
    let (mut names, mut arrows) = match rev.as_slice() {
        [r2, arrow, r1, ..] if Arrow::parse(arrow).is_some() => (
            vec![(*r1).to_owned(), (*r2).to_owned()],
            vec![Arrow::parse(arrow).unwrap_or(Arrow::To)],
        ),
        rest => return Err(bad(rest)),
    };
    let mut rest = &rev[3..];
    loop {
        match rest {
            [] => break,
            [arrow, r, more @ ..] if Arrow::parse(arrow).is_some() => {
                names.insert(0, (*r).to_owned());
                arrows.insert(0, Arrow::parse(arrow).unwrap_or(Arrow::To));
                rest = more;
            }
            _ => return Err(bad(rest)),
        }
    }
    Ok(Connections { names, arrows })
}

/// A sim file's commands, each with its line number (from 1). The first
/// line that cannot be read is the error, with its number.
pub fn parse_file(text: &str) -> Result<Vec<(usize, Command)>, (usize, ParseError)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| parse_line(l).map(|c| (i + 1, c)).map_err(|e| (i + 1, e)))
        .collect()
}

/// A size as `git annex sim show` writes it: `preciseSize storageUnits
/// True` with its space taken out (`1.0MB`, `2.5kB`).
fn format_size(n: i128) -> String {
    precise_size(n).replace(' ', "")
}

/// A command as one line of a sim file.
pub fn format_command(c: &Command) -> String {
    use Command as C;
    let join = |v: Vec<String>| v.join(" ");
    let with = |head: &[&str], tail: &[String]| {
        let mut v: Vec<String> = head.iter().map(|s| (*s).to_owned()).collect();
        v.extend(tail.iter().cloned());
        v.join(" ")
    };
    match c {
        C::Init(n) => format!("init {n}"),
        C::InitRemote(n) => format!("initremote {n}"),
        C::Use(n, what) => format!("use {n} {what}"),
        C::Connect(cs) => join([vec!["connect".to_owned()], cs.words()].concat()),
        C::Disconnect(cs) => join([vec!["disconnect".to_owned()], cs.words()].concat()),
        C::AddTree(n, e) => format!("addtree {n} {e}"),
        C::Add(f, sz, repos) => with(&["add", f, &format_size(*sz)], repos),
        C::AddMulti(n, suffix, min, max, repos) => with(
            &[
                "addmulti",
                &n.to_string(),
                suffix,
                &format_size(*min),
                &format_size(*max),
            ],
            repos,
        ),
        C::Step(n) => format!("step {n}"),
        C::StepStable(n) => format!("stepstable {n}"),
        C::Action(a) => a.words().join(" "),
        C::Seed(n) => format!("seed {n}"),
        C::Present(r, f) => format!("present {r} {f}"),
        C::NotPresent(r, f) => format!("notpresent {r} {f}"),
        C::NumCopies(n) => format!("numcopies {n}"),
        C::MinCopies(n) => format!("mincopies {n}"),
        C::TrustLevel(r, l) => format!("trustlevel {r} {l}"),
        C::Group(r, g) => format!("group {r} {g}"),
        C::Ungroup(r, g) => format!("ungroup {r} {g}"),
        C::MetaData(f, m) => format!("metadata {f} {m}"),
        C::Wanted(r, e) => format!("wanted {r} {e}"),
        C::Required(r, e) => format!("required {r} {e}"),
        C::GroupWanted(g, e) => format!("groupwanted {g} {e}"),
        C::RandomWanted(r, ts) => with(&["randomwanted", r], ts),
        C::RandomRequired(r, ts) => with(&["randomrequired", r], ts),
        C::RandomGroupWanted(g, ts) => with(&["randomgroupwanted", g], ts),
        C::MaxSize(r, sz) => format!("maxsize {r} {}", format_size(*sz)),
        C::Rebalance(b) => format!("rebalance {}", if *b { "on" } else { "off" }),
        C::ClusterNode(n, r) => format!("clusternode {n} {r}"),
        C::Visit(r, cmd) => with(&["visit", r], cmd),
        C::Comment(s) => s.clone(),
        C::Blank => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        parse_line(line).unwrap_err().0
    }

    #[test]
    fn sizes_as_sim_show_writes_them() {
        assert_eq!(format_size(1_000_000), "1.0MB");
        assert_eq!(format_size(2_500), "2.5kB");
        assert_eq!(format_size(0), "0.0B");
        assert_eq!(format_size(100_000_000_000), "100.0GB");
        for n in [1, 999, 1234567, 10_000_000_000_000] {
            assert_eq!(read_size(&format_size(n)), Some(n));
        }
    }

    #[test]
    fn errors_are_git_annexs() {
        assert_eq!(err("bogus x"), "Unable to parse sim command: \"bogus x\"");
        assert_eq!(err("init"), "Unable to parse sim command: \"init\"");
        assert_eq!(err("add f 1zz foo"), "Unable to parse file size \"1zz\"");
        assert_eq!(err("maxsize foo x"), "Unable to parse maxsize \"x\"");
        assert_eq!(err("step x"), "Unable to parse step value \"x\"");
        assert_eq!(err("seed 1.5"), "Unable to parse seed value \"1.5\"");
        assert_eq!(err("trustlevel foo high"), "Unknown trust level \"high\".");
        assert_eq!(
            err("rebalance maybe"),
            "Unable to parse rebalance value \"maybe\""
        );
        assert_eq!(err("addmulti x y 1 2 foo"), "Unable to parse number \"x\"");
        assert_eq!(
            err("connect foo bar"),
            "Bad connect syntax near \"bar foo\""
        );
        assert_eq!(err("connect a b -> c"), "Bad connect syntax near \"a\"");
        assert_eq!(
            err("action foo getwanted bar while x"),
            "Unable to parse sim command: \"x\""
        );
        assert_eq!(
            err("action foo fly bar"),
            "Unable to parse sim command: \"action foo fly bar\""
        );
    }

    #[test]
    fn chains_link_left_to_right() {
        let Command::Connect(c) = parse_line("connect a -> b <- c <-> d").unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(
            c.links(),
            vec![("a", "b"), ("c", "b"), ("c", "d"), ("d", "c")]
        );
    }

    #[test]
    fn lines_format_back() {
        for l in [
            "init foo",
            "connect foo -> bar <- baz",
            "add x.jpg 1.0MB foo bar",
            "addmulti 10 .x 1.0kB 2.5MB foo",
            "action foo sync bar while action bar dropunwanted",
            "maxsize foo 1.0TB",
            "rebalance on",
            "# a comment",
            "-- another",
            "",
        ] {
            assert_eq!(format_command(&parse_line(l).unwrap()), l);
        }
        assert_eq!(parse_line("   ").unwrap(), Command::Blank);
        let f = parse_file("init a\n\nbogus\n").unwrap_err();
        assert_eq!(f.0, 3);
    }
}
