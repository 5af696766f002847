//! `round-robin` routing: sends the i-th released request to node i mod N,
//! skipping unhealthy nodes.

use sglab_plugin_sdk::{NoConfig, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router};

#[derive(Default)]
pub struct RoundRobin {
    next: u32,
}

impl Router for RoundRobin {
    const NAME: &'static str = "round-robin";
    const DESCRIPTION: &'static str = "Cycles through the nodes in index order, skipping unhealthy ones.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Self::default())
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let n = nodes.len() as u32;
        for _ in 0..n {
            let candidate = self.next % n;
            self.next = (candidate + 1) % n;
            if nodes.get(candidate).is_some_and(|s| s.healthy) {
                return RouteDecision::Dispatch(candidate);
            }
        }
        RouteDecision::Reject(RejectReason::NoHealthyNode)
    }
}

export_router!(RoundRobin);

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestInfo {
        RequestInfo {
            id: 0,
            arrival_ns: 0,
            input_tokens: 1,
            max_new_tokens: 1,
            prefix_hashes: vec![],
            prefix_block_tokens: 16,
            priority: 0,
            session: None,
        }
    }

    #[test]
    fn cycles_and_skips_unhealthy() {
        let mut sick = NodeTable::idle(1);
        sick.healthy = false;
        let nodes = NodeTable::from_states(vec![NodeTable::idle(0), sick, NodeTable::idle(2)]);
        let mut rr = RoundRobin::default();
        let picks: Vec<_> = (0..4).map(|_| rr.route(&req(), &nodes)).collect();
        use RouteDecision::Dispatch as D;
        assert_eq!(picks, vec![D(0), D(2), D(0), D(2)]);
    }

    #[test]
    fn no_healthy_node_rejects() {
        let mut sick = NodeTable::idle(0);
        sick.healthy = false;
        let nodes = NodeTable::from_states(vec![sick]);
        assert_eq!(RoundRobin::default().route(&req(), &nodes), RouteDecision::Reject(RejectReason::NoHealthyNode));
    }
}
