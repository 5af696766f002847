//! Test plugin built against contract `sglab:strategy@0.2.0`
//! (`tests/fixtures/wit-0.2.0`, the contract before `host.skip-hook`) with
//! raw bindings, as a `.wasm` shared before 0.2.1 was: the host must run
//! it unchanged and call every hook, since it never asked to skip one.
//!
//! Round-robin over the node count its first `route` lists.

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({ path: "../../fixtures/wit-0.2.0", world: "sglab:strategy/router-plugin" });

    use std::cell::Cell;

    use exports::sglab::strategy::router::{Guest, GuestRouter, Router};
    use sglab::strategy::types::{
        Completion, NodeState, PluginError, PluginInfo, PluginKind, RejectReason, RequestInfo, RouteDecision,
    };

    struct Component;

    struct Old {
        nodes: Cell<u32>,
        next: Cell<u32>,
    }

    impl Guest for Component {
        type Router = Old;

        fn info() -> PluginInfo {
            PluginInfo {
                name: "v0-2-0-router".into(),
                version: "0.2.0".into(),
                kind: PluginKind::Router,
                description: "Test plugin: round-robin, built against contract 0.2.0.".into(),
                options: vec![],
                capabilities: vec![],
            }
        }
    }

    impl GuestRouter for Old {
        fn create(_config: String) -> Result<Router, PluginError> {
            Ok(Router::new(Old { nodes: Cell::new(0), next: Cell::new(0) }))
        }

        fn route(&self, changed: Vec<NodeState>, _request: RequestInfo) -> RouteDecision {
            if let Some(most) = changed.iter().map(|n| n.index + 1).max() {
                self.nodes.set(self.nodes.get().max(most));
            }
            let n = self.nodes.get();
            if n == 0 {
                return RouteDecision::Reject(RejectReason::NoHealthyNode);
            }
            let i = self.next.get();
            self.next.set((i + 1) % n);
            RouteDecision::Dispatch(i)
        }

        fn on_dispatched(&self, _id: u64, _node: u32, _now: u64) {}

        fn on_first_token(&self, _id: u64, _node: u32, _now: u64) {}

        fn on_complete(&self, _done: Completion) {}

        fn on_tick(&self, _now: u64) {}
    }

    export!(Component);
}
