//! Special remotes with `exporttree=yes`: a tree of files exported at
//! their paths, and with `annexobjects=yes` other content beside it, laid
//! out as git-annex lays them out so that git-annex and this program can
//! both use one such remote.
//!
//! Two halves, so that any kind of remote can be exported to:
//!
//! - [`ExportStore`]: what a kind of remote provides: files at paths
//!   ([`ExportPath`]) stored from a stream, read from an offset, removed,
//!   renamed where it can, looked for. The directory remote's is
//!   [`crate::directory::DirectoryExport`], S3's
//!   [`crate::s3::export::S3Export`], an external remote's
//!   [`crate::external::export::ExternalExport`].
//! - [`ExportRemote`]: any store, with the export log and the exported
//!   tree, as a [`Repository`](annex_protocol::Repository) following
//!   git-annex's rules (Remote/Helper/ExportImport.hs and the gateway's
//!   Annex/Proxy.hs); and [`ExportRemote::export`], what `git annex
//!   export` (and the gateway's `post-receive`) does to a remote: move it
//!   from the tree exported to a new one (Command/Export.hs).
//!
//! Where git-annex keeps what: the tree exported to each remote is in
//! export.log on the git-annex branch ([`annex_branch::logs::export`]);
//! git-annex also keeps a cache of it in a sqlite database
//! (`.git/annex/export/UUID/exportdb`), which it brings up to date from
//! the log whenever it opens it and finds the log naming another tree,
//! and builds anew when it is missing. This program reads the log and the
//! tree alone, and after it changes what is exported it removes that
//! database (under git-annex's locks, as git-annex's `removeDb` does):
//! git-annex then rebuilds it from the log, and finds the files present
//! by looking at the remote, so nothing it believed of the old tree
//! survives to mislead it. See [`update::forget_git_annex_database`].

mod path;
mod remote;
#[cfg(test)]
mod tests;
pub mod tracking;
mod tree;
pub mod update;
mod verify;

/// Git object names, as trees are named here.
pub use gix::ObjectId;
pub use path::{BadPath, ExportPath};
pub use remote::ExportRemote;
pub use tracking::{parse_hook_input, pushed_export, PushedExport};
pub use tree::{FileKind, TreeFile, TreeIndex, Wanted};
pub use update::{filter_for_export, ExportError, ExportOptions, ExportReport};

use std::fmt;
use std::io;

use annex_branch::logs::remote_config::RemoteConfig;
use annex_protocol::repository::ChunkStream;
use annex_protocol::{Key, RepoError};
use async_trait::async_trait;

/// Where a kind of special remote keeps files at exported paths.
///
/// Every request names the key whose content the path holds (or is to
/// hold), as git-annex's export actions do: stores that keep files by
/// path alone (directory, S3) ignore it; an external remote's export
/// requests carry it.
///
/// What every implementation must guarantee, as the export layer relies
/// on it:
///
/// - **Nothing unverified becomes visible.** Content given to
///   [`start_store`](Self::start_store) appears at its path only when
///   [`PendingStore::commit`] is called, which the layer does only after
///   the content matched its key; until then (and when the pending store
///   is dropped without a commit) the path holds what it held before, or
///   nothing, and no partial file is ever seen there by
///   [`check_present`](Self::check_present), [`retrieve`](Self::retrieve)
///   or another program (git-annex) reading the remote.
/// - **Replacing is whole.** A commit to a path that holds a file
///   replaces it at once (a rename over it, a single PUT of an object).
/// - **Presence is existence.** [`check_present`](Self::check_present)
///   says whether a file is at the path, as git-annex's
///   `checkPresentExport` does; an unreachable remote is an error, never
///   absence.
/// - **Removing what is not there succeeds**, and a store with
///   directories removes those a removal or rename leaves empty, up to
///   (not including) its top, as git-annex does, so that the layout stays
///   the one git-annex leaves.
/// - **Retrieving is read-only** and reads the file as it is; the layer
///   hashes what it reads, and tells a client whose content changed.
/// - Paths are [`ExportPath`]s: relative, `/`-separated, without `.` or
///   `..` or empty components; a store maps them to its own names without
///   letting one escape its top.
#[async_trait]
pub trait ExportStore: Send + Sync + fmt::Debug {
    /// Whether a file is at `path`, which should hold `key`'s content.
    async fn check_present(&self, key: &Key, path: &ExportPath) -> Result<bool, RepoError>;

    /// Begins storing `len` bytes, the content of `key`, at `path`
    /// (making room for them, as annex.diskreserve asks, where the store
    /// can tell).
    async fn start_store(
        &self,
        key: &Key,
        path: &ExportPath,
        len: u64,
    ) -> Result<Box<dyn PendingStore>, RepoError>;

