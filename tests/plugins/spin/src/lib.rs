//! Hostile test plugin: routes the first 3 requests round-robin, then loops
//! forever inside `route`. The host must interrupt it at the deadline.

use sglab_plugin_sdk::{NoConfig, NodeTable, RequestInfo, RouteDecision, Router, export_router};

pub struct Spin;

impl Router for Spin {
    const NAME: &'static str = "spin";
    const DESCRIPTION: &'static str = "Test plugin: an infinite loop in route.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Spin)
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        if request.id < 3 {
            return RouteDecision::Dispatch((request.id % nodes.len() as u64) as u32);
        }
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

export_router!(Spin);
