//! The host adapter for plugins built against the frozen contract
//! `sglab:strategy@0.1.x` (`wit/since_v0.1.0/strategy.wit`), as the WIT's
//! versioning rule promises: such a `.wasm` keeps running unchanged.
//!
//! What differs from 0.2, and how the adapter bridges it:
//! - node deltas go in their own `on-nodes` call (a `node-update` record)
//!   before `route`/`poll`, not with them;
//! - `request-info.prefix-hashes` is always filled (0.1 has no
//!   `prefix-hashes` capability).

use sglab_core::policy as core;

use super::sandbox::PluginState;

/// Bindings for the 0.1 `world router-plugin`.
pub mod router_world {
    wasmtime::component::bindgen!({
        path: "../../wit/since_v0.1.0",
        world: "sglab:strategy/router-plugin",
    });
}

/// Bindings for the 0.1 `world batcher-plugin` (sharing the router world's types).
pub mod batcher_world {
    wasmtime::component::bindgen!({
        path: "../../wit/since_v0.1.0",
        world: "sglab:strategy/batcher-plugin",
        with: {
            "sglab:strategy/types": super::router_world::sglab::strategy::types,
            "sglab:strategy/host": super::router_world::sglab::strategy::host,
        },
    });
}

use router_world::sglab::strategy::host::{self as wit_host, LogLevel};
use router_world::sglab::strategy::types as wt;

super::wit::host_functions!(wt::Host, wit_host::Host);
super::wit::conversions!();

/// The name a contract-0.1 capability goes by in results.
fn capability_name(c: wt::Capability) -> &'static str {
    match c {
        wt::Capability::PromptText => "prompt-text",
    }
}

/// Core node delta -> 0.1 `node-update` record.
pub fn node_update(u: &core::NodeUpdate) -> wt::NodeUpdate {
    wt::NodeUpdate { generation: u.generation, node_count: u.node_count, changed: u.changed.iter().map(node).collect() }
}
