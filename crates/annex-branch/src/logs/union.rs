//! git-annex's union merge of one log file, as bytes.
//!
//! When two versions of the git-annex branch hold different versions of a
//! file, git-annex merges them line by line: the result holds every line of
//! either version once, sorted bytewise, each ending in a newline. When one
//! of the versions already holds every one of those lines, that version is
//! kept as it is instead (the first such version, in the order given).
//! Lines are split on `\n` only here; a `\r` stays part of its line.
//!
//! The merged file is then read like any other: since every log resolves
//! each field by clock, reading the merge gives the same meaning as reading
//! the two versions one after the other, except where two lines for the
//! same field carry the same clock. Then the later line in the merged file
//! wins, which after sorting is the bytewise greater line, not necessarily
//! the line of either version that won there.

use std::collections::BTreeSet;

/// Splits into lines as git-annex's union merge does: on `\n`, with no
/// empty last line after a final newline.
fn merge_lines(b: &[u8]) -> Vec<&[u8]> {
    if b.is_empty() {
        return Vec::new();
    }
    let mut v: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    if b.ends_with(b"\n") {
        v.pop();
    }
    v
}

/// The union merge of the versions of one file (each present version:
/// git-annex merges the version on the branch being merged in first, then
/// the one already there).
pub fn merge(versions: &[&[u8]]) -> Vec<u8> {
    let all: BTreeSet<&[u8]> = versions.iter().flat_map(|v| merge_lines(v)).collect();
    for v in versions {
        let own: BTreeSet<&[u8]> = merge_lines(v).into_iter().collect();
        if own == all {
            return v.to_vec();
        }
    }
    let mut out = Vec::with_capacity(versions.iter().map(|v| v.len()).sum());
    for l in all {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_dedups_lines() {
        assert_eq!(merge(&[b"b\na\n", b"c\na\n"]), b"a\nb\nc\n");
        assert_eq!(merge(&[b"b\na", b"c\r\n"]), b"a\nb\nc\r\n");
        assert_eq!(merge(&[b"x\n\ny\n", b"z\n"]), b"\nx\ny\nz\n");
        assert_eq!(merge(&[]), b"");
    }

    #[test]
    fn keeps_a_version_that_holds_everything() {
        assert_eq!(merge(&[b"b\na\na\n", b"a\n"]), b"b\na\na\n");
        assert_eq!(merge(&[b"a\n", b"b\na"]), b"b\na");
        assert_eq!(merge(&[b"a\nb\n", b"b\na"]), b"a\nb\n");
        assert_eq!(merge(&[b"only\n"]), b"only\n");
    }
}
