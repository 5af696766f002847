//! Hostile test plugin: routes the first 3 requests round-robin, then
//! answers node 99, which does not exist. The host must report it.

use sglab_plugin_sdk::{NoConfig, NodeTable, RequestInfo, RouteDecision, Router, export_router};

pub struct BadNode;

impl Router for BadNode {
    const NAME: &'static str = "bad-node";
    const DESCRIPTION: &'static str = "Test plugin: returns an unknown node index.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(BadNode)
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        if request.id >= 3 {
            return RouteDecision::Dispatch(99);
        }
        RouteDecision::Dispatch((request.id % nodes.len() as u64) as u32)
    }
}

export_router!(BadNode);
