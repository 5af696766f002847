//! # sglab-plugin-sdk
//!
//! Write sglab batching and routing strategies in plain Rust and build them to
//! WebAssembly components (`cargo build --release --target wasm32-wasip2`).
//!
//! Implement [`Router`] or [`Batcher`] for your type and export it with
//! [`export_router!`] or [`export_batcher!`]. The SDK owns the WIT bindings,
//! keeps the node table up to date from the host's deltas, parses your config
//! from JSON into your `Config` type, and fills in the plugin's `info()`.
//!
//! ```ignore
//! use sglab_plugin_sdk::{export_router, NodeTable, RequestInfo, RouteDecision, Router};
//!
//! #[derive(Default)]
//! struct RoundRobin { next: u32 }
//!
//! impl Router for RoundRobin {
//!     const NAME: &'static str = "round-robin";
//!     const DESCRIPTION: &'static str = "Cycles through the nodes in order.";
//!     type Config = sglab_plugin_sdk::NoConfig;
//!     fn new(_: Self::Config) -> Result<Self, String> { Ok(Self::default()) }
//!     fn route(&mut self, _req: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
//!         let node = self.next % nodes.len() as u32;
//!         self.next = self.next.wrapping_add(1);
//!         RouteDecision::Dispatch(node)
//!     }
//! }
//! export_router!(RoundRobin);
//! ```
//!
//! The SDK's version tracks the WIT package: SDK 0.2.x speaks `sglab:strategy@0.2.x`.
//! The export macros expect this crate under its own name (`sglab_plugin_sdk`).

extern crate self as sglab_plugin_sdk;

mod adapter;
mod config;
mod node_table;

pub use adapter::{BatcherAdapter, RouterAdapter};
pub use config::{NoConfig, parse_config};
pub use node_table::NodeTable;

/// Raw bindings for the shared `types` and `host` interfaces. Plugin code
/// normally uses the re-exports at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        inline: "package sglab:sdk-imports; world imports { import sglab:strategy/host@0.2.1; }",
        world: "sglab:sdk-imports/imports",
        runtime_path: "::sglab_plugin_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
        generate_all,
    });
}

pub use bindings::sglab::strategy::types::{
    Capability, Completion, NodeIndex, NodeState, OptionDoc, Outcome, PluginError, PluginInfo, PluginKind, PollResult,
    RejectReason, RequestId, RequestInfo, RouteDecision, ServerSnapshot, TimeNs,
};

/// The host's functions: the run clock, logging, seeded randomness, and
/// (with the `prompt-text` capability) prompt text.
pub mod host {
    pub use crate::bindings::sglab::strategy::host::{Hook, LogLevel, log, now_ns, prompt_text, random_u64, skip_hook};
}

thread_local! {
    /// Set by a lifecycle hook's default body; read by the export glue,
    /// which then tells the host not to call that hook again.
    static DEFAULT_HOOK_RAN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The body of every default lifecycle hook: it does nothing, and says so.
fn default_hook() {
    DEFAULT_HOOK_RAN.with(|ran| ran.set(true));
}

/// Whether the hook just called was a default one (and clears the mark).
pub(crate) fn took_default_hook() -> bool {
    DEFAULT_HOOK_RAN.with(|ran| ran.replace(false))
}

/// The WIT package version this SDK speaks.
pub const WIT_VERSION: &str = "0.2.1";

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

/// A routing strategy: picks the node for each released request.
///
/// Only `NAME`, `DESCRIPTION`, `Config`, [`Router::new`] and [`Router::route`]
/// are required; every lifecycle hook has a default that does nothing, and
/// the first time a default hook runs the host is told not to call it
/// again (`host.skip-hook`): a hook left out costs one call a run.
pub trait Router: Sized + 'static {
    /// Short name shown by `sglab plugin list`/`inspect`.
    const NAME: &'static str;
    /// One paragraph describing the strategy.
    const DESCRIPTION: &'static str;
    /// Capabilities to ask the host for (e.g. prompt text).
    const CAPABILITIES: &'static [Capability] = &[];
    /// The config table, parsed from the JSON the host passes to `create`.
    /// Use `#[serde(deny_unknown_fields)]` so typos are reported.
    type Config: serde::de::DeserializeOwned;

    /// Documents the options of `Config` for `sglab plugin inspect`.
    fn options() -> Vec<OptionDoc> {
        Vec::new()
    }
    /// Builds the router; an `Err` is reported as an invalid config.
    fn new(config: Self::Config) -> Result<Self, String>;
    /// Picks a node. `nodes` is current as of this call.
    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision;
    /// The request was sent to `node`.
    fn on_dispatched(&mut self, _id: RequestId, _node: NodeIndex, _now: TimeNs) {
        default_hook()
    }
    /// The request's first token arrived.
    fn on_first_token(&mut self, _id: RequestId, _node: NodeIndex, _now: TimeNs) {
        default_hook()
    }
    /// The request finished. `nodes` is as of the last `route`.
    fn on_complete(&mut self, _done: &Completion, _nodes: &NodeTable) {
        default_hook()
    }
    /// The wake-up the router asked for (through `RouteDecision::Defer`)
    /// arrived. `nodes` is as of the last `route`.
    fn on_tick(&mut self, _now: TimeNs, _nodes: &NodeTable) {
        default_hook()
    }
}

