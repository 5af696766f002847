//! Drives built-in plugins through the real runtime (engine, sandbox, WIT
//! conversions) with scripted events, for exact-decision tests.

// Shared by several test binaries; each uses a part.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use sglab::plugin::{Kind, Limits, RunClock, Runtime, WasmBatcher, WasmRouter};
use sglab_core::policy::{BatchPolicy, NodeState, NodeUpdate, RequestInfo, RoutePolicy};

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_secs(1),
        backstop: Duration::from_secs(5),
        output_bytes: 4096,
        seed: 1,
    }
}

/// Built-in router `name` with `config` (JSON), told about `nodes` idle nodes.
pub fn router(name: &str, config: &str, nodes: u32) -> WasmRouter {
    let loaded = Runtime::get().load(name, Path::new("."), Kind::Routing).expect("built-in router");
    let mut r = WasmRouter::new(&loaded, config, limits(), RunClock::new()).expect("create");
    r.on_nodes(&all_idle(nodes)).expect("on-nodes");
    r
}

/// Built-in batcher `name` with `config` (JSON), told about `nodes` idle nodes.
pub fn batcher(name: &str, config: &str, nodes: u32) -> WasmBatcher {
    let loaded = Runtime::get().load(name, Path::new("."), Kind::Batching).expect("built-in batcher");
    let mut b = WasmBatcher::new(&loaded, config, limits(), RunClock::new()).expect("create");
    b.on_nodes(&all_idle(nodes)).expect("on-nodes");
    b
}

/// The error `create` gives for `config`.
pub fn config_error(name: &str, kind: Kind, config: &str) -> String {
    let loaded = Runtime::get().load(name, Path::new("."), kind).expect("built-in");
    let err = match kind {
        Kind::Routing => WasmRouter::new(&loaded, config, limits(), RunClock::new()).err(),
        Kind::Batching => WasmBatcher::new(&loaded, config, limits(), RunClock::new()).err(),
    };
    err.map(|e| e.to_string()).unwrap_or_else(|| panic!("{name} accepted {config}"))
}

/// Every node idle and healthy (generation 1).
pub fn all_idle(n: u32) -> NodeUpdate {
    NodeUpdate { generation: 1, node_count: n, changed: (0..n).map(NodeState::idle).collect() }
}

/// An update of the given node states among `n` nodes.
pub fn changed(generation: u64, n: u32, states: Vec<NodeState>) -> NodeUpdate {
    NodeUpdate { generation, node_count: n, changed: states }
}

/// Node `index` with `in_flight` requests holding the given tokens.
pub fn busy(index: u32, in_flight: u32, input_tokens: u64, output_tokens: u64) -> NodeState {
    NodeState {
        in_flight,
        in_flight_input_tokens: input_tokens,
        remaining_output_tokens: output_tokens,
        ..NodeState::idle(index)
    }
}

/// A request arriving at `arrival_ms`.
pub fn request(id: u64, arrival_ms: u64, input_tokens: u32, max_new_tokens: u32) -> RequestInfo {
    RequestInfo {
        id,
        arrival_ns: arrival_ms * 1_000_000,
        input_tokens,
        max_new_tokens,
        prefix_hashes: Vec::new(),
        prefix_block_tokens: 16,
        priority: 0,
        session: None,
    }
}

/// Polls at `now_ms` and returns the released ids.
pub fn poll(b: &mut WasmBatcher, now_ms: u64) -> Vec<u64> {
    b.poll(now_ms * 1_000_000).expect("poll").release
}
