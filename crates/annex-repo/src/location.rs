//! Recording where content is, in the key's location log on the git-annex
//! branch (through the journal, as git-annex records it, so that the next
//! git-annex command or `annex merge` commits it).

use std::io;
use std::sync::Mutex;

use annex_branch::Branch;
use annex_protocol::{Key, Uuid};

pub use annex_branch::journal::journal_file_name;
pub use annex_branch::locations::location_log_path;

/// The repository's git-annex branch, opened on first use.
#[derive(Debug, Default)]
pub struct BranchCell(Mutex<Option<Branch>>);

impl BranchCell {
    /// Records in the key's location log that `uuid` has (or no longer
    /// has) the content. Blocks: call from a blocking context.
    pub fn record(
        &self,
        git_dir: &std::path::Path,
        key: &Key,
        uuid: &Uuid,
        present: bool,
    ) -> io::Result<()> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Branch::open(git_dir).map_err(io::Error::other)?);
        }
        let branch = guard
            .as_ref()
            .ok_or_else(|| io::Error::other("no branch"))?;
        branch
            .set_location(key, uuid, present)
            .map(|_| ())
            .map_err(io::Error::other)
    }
}
