//! `least-inflight` routing: the healthy node with the fewest requests in
//! flight; ties broken at random (seeded), optionally capped per node.

use serde::Deserialize;
use sglab_plugin_sdk::{NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Refuse (defer) when every node has this many in flight.
    #[serde(default)]
    max_in_flight: Option<u32>,
}

pub struct LeastInflight {
    cap: u32,
}

impl Router for LeastInflight {
    const NAME: &'static str = "least-inflight";
    const DESCRIPTION: &'static str = "Sends each request to the healthy node with the fewest requests in flight (random tie-break); with max_in_flight, waits while every node is full.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![option(
            "max_in_flight",
            "integer",
            None,
            "per-node cap; requests wait in the client queue while every node is at it",
        )]
    }

    fn new(c: Config) -> Result<Self, String> {
        match c.max_in_flight {
            Some(0) => Err("max_in_flight: must be at least 1".into()),
            cap => Ok(Self { cap: cap.unwrap_or(u32::MAX) }),
        }
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let Some(min) = nodes.healthy().map(|n| n.in_flight).min() else {
            return RouteDecision::Reject(RejectReason::NoHealthyNode);
        };
        if min >= self.cap {
            return RouteDecision::Defer(None);
        }
        let best: Vec<u32> = nodes.healthy().filter(|n| n.in_flight == min).map(|n| n.index).collect();
        RouteDecision::Dispatch(best[(host::random_u64() % best.len() as u64) as usize])
    }
}

export_router!(LeastInflight);
