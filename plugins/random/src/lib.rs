//! `random` routing: a uniformly random healthy node, from the run's seeded
//! generator (reproducible for a seed).

use sglab_plugin_sdk::{NoConfig, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host};

pub struct Random;

impl Router for Random {
    const NAME: &'static str = "random";
    const DESCRIPTION: &'static str = "Sends each request to a uniformly random healthy node (seeded by the run).";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Random)
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let healthy: Vec<u32> = nodes.healthy().map(|n| n.index).collect();
        if healthy.is_empty() {
            return RouteDecision::Reject(RejectReason::NoHealthyNode);
        }
        RouteDecision::Dispatch(healthy[(host::random_u64() % healthy.len() as u64) as usize])
    }
}

export_router!(Random);
