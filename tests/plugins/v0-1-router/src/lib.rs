//! Test plugin built against the frozen contract `sglab:strategy@0.1.0`
//! (`wit/since_v0.1.0`) with raw bindings, as a `.wasm` shared before 0.2
//! was: the host must still run it through its 0.1 adapter, delivering
//! node deltas through `on-nodes` and prefix hashes in every request.
//!
//! Routes to the healthy node with the fewest requests in flight (lowest
//! index on ties), from the table that `on-nodes` keeps; refuses a request
//! (`policy`) whose prefix hashes are missing, and with no table yet
//! (`no-healthy-node`).

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "sglab:strategy/router-plugin" });

    use std::cell::RefCell;

    use exports::sglab::strategy::router::{Guest, GuestRouter, Router};
    use sglab::strategy::types::{
        Completion, NodeState, NodeUpdate, PluginError, PluginInfo, PluginKind, RejectReason, RequestInfo,
        RouteDecision,
    };

    struct Component;

    struct Old {
        nodes: RefCell<Vec<NodeState>>,
    }

    impl Guest for Component {
        type Router = Old;

        fn info() -> PluginInfo {
            PluginInfo {
                name: "v0-1-router".into(),
                version: "0.1.0".into(),
                kind: PluginKind::Router,
                description: "Test plugin: least in-flight, built against contract 0.1.".into(),
                options: vec![],
                capabilities: vec![],
            }
        }
    }

    impl GuestRouter for Old {
        fn create(_config: String) -> Result<Router, PluginError> {
            Ok(Router::new(Old { nodes: RefCell::new(Vec::new()) }))
        }

        fn on_nodes(&self, update: NodeUpdate) {
            let mut nodes = self.nodes.borrow_mut();
            for n in update.changed {
                let i = n.index as usize;
                if i >= nodes.len() {
                    nodes.resize(i + 1, n.clone());
                }
                nodes[i] = n;
            }
        }

        fn route(&self, request: RequestInfo) -> RouteDecision {
            let full_blocks = request.input_tokens / request.prefix_block_tokens.max(1);
            if request.prefix_hashes.len() as u32 != full_blocks {
                return RouteDecision::Reject(RejectReason::Policy);
            }
            let nodes = self.nodes.borrow();
            match nodes.iter().filter(|n| n.healthy).min_by_key(|n| (n.in_flight, n.index)) {
                Some(n) => RouteDecision::Dispatch(n.index),
                None => RouteDecision::Reject(RejectReason::NoHealthyNode),
            }
        }

        fn on_dispatched(&self, _id: u64, _node: u32, _now: u64) {}

        fn on_first_token(&self, _id: u64, _node: u32, _now: u64) {}

        fn on_complete(&self, _done: Completion) {}

        fn on_tick(&self, _now: u64) {}
    }

    export!(Component);
}
