//! Paths in an exported tree, and the two kinds of path git-annex adds to
//! it: where other content is kept (`annexobjects=yes`), and the
//! temporary names files are renamed through.

use std::fmt;

use annex_protocol::Key;

/// A path in a remote exported to: relative to its top, components
/// separated by `/`, none of them empty, `.` or `..`, no NUL byte. Paths
/// come from trees that clients push, so they are checked before any
/// store sees them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExportPath(Vec<u8>);

/// Why a path cannot be exported to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a path that can be exported to: {0}")]
pub struct BadPath(pub String);

impl ExportPath {
    /// The path `bytes`, checked.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<ExportPath, BadPath> {
        let bytes = bytes.into();
        let bad = || BadPath(String::from_utf8_lossy(&bytes).into_owned());
        if bytes.is_empty() || bytes.contains(&0) {
            return Err(bad());
        }
        for c in bytes.split(|&b| b == b'/') {
            if c.is_empty() || c == b"." || c == b".." {
                return Err(bad());
            }
        }
        Ok(ExportPath(bytes))
    }

    /// Where `annexobjects=yes` keeps a key's content in the remote:
    /// `.git/annex/objects/xxx/yyy/KEY/KEY`, in the key's lower-case hash
    /// directories (git-annex's `exportAnnexObjectLocation`, with the
    /// default two hash levels).
    pub fn annex_object(key: &Key) -> ExportPath {
        let f = key.to_file_name();
        ExportPath(format!(".git/annex/objects/{}{f}/{f}", key.hash_dir_lower()).into_bytes())
    }

    /// The name a file of `key` is renamed to while an export moves
    /// files around (git-annex's `exportTempName`), so that two files
    /// swapping names do not overwrite each other.
    pub fn temp_name(key: &Key) -> ExportPath {
        // A key's file name escapes any `/`, so the name is one component.
        let name = if key.as_str().contains('/') {
            key.to_file_name()
        } else {
            key.as_str().to_owned()
        };
        ExportPath(format!(".git-annex-tmp-content-{name}").into_bytes())
    }

    /// The path's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as text, when it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/')
    }

    /// The directories the path is in, deepest first, not the top
    /// (`a/b/c` is in `a/b`, then `a`).
    pub fn parents(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut end = self.0.len();
        while let Some(i) = self.0[..end].iter().rposition(|&b| b == b'/') {
            out.push(&self.0[..i]);
            end = i;
        }
        out
    }

    /// Whether the path is inside the remote's `.git` directory (in any
    /// case), where annexobjects content lives: a pushed tree's files
    /// there are not exported, as git never checks such files out.
    pub fn is_in_git_dir(&self) -> bool {
        self.components()
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b".git"))
    }
}

impl fmt::Display for ExportPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for ExportPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in ["a", "a/b", ".hidden/x y", "ü/€"] {
            assert!(ExportPath::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "./a", "a/../b", "..", "a\0b"] {
            assert!(ExportPath::new(bad).is_err(), "{bad:?}");
        }
        let p = ExportPath::new("a/b/c").unwrap();
        assert_eq!(p.parents(), vec![&b"a/b"[..], &b"a"[..]]);
        assert!(ExportPath::new("c").unwrap().parents().is_empty());
        assert!(ExportPath::new(".GIT/x").unwrap().is_in_git_dir());
        assert!(!ExportPath::new(".gitignore").unwrap().is_in_git_dir());
    }

    /// As `git annex copy --to` an exporttree remote with annexobjects
    /// and `git annex export` renaming a file lay them out (10.20250416).
    #[test]
    fn git_annex_names() {
        let k = Key::parse(
            "SHA256E-s7--88e4ed2092cd8d611edcdeeb3703691e6a3168de02d2c7ae94cb833070b641d8",
        )
        .unwrap();
        assert_eq!(
            ExportPath::annex_object(&k).to_string(),
            ".git/annex/objects/075/710/SHA256E-s7--88e4ed2092cd8d611edcdeeb3703691e6a3168de02d2c7ae94cb833070b641d8/SHA256E-s7--88e4ed2092cd8d611edcdeeb3703691e6a3168de02d2c7ae94cb833070b641d8"
        );
        let k = Key::parse(
            "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        )
        .unwrap();
        assert_eq!(
            ExportPath::temp_name(&k).to_string(),
            ".git-annex-tmp-content-SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }
}
