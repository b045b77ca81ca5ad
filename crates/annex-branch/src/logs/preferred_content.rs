//! Preferred content: preferred-content.log and required-content.log (a
//! repository's expression, old UUID-based form
//! `UUID EXPRESSION timestamp=CLOCK`) and group-preferred-content.log (a
//! group's expression, `CLOCK GROUP EXPRESSION`).
//!
//! Expressions are kept as the text git-annex logged; they are not parsed
//! here. git-annex never refuses an expression it finds in a log (an
//! expression it cannot parse makes it want only content already present),
//! so every line with a valid UUID and clock counts.

use std::collections::BTreeMap;

use annex_types::Uuid;

use super::uuid_based::{MapLog, UuidLog, ValueError};
use crate::clock::VectorClock;

/// preferred-content.log or required-content.log as read.
pub type ExpressionLog = UuidLog<String>;

/// group-preferred-content.log as read: group name to expression.
pub type GroupExpressionLog = MapLog<String, String>;

/// Parses preferred-content.log or required-content.log.
pub fn parse(data: &[u8]) -> ExpressionLog {
    ExpressionLog::parse_old(data)
}

/// Writes preferred-content.log or required-content.log as git-annex
/// does.
pub fn write(log: &ExpressionLog) -> Vec<u8> {
    log.write_old()
}

/// Sets a repository's expression (`git annex wanted`/`required`).
/// Returns the clock used.
pub fn set(
    log: &mut ExpressionLog,
    uuid: Uuid,
    expression: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(uuid, expression.to_string(), now)
}

/// The expression of each repository that has one.
pub fn expressions(log: &ExpressionLog) -> BTreeMap<Uuid, String> {
    log.simple_map()
}

/// Parses group-preferred-content.log.
pub fn parse_group(data: &[u8]) -> GroupExpressionLog {
    GroupExpressionLog::parse_new(data)
}

/// Writes group-preferred-content.log as git-annex does.
pub fn write_group(log: &GroupExpressionLog) -> Vec<u8> {
    log.write_new()
}

/// Sets a group's expression (`git annex groupwanted`). Returns the clock
/// used.
pub fn set_group(
    log: &mut GroupExpressionLog,
    group: &str,
    expression: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(group.to_string(), expression.to_string(), now)
}

/// The expression of each group that has one.
pub fn group_expressions(log: &GroupExpressionLog) -> BTreeMap<String, String> {
    log.simple_map()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn repository_and_group_expressions() {
        let mut log = parse(format!("{U1} include=*.mp3 and  (present) timestamp=5s\n").as_bytes());
        let u1 = Uuid::parse(U1).unwrap();
        assert_eq!(expressions(&log)[&u1], "include=*.mp3 and  (present)");
        set(&mut log, u1, "anything", VectorClock::from_secs(5)).unwrap();
        assert_eq!(
            write(&log),
            format!("{U1} anything timestamp=6s\n").as_bytes()
        );

        let mut g = parse_group(b"5s nodes balanced=nodes:2\n4s archive anything\n");
        assert_eq!(group_expressions(&g)["nodes"], "balanced=nodes:2");
        set_group(
            &mut g,
            "archive",
            "not copies=archive:3",
            VectorClock::from_secs(3),
        )
        .unwrap();
        assert_eq!(
            write_group(&g),
            b"5s archive not copies=archive:3\n5s nodes balanced=nodes:2\n"
        );
        assert!(set_group(&mut g, "a b", "x", VectorClock::from_secs(3)).is_err());
    }
}
