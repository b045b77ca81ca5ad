//! uuid.log: the description of each repository, in the old UUID-based
//! form (`UUID DESCRIPTION timestamp=CLOCK`).
//!
//! A description is the rest of the line, spaces and all. git-annex writes
//! a newline in a description as the two characters `\n`, and never reads
//! them back as a newline.

use std::collections::BTreeMap;

use annex_types::Uuid;

use super::uuid_based::{no_line_break, UuidLog, ValueError};
use crate::clock::VectorClock;

/// uuid.log as read.
pub type DescriptionLog = UuidLog<String>;

/// Parses uuid.log.
pub fn parse(data: &[u8]) -> DescriptionLog {
    DescriptionLog::parse_old(data)
}

/// Writes uuid.log as git-annex does.
pub fn write(log: &DescriptionLog) -> Vec<u8> {
    log.write_old()
}

/// Escapes a description as git-annex does before logging it: each newline
/// becomes `\n`. Refuses a carriage return, which would end the line.
pub fn escape_description(description: &str) -> Result<String, ValueError> {
    let d = description.replace('\n', "\\n");
    no_line_break("a description", &d)?;
    Ok(d)
}

/// Records a description, as `git annex describe` does. Returns the clock
/// used.
pub fn describe(
    log: &mut DescriptionLog,
    uuid: Uuid,
    description: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    let d = escape_description(description)?;
    log.set(uuid, d, now)
}

/// The description of each repository that has one set (git-annex's
/// `uuidDescMapRaw`).
pub fn descriptions(log: &DescriptionLog) -> BTreeMap<Uuid, String> {
    log.simple_map()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn describes_with_escaped_newlines() {
        let mut log = parse(format!("{U1} old one timestamp=5s\n").as_bytes());
        let u = Uuid::parse(U1).unwrap();
        assert_eq!(descriptions(&log)[&u], "old one");
        describe(&mut log, u.clone(), "two\nlines", VectorClock::from_secs(4)).unwrap();
        assert_eq!(
            write(&log),
            format!("{U1} two\\nlines timestamp=6s\n").as_bytes()
        );
        assert!(describe(&mut log, u, "a\rb", VectorClock::from_secs(9)).is_err());
    }
}
