//! The export layer over the directory remote's store, in a git
//! repository of its own: PUT, GET, REMOVE and CHECKPRESENT by
//! git-annex's rules, and exports moving the remote from tree to tree.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use annex_branch::logs::export as export_log;
use annex_branch::logs::paths::EXPORT_LOG;
use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::Branch;
use annex_protocol::repository::{GetOutcome, PutOutcome, Repository, Validity};
use annex_protocol::{AssociatedFile, BytesSource, Key, RepoError, Uuid, VecSink};
use annex_test_support::{files_under, git, pseudo_random, sha256e_key};
use gix::ObjectId;

use super::*;
use crate::directory::DirectoryExport;

const REMOTE: &str = "5cf391c0-9b13-4387-ac73-e690628ea6fd";
const HERE: &str = "6600d86e-3e3d-4286-a013-196f7f6fc831";

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    store: PathBuf,
    branch: Arc<Mutex<Branch>>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["config", "user.name", "t"]);
    git(&repo, &["config", "user.email", "t@example.invalid"]);
    let store = tmp.path().join("store");
    fs::create_dir(&store).unwrap();
    let branch = Arc::new(Mutex::new(Branch::open(&repo).unwrap()));
    branch.lock().unwrap().create("branch created").unwrap();
    Fixture {
        _tmp: tmp,
        repo,
        store,
        branch,
    }
}

impl Fixture {
    fn remote(&self, annex_objects: bool) -> ExportRemote {
        let store = DirectoryExport::new(self.store.clone(), 0, None);
        ExportRemote::new(
            Uuid::parse(REMOTE).unwrap(),
            Arc::new(store),
            annex_objects,
            self.branch.clone(),
        )
    }

    /// Commits a tree of annexed files (`path`, content) and files kept
    /// in git; its tree.
    fn commit(&self, annexed: &[(&str, &[u8])], in_git: &[(&str, &[u8])]) -> ObjectId {
        for e in fs::read_dir(&self.repo).unwrap() {
            let e = e.unwrap();
            if e.file_name() != ".git" {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(p).unwrap();
                } else {
                    fs::remove_file(p).unwrap();
                }
            }
        }
        for (path, content) in annexed {
            let key = key_of(content);
            let p = self.repo.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = key.to_file_name();
            std::os::unix::fs::symlink(format!(".git/annex/objects/Xx/Yy/{f}/{f}"), &p).unwrap();
        }
        for (path, content) in in_git {
            let p = self.repo.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "--allow-empty", "-m", "x"]);
        let t = git(&self.repo, &["rev-parse", "HEAD^{tree}"]);
        ObjectId::from_hex(t.trim().as_bytes()).unwrap()
    }

    fn log(&self) -> String {
        let b = self.branch.lock().unwrap();
        String::from_utf8(b.read(EXPORT_LOG).unwrap()).unwrap()
    }

    fn files(&self) -> Vec<String> {
        files_under(&self.store)
            .iter()
            .map(|p| p.strip_prefix(&self.store).unwrap().display().to_string())
            .collect()
    }

    fn options(&self) -> ExportOptions {
        ExportOptions {
            name: "dexp".into(),
            here: Uuid::parse(HERE).unwrap(),
            db_parent: self.repo.join(".git/annex"),
            local: None,
            tracking: None,
        }
    }

    async fn export(&self, r: &ExportRemote, tree: ObjectId) -> ExportReport {
        r.export(tree, &self.options(), &|_: &str| {})
            .await
            .unwrap()
    }
}

fn key_of(content: &[u8]) -> Key {
    Key::parse(&sha256e_key(content, ".bin")).unwrap()
}

async fn put(r: &ExportRemote, content: &[u8]) -> PutOutcome {
    let mut src = BytesSource::new(content.to_vec());
    r.put(&key_of(content), &AssociatedFile::none(), &mut src)
        .await
        .unwrap()
}

