//! `power-of-two` routing: sample two distinct healthy nodes at random
//! (seeded) and send to the one with fewer requests in flight.

use sglab_plugin_sdk::{NoConfig, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host};

pub struct PowerOfTwo;

impl Router for PowerOfTwo {
    const NAME: &'static str = "power-of-two";
    const DESCRIPTION: &'static str = "Samples two healthy nodes at random and sends to the one with fewer requests in flight (power of two choices).";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(PowerOfTwo)
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let healthy: Vec<_> = nodes.healthy().collect();
        match healthy.len() {
            0 => RouteDecision::Reject(RejectReason::NoHealthyNode),
            1 => RouteDecision::Dispatch(healthy[0].index),
            n => {
                let a = (host::random_u64() % n as u64) as usize;
                let b = (a + 1 + (host::random_u64() % (n as u64 - 1)) as usize) % n;
                let pick = if healthy[b].in_flight < healthy[a].in_flight { b } else { a };
                RouteDecision::Dispatch(healthy[pick].index)
            }
        }
    }
}

export_router!(PowerOfTwo);
