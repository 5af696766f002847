//! `least-tokens` routing: the healthy node with the fewest tokens still to
//! process — prompt tokens of its in-flight requests plus the output tokens
//! they may still produce. Ties go to the lowest index.

use sglab_plugin_sdk::{NoConfig, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router};

pub struct LeastTokens;

impl Router for LeastTokens {
    const NAME: &'static str = "least-tokens";
    const DESCRIPTION: &'static str = "Sends each request to the healthy node with the fewest outstanding tokens (in-flight prompt tokens + remaining output tokens); ties go to the lowest index.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(LeastTokens)
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        // min_by_key keeps the first of equal keys: the lowest index.
        match nodes.healthy().min_by_key(|n| n.in_flight_input_tokens + n.remaining_output_tokens) {
            Some(n) => RouteDecision::Dispatch(n.index),
            None => RouteDecision::Reject(RejectReason::NoHealthyNode),
        }
    }
}

export_router!(LeastTokens);
