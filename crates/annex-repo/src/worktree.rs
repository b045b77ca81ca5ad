//! The files of a repository's work tree that git-annex manages: which
//! key a file stands for, as git-annex reads it (Annex/Link.hs).

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use annex_protocol::Key;

/// The largest pointer file git-annex takes as one (its
/// `maxValidPointerSz`): a file read as a pointer is read up to one byte
/// more, to tell a pointer with something appended to it.
pub const MAX_POINTER_SIZE: usize = 32768;

/// What every line after the first of a pointer file holds (git-annex's
/// `validPointerLineTag`).
const POINTER_LINE_TAG: &[u8] = b"/annex/";

/// What a symlink target or a pointer's first line holds when it points
/// to annexed content (git-annex's `isLinkToAnnex`).
const OBJECTS_DIR: &[u8] = b"/annex/objects";

/// The key an annexed file of the work tree stands for, as git-annex
/// finds it in the file itself: a locked file is a symlink whose target
/// goes through `annex/objects` (`.git/annex/objects/Xx/Yy/KEY/KEY`); an
/// unlocked file whose content is not here is a pointer file,
/// `/annex/objects/KEY` on its first line, at most
/// [`MAX_POINTER_SIZE`] bytes, any further line holding `/annex/`.
/// `None` for any other file, and for one that cannot be read (an
/// unlocked file whose content is here is its content: git-annex finds
/// its key in the index, not in the file).
pub fn annexed_key(path: &Path) -> Option<Key> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).ok()?;
        return key_of_link_or_pointer(target.as_os_str().as_bytes());
    }
    if !meta.is_file() {
        return None;
    }
    // Not following a symlink put there since it was looked at.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut head = Vec::with_capacity(MAX_POINTER_SIZE + 1);
    file.take(MAX_POINTER_SIZE as u64 + 1)
        .read_to_end(&mut head)
        .ok()?;
    key_of_link_or_pointer(&head)
}

/// The key a symlink's target or a pointer file's content names, as
/// git-annex's `parseLinkTargetOrPointer` reads it.
pub fn key_of_link_or_pointer(text: &[u8]) -> Option<Key> {
    let (first, rest) = match text.iter().position(|&b| b == b'\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &[][..]),
    };
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    if !contains(first, OBJECTS_DIR) {
        return None;
    }
    let name = match first.iter().rposition(|&b| b == b'/') {
        Some(i) => &first[i + 1..],
        None => first,
    };
    let key = Key::from_file_name(std::str::from_utf8(name).ok()?).ok()?;
    (text.len() <= MAX_POINTER_SIZE && valid_further_lines(rest)).then_some(key)
}

/// Whether every line after a pointer's first holds `/annex/` and ends
/// with a newline.
fn valid_further_lines(mut rest: &[u8]) -> bool {
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return false;
        };
        if !contains(&rest[..end], POINTER_LINE_TAG) {
            return false;
        }
        rest = &rest[end + 1..];
    }
    true
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt";

    fn key() -> Key {
        Key::parse(KEY).unwrap()
    }

    #[test]
    fn links_and_pointers() {
        let link = format!("../../.git/annex/objects/Xx/Yy/{KEY}/{KEY}");
        assert_eq!(key_of_link_or_pointer(link.as_bytes()), Some(key()));
        for ok in [
            format!("/annex/objects/{KEY}"),
            format!("/annex/objects/{KEY}\n"),
            format!("/annex/objects/{KEY}\r\n"),
            format!("/annex/objects/{KEY}\n/annex/more\n"),
        ] {
            assert_eq!(key_of_link_or_pointer(ok.as_bytes()), Some(key()), "{ok:?}");
        }
        for bad in [
            format!("/annex/objects/{KEY}\nappended\n"),
            format!("/annex/objects/{KEY}\n/annex/no newline"),
            format!("/annexobjects/{KEY}\n"),
            "/annex/objects/not a key\n".to_owned(),
            "hello\n".to_owned(),
            String::new(),
        ] {
            assert_eq!(key_of_link_or_pointer(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn pointers_up_to_git_annex_limit() {
        // A pointer with one long further line, `n` bytes in all.
        let pointer = |n: usize| {
            let mut text = format!("/annex/objects/{KEY}\n/annex/").into_bytes();
            text.resize(n - 1, b'a');
            text.push(b'\n');
            text
        };
        assert_eq!(
            key_of_link_or_pointer(&pointer(MAX_POINTER_SIZE)),
            Some(key())
        );
        assert_eq!(key_of_link_or_pointer(&pointer(MAX_POINTER_SIZE + 1)), None);
    }

    #[test]
    fn files() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        std::fs::write(p.join("pointer"), format!("/annex/objects/{KEY}\n")).unwrap();
        assert_eq!(annexed_key(&p.join("pointer")), Some(key()));
        let big = vec![b'x'; 1 << 20];
        std::fs::write(p.join("big"), big).unwrap();
        assert_eq!(annexed_key(&p.join("big")), None);
        std::os::unix::fs::symlink(
            format!(".git/annex/objects/Xx/Yy/{KEY}/{KEY}"),
            p.join("locked"),
        )
        .unwrap();
        assert_eq!(annexed_key(&p.join("locked")), Some(key()));
        // A symlink to a pointer file is not followed.
        std::os::unix::fs::symlink("pointer", p.join("to-pointer")).unwrap();
        assert_eq!(annexed_key(&p.join("to-pointer")), None);
        assert_eq!(annexed_key(&p.join("missing")), None);
        assert_eq!(annexed_key(p), None);
    }
}