    /// The file at `path`, which should hold `key`'s content, from
    /// `offset`: how many bytes follow, and they. `None` when no file is
    /// there.
    async fn retrieve(
        &self,
        key: &Key,
        path: &ExportPath,
        offset: u64,
    ) -> Result<Option<Retrieved>, RepoError>;

    /// Removes the file at `path`, which held `key`'s content; succeeds
    /// when none is there.
    async fn remove(&self, key: &Key, path: &ExportPath) -> Result<(), RepoError>;

    /// Moves the file at `from`, `key`'s content, to `to` (replacing
    /// what is at `to`). `Ok(false)` when this store cannot rename,
    /// having done nothing: the layer copies and removes instead.
    async fn rename(
        &self,
        key: &Key,
        from: &ExportPath,
        to: &ExportPath,
    ) -> Result<bool, RepoError>;
}

/// Content being stored at a path: written, then made visible by
/// [`commit`](PendingStore::commit) or forgotten when dropped.
#[async_trait]
pub trait PendingStore: Send {
    /// Writes the next bytes. Called on a blocking thread (never on the
    /// async runtime's), so it may block; the bytes are not yet verified.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// All the content was written and matched its key: makes it visible
    /// at the path, replacing what was there.
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;
}

/// A file's content read from a store.
pub struct Retrieved {
    /// Bytes from the offset asked for to the end of the file.
    pub len: u64,
    /// Those bytes.
    pub stream: Box<dyn ChunkStream>,
}

impl fmt::Debug for Retrieved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrieved").field("len", &self.len).finish()
    }
}

/// The export settings of a special remote's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportConfig {
    /// `exporttree=yes`
    pub export_tree: bool,
    /// `annexobjects=yes`: content not in the exported tree is kept at
    /// `.git/annex/objects/` in the remote.
    pub annex_objects: bool,
}

impl ExportConfig {
    /// The settings as git-annex reads them (`yes` and `no` only; what
    /// it cannot read it refuses, and so does this).
    pub fn from_config(config: &RemoteConfig) -> Result<ExportConfig, crate::SpecialError> {
        let yes_no = |field: &'static str| match config.get(field) {
            None | Some("no") => Ok(false),
            Some("yes") => Ok(true),
            Some(other) => Err(crate::SpecialError::BadSetting {
                field,
                value: other.to_owned(),
            }),
        };
        Ok(ExportConfig {
            export_tree: yes_no("exporttree")?,
            annex_objects: yes_no("annexobjects")?,
        })
    }

    /// Whether a gateway may proxy the remote: git-annex's `updateproxy`
    /// and `updatecluster` refuse an exporttree remote without
    /// annexobjects (content sent through the gateway for a path not in
    /// the tree would have nowhere to go).
    pub fn proxyable(&self) -> bool {
        !self.export_tree || self.annex_objects
    }
}

/// Opens a special remote with `exporttree=yes`: the store of its type
/// (the directory remote's, S3's or an external remote's), as an [`ExportRemote`]. Refuses what
/// is not supported yet, naming it: encryption, `importtree=yes`, and
/// types whose store is not written yet.
pub fn open(
    config: &RemoteConfig,
    setup: crate::Setup,
) -> Result<ExportRemote, crate::SpecialError> {
    let export = ExportConfig::from_config(config)?;
    let mut rest = config.clone();
    rest.0.remove("exporttree");
    crate::check_supported(&rest)?;
    match config.get("type") {
        Some("directory") => crate::directory::open_export(config, setup, export.annex_objects),
        Some("S3") => {
            let uuid = setup.uuid.clone();
            let branch = setup.branch.clone();
            let store = crate::s3::export::S3Export::new(crate::s3::S3Remote::open(&rest, setup)?);
            Ok(ExportRemote::new(
                uuid,
                std::sync::Arc::new(store),
                export.annex_objects,
                branch,
            ))
        }
        Some("external") => {
            let uuid = setup.uuid.clone();
            let branch = setup.branch.clone();
            let store = crate::external::export::ExternalExport::new(
                crate::external::ExternalRemote::open(&rest, setup)?,
            );
            Ok(ExportRemote::new(
                uuid,
                std::sync::Arc::new(store),
                export.annex_objects,
                branch,
            ))
        }
        Some(_) => Err(crate::SpecialError::Unsupported {
            field: "exporttree",
            value: "yes".into(),
        }),
        None => Err(crate::SpecialError::MissingType),
    }
}

/// The warning git-annex's `updateproxy` (`cannot` = "Cannot proxy to
/// this remote.") and `updatecluster` ("Cannot use this remote as a
/// cluster node.") give for the remote `name` configured with
/// `exporttree=yes` and without `annexobjects=yes`.
pub fn unproxyable_warning(name: &str, cannot: &str) -> String {
    format!(
        "{name} is a special remote configured with exporttree=yes, but without annexobjects=yes. {cannot} Suggest you run: git-annex enableremote {name} annexobjects=yes"
    )
}
