//! Test plugin built against the frozen contract `sglab:strategy@0.1.0`
//! (`wit/since_v0.1.0`) with raw bindings: the host must still run it
//! through its 0.1 adapter, delivering node deltas through `on-nodes`.
//!
//! Releases queued requests in arrival order while fewer than 2 are in
//! flight over all nodes, counted from the table that `on-nodes` keeps
//! (so without those deltas it would release everything at once).

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "sglab:strategy/batcher-plugin" });

    use std::cell::RefCell;
    use std::collections::VecDeque;

    use exports::sglab::strategy::batcher::{Batcher, Guest, GuestBatcher};
    use sglab::strategy::types::{
        Completion, NodeUpdate, PluginError, PluginInfo, PluginKind, PollResult, RequestInfo,
    };

    const CAP: u32 = 2;

    struct Component;

    #[derive(Default)]
    struct State {
        in_flight: Vec<u32>,
        queue: VecDeque<u64>,
        /// Released since the last node delta (not yet counted in it).
        released: u32,
    }

    struct Old {
        state: RefCell<State>,
    }

    impl Guest for Component {
        type Batcher = Old;

        fn info() -> PluginInfo {
            PluginInfo {
                name: "v0-1-batcher".into(),
                version: "0.1.0".into(),
                kind: PluginKind::Batcher,
                description: "Test plugin: at most 2 in flight, built against contract 0.1.".into(),
                options: vec![],
                capabilities: vec![],
            }
        }
    }

    impl GuestBatcher for Old {
        fn create(_config: String) -> Result<Batcher, PluginError> {
            Ok(Batcher::new(Old { state: RefCell::new(State::default()) }))
        }

        fn on_nodes(&self, update: NodeUpdate) {
            let s = &mut *self.state.borrow_mut();
            s.in_flight.resize(update.node_count as usize, 0);
            for n in update.changed {
                s.in_flight[n.index as usize] = n.in_flight;
            }
            s.released = 0;
        }

        fn on_arrival(&self, request: RequestInfo) {
            self.state.borrow_mut().queue.push_back(request.id);
        }

        fn on_complete(&self, _done: Completion) {}

        fn poll(&self, _now: u64) -> PollResult {
            let s = &mut *self.state.borrow_mut();
            let busy: u32 = s.in_flight.iter().sum::<u32>() + s.released;
            let n = CAP.saturating_sub(busy).min(s.queue.len() as u32);
            let release: Vec<u64> = s.queue.drain(..n as usize).collect();
            s.released += n;
            PollResult { release, wake_at: None }
        }
    }

    export!(Component);
}
