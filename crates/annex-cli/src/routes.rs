//! How this repository reaches other repositories, as `annex info` shows
//! it: each remote with how many gateways stand in between and the cost
//! that makes (see [`Gateway::cost`]); what it proxies as a gateway; and
//! the nodes of the clusters it serves.

use annex_branch::Branch;
use annex_cluster::cluster_nodes;
use annex_protocol::Uuid;
use annex_proxy::{Gateway, GitRemotes, Remote};
use serde_json::{json, Value};

/// One repository and the way to it.
pub struct Route {
    /// The remote's name.
    pub name: String,
    /// The repository's UUID.
    pub uuid: Uuid,
    /// Gateways in between.
    pub hops: u32,
    /// The cost of reading from it, the gateways counted.
    pub cost: f64,
    /// The gateway it is reached through, if any.
    pub via: Option<Uuid>,
}

impl Route {
    fn of(g: &Gateway, r: &Remote, uuid: &Uuid) -> Route {
        Route {
            name: r.name.clone(),
            uuid: uuid.clone(),
            hops: g.hops(r),
            cost: g.cost(r),
            via: r.proxied_by.clone(),
        }
    }

    /// The route as `annex info` prints it.
    pub fn text(&self) -> String {
        let hops = match self.hops {
            1 => "1 hop".to_owned(),
            n => format!("{n} hops"),
        };
        let via = self
            .via
            .as_ref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        format!(
            "{}: {}{via} ({hops}, cost {})",
            self.name, self.uuid, self.cost
        )
    }

    /// The route in `annex info --json`.
    pub fn json(&self) -> Value {
        json!({"name": self.name, "uuid": self.uuid.as_str(), "hops": self.hops,
               "cost": self.cost, "via": self.via.as_ref().map(|v| v.as_str())})
    }
}

/// The routes of this repository.
pub struct Routes {
    /// Every remote with a UUID, cheapest first.
    pub remotes: Vec<Route>,
    /// The repositories this repository serves as a gateway.
    pub proxied: Vec<Route>,
    /// The clusters it serves, each with its nodes, cheapest first.
    pub clusters: Vec<(Uuid, Vec<Route>)>,
}

/// The routes of the repository whose branch is `branch` and UUID `here`.
pub fn routes(branch: &Branch, here: &Uuid) -> anyhow::Result<Routes> {
    let remotes = GitRemotes::read(branch.git_dir())?;
    let g = Gateway::load(branch, here.clone(), remotes)?;
    let mut all: Vec<Route> = g
        .remotes
        .remotes
        .iter()
        .filter(|r| !r.ignore)
        .filter_map(|r| Some(Route::of(&g, r, r.uuid.as_ref()?)))
        .collect();
    all.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(a.name.cmp(&b.name)));
    let proxied = g
        .proxied()
        .map(|p| Route::of(&g, &p.remote, &p.uuid))
        .collect();
    let clusters = g
        .served_clusters()
        .into_iter()
        .map(|c| {
            let mut nodes: Vec<Route> = cluster_nodes(&g, &c, &Default::default())
                .into_iter()
                .map(|n| Route {
                    name: n.proxied.remote.name.clone(),
                    uuid: n.proxied.uuid.clone(),
                    hops: n.hops,
                    cost: n.cost,
                    via: n.via_gateway.clone(),
                })
                .collect();
            nodes.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(a.name.cmp(&b.name)));
            (c, nodes)
        })
        .collect();
    Ok(Routes {
        remotes: all,
        proxied,
        clusters,
    })
}