/// A batching strategy: decides when queued requests are released.
///
/// Only `NAME`, `DESCRIPTION`, `Config`, [`Batcher::new`],
/// [`Batcher::on_arrival`] and [`Batcher::poll`] are required; a default
/// `on_complete` is skipped after its first call, as a router's hooks are.
pub trait Batcher: Sized + 'static {
    /// Short name shown by `sglab plugin list`/`inspect`.
    const NAME: &'static str;
    /// One paragraph describing the strategy.
    const DESCRIPTION: &'static str;
    /// Capabilities to ask the host for (e.g. prompt text).
    const CAPABILITIES: &'static [Capability] = &[];
    /// The config table, parsed from the JSON the host passes to `create`.
    type Config: serde::de::DeserializeOwned;

    /// Documents the options of `Config` for `sglab plugin inspect`.
    fn options() -> Vec<OptionDoc> {
        Vec::new()
    }
    /// Builds the batcher; an `Err` is reported as an invalid config.
    fn new(config: Self::Config) -> Result<Self, String>;
    /// A request entered the client queue. `nodes` is as of the last `poll`.
    fn on_arrival(&mut self, request: &RequestInfo, nodes: &NodeTable);
    /// Which queued requests to release now, and when to be polled again.
    /// `nodes` is current as of this call.
    fn poll(&mut self, now: TimeNs, nodes: &NodeTable) -> PollResult;
    /// A released request finished. `nodes` is as of the last `poll`.
    fn on_complete(&mut self, _done: &Completion, _nodes: &NodeTable) {
        default_hook()
    }
}

/// Documents one config option (for [`Router::options`] / [`Batcher::options`]).
pub fn option(name: &str, value_type: &str, default_value: Option<&str>, help: &str) -> OptionDoc {
    OptionDoc {
        name: name.to_owned(),
        value_type: value_type.to_owned(),
        default_value: default_value.map(str::to_owned),
        help: help.to_owned(),
    }
}

/// Writes a line to the host's log at the given level.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::host::log($crate::host::LogLevel::$level, &::std::format!($($arg)+))
    };
}

/// Exports a [`Router`] implementation as this component's `router`.
#[macro_export]
macro_rules! export_router {
    ($plugin:ty) => {
        // Natively (unit tests of the plugin's logic) there is nothing to
        // export; this keeps the plugin type "used" all the same.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $crate::RouterAdapter::<$plugin>::build;
        };
        // Exports exist only in the component; native builds (unit tests of
        // the plugin's logic) compile the plugin without them.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code, unused_imports, clippy::all)]
        mod __sglab_router_exports {
            use super::*;
            $crate::__generate_router_exports!();
            use exports::sglab::strategy::router as wit;
            type Adapter = $crate::RouterAdapter<$plugin>;
            struct Component;
            impl wit::Guest for Component {
                type Router = Adapter;
                fn info() -> $crate::PluginInfo {
                    Adapter::plugin_info(env!("CARGO_PKG_VERSION"))
                }
            }
            impl wit::GuestRouter for Adapter {
                fn create(config: String) -> Result<wit::Router, $crate::PluginError> {
                    Adapter::build(&config).map(wit::Router::new)
                }
                fn route(&self, changed: Vec<$crate::NodeState>, request: $crate::RequestInfo) -> $crate::RouteDecision {
                    self.decide(changed, &request)
                }
                fn on_dispatched(&self, id: u64, node: u32, now: u64) {
                    self.dispatched(id, node, now)
                }
                fn on_first_token(&self, id: u64, node: u32, now: u64) {
                    self.first_token(id, node, now)
                }
                fn on_complete(&self, done: $crate::Completion) {
                    self.complete(&done)
                }
                fn on_tick(&self, now: u64) {
                    self.tick(now)
                }
            }
            export!(Component with_types_in self);
        }
    };
}

/// Exports a [`Batcher`] implementation as this component's `batcher`.
#[macro_export]
macro_rules! export_batcher {
    ($plugin:ty) => {
        // Natively (unit tests of the plugin's logic) there is nothing to
        // export; this keeps the plugin type "used" all the same.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $crate::BatcherAdapter::<$plugin>::build;
        };
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code, unused_imports, clippy::all)]
        mod __sglab_batcher_exports {
            use super::*;
            $crate::__generate_batcher_exports!();
            use exports::sglab::strategy::batcher as wit;
            type Adapter = $crate::BatcherAdapter<$plugin>;
            struct Component;
            impl wit::Guest for Component {
                type Batcher = Adapter;
                fn info() -> $crate::PluginInfo {
                    Adapter::plugin_info(env!("CARGO_PKG_VERSION"))
                }
            }
            impl wit::GuestBatcher for Adapter {
                fn create(config: String) -> Result<wit::Batcher, $crate::PluginError> {
                    Adapter::build(&config).map(wit::Batcher::new)
                }
                fn on_arrival(&self, request: $crate::RequestInfo) {
                    self.arrival(&request)
                }
                fn on_complete(&self, done: $crate::Completion) {
                    self.complete(&done)
                }
                fn poll(&self, now: u64, changed: Vec<$crate::NodeState>) -> $crate::PollResult {
                    self.poll_now(now, changed)
                }
            }
            export!(Component with_types_in self);
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/export_macros.rs"));
