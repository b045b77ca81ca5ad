//! A gateway's clusters served by p2phttp across reloads of its
//! configuration: a burst of requests for unknown UUIDs reads the
//! configuration once, and an upload in flight while the clusters are
//! rebuilt keeps its reservation, so a second upload does not overfill
//! the node it is going to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use annex_cluster::ClusterRepositories;
use annex_http::server::{AccessPolicy, P2pHttp, Repositories};
use annex_preferred::balanced::Picker;
use annex_protocol::content::BytesSource;
use annex_protocol::repository::{PutData, PutOutcome, PutSource};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid, Validity};
use annex_proxy::GatewayRepositories;
use annex_repo::LocalRepository;
use annex_test_support::{git, init_annex_repo, pseudo_random, sha256e_key};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

/// The size of the upload in flight across the rebuild.
const FIRST: usize = 50_000;
/// The size of the upload made while it is in flight.
const SECOND: usize = 100_000;
/// Each node's maxsize: room for the first upload twice over (so that
/// when the node it goes to is asked first, and reserves it, the other
/// node still sees room there and does not want it too, as git-annex
/// asks its nodes), but not for both uploads.
const MAXSIZE: usize = 120_000;
const _: () = assert!(2 * FIRST <= MAXSIZE && FIRST + SECOND > MAXSIZE && SECOND <= MAXSIZE);

/// A gateway with the cluster `c` of two local nodes in the group
/// `nodes`, which wants `balanced=nodes:1`, each node with a maxsize of
/// [`MAXSIZE`]. Returns the gateway and the nodes' UUIDs.
fn cluster(tmp: &Path) -> (PathBuf, Vec<Uuid>) {
    let (gw, _) = init_annex_repo(tmp, "gw", "gateway");
    let mut nodes = Vec::new();
    for n in ["n1", "n2"] {
        let (d, u) = init_annex_repo(tmp, n, n);
        git(&gw, &["remote", "add", n, d.to_str().unwrap()]);
        git(&gw, &["config", &format!("remote.{n}.annex-uuid"), &u]);
        git(
            &gw,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c"],
        );
        git(&gw, &["fetch", "-q", n]);
        git(&gw, &["annex", "group", n, "nodes"]);
        git(&gw, &["annex", "wanted", n, "groupwanted"]);
        git(&gw, &["annex", "maxsize", n, &MAXSIZE.to_string()]);
        nodes.push(Uuid::parse(&u).unwrap());
    }
    git(&gw, &["annex", "groupwanted", "nodes", "balanced=nodes:1"]);
    git(&gw, &["annex", "initcluster", "c"]);
    git(&gw, &["annex", "updatecluster"]);
    (gw, nodes)
}

fn serve(gw: &Path) -> (Arc<GatewayRepositories>, Arc<ClusterRepositories>) {
    let own = LocalRepository::open(gw).unwrap();
    let g = Arc::new(GatewayRepositories::new(Arc::new(own), gw, &gw.join(".git"), 1).unwrap());
    let c = Arc::new(ClusterRepositories::new(g.clone(), None));
    (g, c)
}

fn unknown() -> Uuid {
    Uuid::parse("0e5d4a02-0000-4000-8000-000000000000").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_unknown_uuids_reads_the_configuration_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, _) = cluster(tmp.path());
    let (g, c) = serve(&gw);
    let mut policy = AccessPolicy::default();
    policy.wide_open = true;
    let service = P2pHttp::new(c, policy);
    let before = g.generation();
    let key = sha256e_key(b"x", ".bin");
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let service = service.clone();
        let target = format!(
            "/git-annex/{}/v4/checkpresent?key={key}&clientuuid={}",
            unknown(),
            Uuid::new_v4()
        );
        burst.spawn(async move {
            let req = http::Request::post(target)
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            service.call(req).await.status().as_u16()
        });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 404);
    }
    // One read for the requests that came before it started, and at most
    // one more for any that came while it ran.
    let reads = g.generation() - before;
    assert!((1..=2).contains(&reads), "{reads} reads for one burst");
}

/// Content that waits to be sent until told to, saying when it is asked
/// for (the nodes are chosen, and their sizes reserved, by then).
struct Held {
    asked: Option<oneshot::Sender<()>>,
    go: Option<oneshot::Receiver<()>>,
    content: BytesSource,
}

#[async_trait]
impl PutSource for Held {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        if let Some(asked) = self.asked.take() {
            let _ = asked.send(());
        }
        if let Some(go) = self.go.take() {
            let _ = go.await;
        }
        self.content.open(offset).await
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        self.content.validity().await
    }
}

fn stored_on(outcome: PutOutcome) -> Vec<Uuid> {
    match outcome {
        PutOutcome::Stored(on) => on,
        other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_across_a_rebuild_still_counts_against_maxsize() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, nodes) = cluster(tmp.path());
    let (_, c) = serve(&gw);
    let cluster_uuid = c.uuids().into_iter().find(Uuid::is_cluster).unwrap();
    let first_cluster = c.lookup(&cluster_uuid).unwrap();

    // Two keys the balanced picker sends to the same node when both have
    // room.
    let picker = Picker::new(&nodes);
    let mut sorted = nodes.clone();
    sorted.sort();
    let key_of = |data: &[u8]| Key::parse(&sha256e_key(data, ".bin")).unwrap();
    let first = pseudo_random(FIRST, 1);
    let first_key = key_of(&first);
    let target = picker.pick(&sorted, &first_key, 1)[0].clone();
    let second = (2..)
        .map(|seed| pseudo_random(SECOND, seed))
        .find(|d| picker.pick(&sorted, &key_of(d), 1)[0] == &target)
        .unwrap();
    let other = nodes.iter().find(|u| **u != target).unwrap().clone();

    // The first upload is chosen its node, then waits.
    let (asked_tx, asked) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    let uploading = {
        let cluster = first_cluster.clone();
        let key = first_key.clone();
        tokio::spawn(async move {
            let mut source = Held {
                asked: Some(asked_tx),
                go: Some(go_rx),
                content: BytesSource::new(first),
            };
            cluster
                .put(&key, &AssociatedFile::none(), &mut source)
                .await
        })
    };
    asked.await.unwrap();

    // The configuration is read again (a request for an unknown UUID),
    // and the clusters rebuilt.
    let repos = c.clone();
    let found = tokio::task::spawn_blocking(move || repos.rescan_and_lookup(&unknown()))
        .await
        .unwrap();
    assert!(found.is_none());
    let rebuilt = c.lookup(&cluster_uuid).unwrap();
    assert!(!Arc::ptr_eq(&first_cluster, &rebuilt), "not rebuilt");

    // The node the first upload goes to has no room for the second.
    let second_key = key_of(&second);
    let mut source = BytesSource::new(Bytes::from(second));
    let on = stored_on(
        rebuilt
            .put(&second_key, &AssociatedFile::none(), &mut source)
            .await
            .unwrap(),
    );
    assert_eq!(on, vec![other], "the second upload overfilled {target}");

    let _ = go.send(());
    let on = stored_on(uploading.await.unwrap().unwrap());
    assert_eq!(on, vec![target]);
}