async fn get(r: &ExportRemote, key: &Key, offset: u64) -> Option<(Vec<u8>, Option<Validity>)> {
    let mut sink = VecSink::new(1 << 30);
    match r
        .get(key, &AssociatedFile::none(), offset, &mut sink)
        .await
        .unwrap()
    {
        GetOutcome::NotPresent => None,
        GetOutcome::Sent { .. } => {
            let v = sink.validity();
            Some((sink.into_data(), v))
        }
    }
}

fn obj(content: &[u8]) -> String {
    ExportPath::annex_object(&key_of(content)).to_string()
}

#[tokio::test]
async fn content_goes_to_its_exported_path_or_to_annexobjects() {
    let f = fixture();
    let r = f.remote(true);
    let (a, b, c) = (
        pseudo_random(3000, 1),
        pseudo_random(10, 2),
        pseudo_random(70_000, 3),
    );
    let t1 = f.commit(
        &[("dir/a.bin", &a), ("b.bin", &b)],
        &[("readme", b"in git\n")],
    );
    // Exported before any content is here: the file kept in git is
    // filled in from git, the annexed ones are not available.
    let report = f.export(&r, t1).await;
    assert!(report.recorded);
    assert_eq!(report.filled, 1);
    assert_eq!(report.unavailable, vec!["b.bin", "dir/a.bin"]);
    assert_eq!(f.files(), vec!["readme"]);
    let log = export_log::parse(f.log().as_bytes());
    assert_eq!(
        export_log::exported_trees(&log, &Uuid::parse(REMOTE).unwrap()),
        vec![t1.to_string()]
    );
    // A key of the tree goes to its path; another to annexobjects.
    assert_eq!(put(&r, &a).await, PutOutcome::Stored(Vec::new()));
    assert_eq!(put(&r, &c).await, PutOutcome::Stored(Vec::new()));
    assert_eq!(put(&r, &a).await, PutOutcome::AlreadyHave(Vec::new()));
    assert_eq!(
        f.files(),
        vec![obj(&c), "dir/a.bin".into(), "readme".into()]
    );
    assert_eq!(fs::read(f.store.join("dir/a.bin")).unwrap(), a);
    for content in [&a, &c] {
        let k = key_of(content);
        assert!(r.check_present(&k).await.unwrap());
        let (got, v) = get(&r, &k, 0).await.unwrap();
        assert_eq!((&got, v), (content, Some(Validity::Valid)));
        let (got, v) = get(&r, &k, 5).await.unwrap();
        assert_eq!((&got[..], v), (&content[5..], Some(Validity::Valid)));
    }
    assert!(!r.check_present(&key_of(&b)).await.unwrap());
    assert!(get(&r, &key_of(&b), 0).await.is_none());
    // A key in the tree cannot be dropped; one in annexobjects can.
    let err = r.remove(&key_of(&a), None).await.unwrap_err();
    assert_eq!(err.to_string(), remote::IN_EXPORTED_TREE);
    assert!(r.remove(&key_of(&c), None).await.unwrap().removed);
    assert!(!r.check_present(&key_of(&c)).await.unwrap());
    assert_eq!(f.files(), vec!["dir/a.bin", "readme"]);

    // Content changed behind the remote's back is sent as invalid.
    let p = f.store.join("dir/a.bin");
    let mut changed = a.clone();
    changed[100] ^= 1;
    fs::write(&p, &changed).unwrap();
    let (_, v) = get(&r, &key_of(&a), 0).await.unwrap();
    assert_eq!(v, Some(Validity::Invalid));
}

