//! Uploads fanned out to repositories in this process, hashed once by the
//! gateway: stored everywhere when the content is the key's, nowhere when
//! it is not; and the real git-annex's fsck finds the copies valid.

use std::sync::Arc;

use annex_cluster::fanout::{put_all, NodeResult};
use annex_protocol::content::BytesSource;
use annex_protocol::repository::Repository;
use annex_protocol::{AssociatedFile, Key};
use annex_repo::LocalRepository;
use annex_test_support::{git, init_annex_repo, pseudo_random, sha256e_key};

fn nodes(tmp: &std::path::Path) -> (Vec<std::path::PathBuf>, Vec<Arc<dyn Repository>>) {
    let mut dirs = Vec::new();
    let mut repos: Vec<Arc<dyn Repository>> = Vec::new();
    for i in 0..3 {
        let (d, _) = init_annex_repo(tmp, &format!("n{i}"), &format!("node {i}"));
        repos.push(Arc::new(LocalRepository::open(&d).unwrap()));
        dirs.push(d);
    }
    (dirs, repos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_once_and_stored_on_every_local_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (dirs, repos) = nodes(tmp.path());
    let data = pseudo_random(3_000_000, 5);
    let key = Key::parse(&sha256e_key(&data, ".bin")).unwrap();
    let mut src = BytesSource::new(data);
    let out = put_all(&repos, &key, &AssociatedFile::none(), &mut src, None, true)
        .await
        .unwrap();
    assert!(
        out.results
            .iter()
            .all(|r| matches!(r, NodeResult::Stored(_))),
        "{:?}",
        out.results
    );
    for d in &dirs {
        git(d, &["annex", "fsck", "--quiet", "--all"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_is_not_the_keys_is_stored_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (_dirs, repos) = nodes(tmp.path());
    let data = pseudo_random(2_000_000, 6);
    let key = Key::parse(&sha256e_key(&data, ".bin")).unwrap();
    let mut wrong = data.clone();
    wrong[1_500_000] ^= 1;
    let mut src = BytesSource::new(wrong);
    let out = put_all(&repos, &key, &AssociatedFile::none(), &mut src, None, true)
        .await
        .unwrap();
    assert!(
        out.results
            .iter()
            .all(|r| !matches!(r, NodeResult::Stored(_))),
        "{:?}",
        out.results
    );
    for r in &repos {
        assert!(!r.check_present(&key).await.unwrap());
    }
}
