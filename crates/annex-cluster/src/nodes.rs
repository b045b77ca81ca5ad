//! A cluster's nodes at one gateway, as git-annex finds them
//! (Annex/Cluster.hs): the remotes whose `annex-cluster-node` names one
//! of this repository's clusters (`annex.cluster.NAME`) with that UUID
//! and that cluster.log lists as its nodes; and the same cluster behind
//! another gateway (a remote `GATEWAY-NAME` with the cluster's UUID,
//! proxied by a remote configured with `annex-cluster-gateway`), unless
//! that gateway has been passed already (BYPASS).

use std::collections::BTreeSet;

use annex_protocol::Uuid;
use annex_proxy::{Gateway, Proxied};

/// One node of a cluster, as the gateway reaches it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The repository and the remote that reaches it. For the cluster
    /// behind another gateway, the UUID is the cluster's.
    pub proxied: Proxied,
    /// The remote's cost with the gateways in between
    /// ([`Gateway::cost`]): cheaper nodes are read from first.
    pub cost: f64,
    /// How many gateways stand between this gateway and the node.
    pub hops: u32,
    /// The other gateway, when the node is the cluster behind it.
    pub via_gateway: Option<Uuid>,
}

/// The nodes of cluster `cluster` at `gateway`, cheapest first (in
/// git-annex's order), leaving
/// out gateways in `bypass` (the client's BYPASS list; this gateway is
/// always left out).
pub fn cluster_nodes(gateway: &Gateway, cluster: &Uuid, bypass: &BTreeSet<Uuid>) -> Vec<NodeSpec> {
    let remotes = &gateway.remotes;
    let listed: BTreeSet<&Uuid> = gateway
        .clusters
        .nodes_of(cluster)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let is_my_cluster = |name: &String| remotes.clusters.get(name) == Some(cluster);
    // git-annex's order (Remote.byCost over the remote list): cheapest
    // first, and among remotes of the same cost the last listed first.
    // Uploads ask the nodes' preferred content in this order, and a node
    // that wants the key counts it as in flight for the next ones.
    let mut out = Vec::new();
    for r in remotes.by_cost() {
        let Some(u) = &r.uuid else { continue };
        let via = if !r.cluster_node.is_empty() {
            if !(r.cluster_node.iter().any(is_my_cluster) && listed.contains(u)) {
                continue;
            }
            None
        } else {
            // The same cluster, proxied by another of its gateways.
            if u != cluster {
                continue;
            }
            let Some(gw) = &r.proxied_by else { continue };
            if gw == &gateway.uuid || bypass.contains(gw) {
                continue;
            }
            let is_gateway = remotes
                .remotes
                .iter()
                .any(|p| p.uuid.as_ref() == Some(gw) && p.cluster_gateway.contains(cluster));
            if !is_gateway {
                continue;
            }
            Some(gw.clone())
        };
        out.push(NodeSpec {
            proxied: Proxied {
                uuid: u.clone(),
                remote: r.clone(),
            },
            cost: gateway.cost(r),
            hops: gateway.hops(r),
            via_gateway: via,
        });
    }
    out
}