#[tokio::test]
async fn wrong_content_never_becomes_visible() {
    let f = fixture();
    let r = f.remote(true);
    let a = pseudo_random(5000, 9);
    let t = f.commit(&[("a.bin", &a)], &[]);
    f.export(&r, t).await;
    let mut wrong = a.clone();
    wrong[4000] ^= 1;
    let mut src = BytesSource::new(wrong);
    let out = r.put(&key_of(&a), &AssociatedFile::none(), &mut src).await;
    assert_eq!(out.unwrap(), PutOutcome::NotStored);
    assert!(f.files().is_empty(), "{:?}", f.files());
    // Not in the tree: the same at annexobjects.
    let c = pseudo_random(5000, 10);
    let mut wrong = c.clone();
    wrong[0] ^= 1;
    let mut src = BytesSource::new(wrong);
    let out = r.put(&key_of(&c), &AssociatedFile::none(), &mut src).await;
    assert_eq!(out.unwrap(), PutOutcome::NotStored);
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[tokio::test]
async fn without_annexobjects_only_the_tree_is_kept() {
    let f = fixture();
    let r = f.remote(false);
    let (a, c) = (pseudo_random(100, 1), pseudo_random(100, 2));
    let t = f.commit(&[("a.bin", &a)], &[]);
    f.export(&r, t).await;
    assert_eq!(put(&r, &a).await, PutOutcome::Stored(Vec::new()));
    let mut src = BytesSource::new(c.clone());
    let err = r
        .put(&key_of(&c), &AssociatedFile::none(), &mut src)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Refused(_)), "{err}");
    let err = r.remove(&key_of(&a), None).await.unwrap_err();
    assert!(err
        .to_string()
        .starts_with("dropping content from an export is not supported"));
}

#[tokio::test]
async fn worm_keys_cannot_be_verified_so_are_not_sent() {
    let f = fixture();
    let r = f.remote(true);
    let k = Key::parse("WORM-s5-m1--x").unwrap();
    let mut src = BytesSource::new(b"hello".to_vec());
    let out = r.put(&k, &AssociatedFile::none(), &mut src).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    let mut sink = VecSink::new(100);
    let err = r
        .get(&k, &AssociatedFile::none(), 0, &mut sink)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exported content cannot be verified due to using the WORM backend"
    );
}

#[tokio::test]
async fn exports_rename_move_aside_and_fill_in() {
    let f = fixture();
    let r = f.remote(true);
    let (a, b, c, d) = (
        pseudo_random(300, 1),
        pseudo_random(400, 2),
        pseudo_random(500, 3),
        pseudo_random(600, 4),
    );
    // Content arrives before any tree: to annexobjects.
    for x in [&a, &b, &c] {
        assert_eq!(put(&r, x).await, PutOutcome::Stored(Vec::new()));
    }
    let t1 = f.commit(&[("a", &a), ("sub/b", &b), ("c", &c)], &[]);
    let report = f.export(&r, t1).await;
    assert_eq!((report.filled, report.complete()), (3, true));
    assert_eq!(f.files(), vec!["a", "c", "sub/b"]);

    // Swapped names, a file gone (to annexobjects), one added twice.
    let t2 = f.commit(&[("a", &c), ("c", &a), ("d1", &d), ("d2", &d)], &[]);
    assert_eq!(put(&r, &d).await, PutOutcome::Stored(Vec::new()));
    let report = f.export(&r, t2).await;
    assert_eq!(report.renamed, 2, "{report:?}");
    assert_eq!(report.unexported, 1, "{report:?}");
    assert!(report.complete(), "{report:?}");
    assert_eq!(fs::read(f.store.join("a")).unwrap(), c);
    assert_eq!(fs::read(f.store.join("c")).unwrap(), a);
    assert_eq!(fs::read(f.store.join("d1")).unwrap(), d);
    assert_eq!(fs::read(f.store.join("d2")).unwrap(), d);
    assert_eq!(
        f.files(),
        vec![obj(&b), "a".into(), "c".into(), "d1".into(), "d2".into()]
    );
    assert!(r.check_present(&key_of(&b)).await.unwrap());

    // Back: b from annexobjects into its place, d removed to annexobjects.
    let report = f.export(&r, t1).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(
        f.files(),
        vec![obj(&d), "a".into(), "c".into(), "sub/b".into()]
    );
    assert_eq!(fs::read(f.store.join("sub/b")).unwrap(), b);
    assert_eq!(fs::read(f.store.join("a")).unwrap(), a);
    let log = export_log::parse(f.log().as_bytes());
    let remote = Uuid::parse(REMOTE).unwrap();
    assert_eq!(
        export_log::exported_trees(&log, &remote),
        vec![t1.to_string()]
    );
    assert!(export_log::incomplete_trees(&log, &remote).is_empty());
    // The tree is grafted into the branch, as git-annex grafts it.
    let grafted = git(&f.repo, &["rev-parse", "git-annex^:export.tree"]);
    assert_eq!(grafted.trim(), t1.to_string());
    // The location log: the remote has every key.
    let branch = f.branch.lock().unwrap();
    for x in [&a, &b, &c, &d] {
        let at = branch.locations_without_clusters(&key_of(x)).unwrap();
        assert_eq!(at, vec![remote.clone()]);
    }
}

