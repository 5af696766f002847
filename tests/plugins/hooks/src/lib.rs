//! Test plugin on the SDK that implements one lifecycle hook: `route`
//! sends request k to node (completions so far) mod (node count), so the
//! routing shows that every `on-complete` arrived, while the hooks it
//! leaves at their defaults are skipped after their first call.

use sglab_plugin_sdk::{
    Completion, NoConfig, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router,
};

pub struct Hooks {
    completed: u32,
}

impl Router for Hooks {
    const NAME: &'static str = "hooks";
    const DESCRIPTION: &'static str = "Test plugin: routes by the number of completions it was told of.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Hooks { completed: 0 })
    }

    fn route(&mut self, _request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        match nodes.len() as u32 {
            0 => RouteDecision::Reject(RejectReason::NoHealthyNode),
            n => RouteDecision::Dispatch(self.completed % n),
        }
    }

    fn on_complete(&mut self, _done: &Completion, _nodes: &NodeTable) {
        self.completed += 1;
    }
}

export_router!(Hooks);
