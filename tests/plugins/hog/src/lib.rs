//! Hostile test plugin: routes the first 3 requests round-robin, then asks
//! for 1 GiB of memory. The host's memory cap must refuse it.

use sglab_plugin_sdk::{NoConfig, NodeTable, RequestInfo, RouteDecision, Router, export_router};

pub struct Hog;

impl Router for Hog {
    const NAME: &'static str = "hog";
    const DESCRIPTION: &'static str = "Test plugin: allocates 1 GiB in route.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Hog)
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        if request.id >= 3 {
            let big = vec![1u8; 1 << 30];
            std::hint::black_box(&big);
        }
        RouteDecision::Dispatch((request.id % nodes.len() as u64) as u32)
    }
}

export_router!(Hog);