#[tokio::test]
async fn a_file_never_exported_leaves_the_tree_without_failing() {
    let f = fixture();
    let r = f.remote(true);
    let (a, b) = (pseudo_random(300, 1), pseudo_random(400, 2));
    put(&r, &a).await;
    // b's content is nowhere: exported without it.
    let t1 = f.commit(&[("a", &a), ("b", &b)], &[]);
    let report = f.export(&r, t1).await;
    assert_eq!(report.unavailable, vec!["b".to_string()]);
    assert!(report.recorded, "{report:?}");
    assert_eq!(f.files(), vec!["a"]);
    // A tree without b: nothing of b to take out, and the export is
    // whole.
    let t2 = f.commit(&[("a", &a)], &[]);
    let report = f.export(&r, t2).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(f.files(), vec!["a"]);
    let log = export_log::parse(f.log().as_bytes());
    let remote = Uuid::parse(REMOTE).unwrap();
    assert_eq!(
        export_log::exported_trees(&log, &remote),
        vec![t2.to_string()]
    );
    assert!(export_log::incomplete_trees(&log, &remote).is_empty());
}

#[tokio::test]
async fn temporary_files_of_an_interrupted_export_are_kept_in_annexobjects() {
    let f = fixture();
    let r = f.remote(true);
    let a = pseudo_random(300, 1);
    let t1 = f.commit(&[("a", &a)], &[]);
    put(&r, &a).await;
    f.export(&r, t1).await;
    // An export of t2 that renamed a to its temporary name, then died.
    let t2 = f.commit(&[("z", &a)], &[]);
    {
        let b = f.branch.lock().unwrap();
        b.change(EXPORT_LOG, |cur| {
            let mut log = export_log::parse(cur);
            export_log::record_beginning(
                &mut log,
                &Uuid::parse(HERE).unwrap(),
                &Uuid::parse(REMOTE).unwrap(),
                &t2.to_string(),
                annex_branch::VectorClock::now(),
            )
            .unwrap();
            Some(export_log::write(&log))
        })
        .unwrap();
    }
    let tmp = ExportPath::temp_name(&key_of(&a)).to_string();
    fs::rename(f.store.join("a"), f.store.join(&tmp)).unwrap();
    // Exporting t1 again: the temporary file goes to annexobjects, and
    // from there back into place.
    let report = f.export(&r, t1).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(f.files(), vec!["a"]);
}

#[test]
fn settings_read_as_git_annex_reads_them() {
    let cfg = |kv: &[(&str, &str)]| -> RemoteConfig { kv.iter().copied().collect() };
    assert_eq!(
        ExportConfig::from_config(&cfg(&[("exporttree", "yes"), ("annexobjects", "yes")])),
        Ok(ExportConfig {
            export_tree: true,
            annex_objects: true
        })
    );
    let only = ExportConfig::from_config(&cfg(&[("exporttree", "yes")])).unwrap();
    assert!(!only.proxyable());
    assert!(ExportConfig::default().proxyable());
    assert!(ExportConfig::from_config(&cfg(&[("exporttree", "true")])).is_err());
    assert_eq!(
        unproxyable_warning("dexp", "Cannot proxy to this remote."),
        "dexp is a special remote configured with exporttree=yes, but without annexobjects=yes. Cannot proxy to this remote. Suggest you run: git-annex enableremote dexp annexobjects=yes"
    );
}
