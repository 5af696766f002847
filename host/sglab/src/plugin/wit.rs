//! The WIT contract on the host side: generated bindings, the host functions
//! plugins import, and every conversion between WIT types and the core's
//! types. This is the only module that knows both.

use sglab_core::policy as core;

use super::sandbox::{Hook, PluginState};

/// Bindings for `world router-plugin`.
pub mod router_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sglab:strategy/router-plugin",
    });
}

/// Bindings for `world batcher-plugin` (sharing the router world's types).
pub mod batcher_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sglab:strategy/batcher-plugin",
        with: {
            "sglab:strategy/types": super::router_world::sglab::strategy::types,
            "sglab:strategy/host": super::router_world::sglab::strategy::host,
        },
    });
}

pub use router_world::sglab::strategy::host::{self as wit_host, LogLevel};
pub use router_world::sglab::strategy::types as wt;

/// Implements a contract version's `types` and `host` traits for
/// [`PluginState`] (the same host functions in every version).
macro_rules! host_functions {
    ($types:path, $host:path $(, { $($newer:tt)* })?) => {
        impl $types for PluginState {}

        impl $host for PluginState {
            fn now_ns(&mut self) -> u64 {
                PluginState::now_ns(self)
            }

            fn log(&mut self, level: LogLevel, message: String) {
                let level = match level {
                    LogLevel::Trace => tracing::Level::TRACE,
                    LogLevel::Debug => tracing::Level::DEBUG,
                    LogLevel::Info => tracing::Level::INFO,
                    LogLevel::Warn => tracing::Level::WARN,
                    LogLevel::Error => tracing::Level::ERROR,
                };
                PluginState::log(self, level, &message);
            }

            fn random_u64(&mut self) -> u64 {
                PluginState::random_u64(self)
            }

            fn prompt_text(&mut self, id: u64) -> Option<String> {
                PluginState::prompt_text(self, id)
            }

            // The functions later contract versions added.
            $($($newer)*)?
        }
    };
}
pub(super) use host_functions;

host_functions!(wt::Host, wit_host::Host, {
    fn skip_hook(&mut self, hook: wit_host::Hook) {
        self.skipped.insert(match hook {
            wit_host::Hook::OnArrival => Hook::OnArrival,
            wit_host::Hook::OnDispatched => Hook::OnDispatched,
            wit_host::Hook::OnFirstToken => Hook::OnFirstToken,
            wit_host::Hook::OnComplete => Hook::OnComplete,
            wit_host::Hook::OnTick => Hook::OnTick,
        });
    }
});

/// The conversions between the core's types and a contract version's
/// `types` (`wt` at the call site), the same in every version. Each
/// version's module expands it once.
macro_rules! conversions {
    () => {
        /// Core request -> WIT record; `hashes`: the plugin has the
        /// `prefix-hashes` capability (otherwise the list goes empty: lifting it
        /// into a Python plugin costs about 0.25 µs per hash).
        pub fn request(r: &core::RequestInfo, hashes: bool) -> wt::RequestInfo {
            wt::RequestInfo {
                id: r.id,
                arrival_ns: r.arrival_ns,
                input_tokens: r.input_tokens,
                max_new_tokens: r.max_new_tokens,
                prefix_hashes: if hashes { r.prefix_hashes.clone() } else { Vec::new() },
                prefix_block_tokens: r.prefix_block_tokens,
                priority: r.priority,
                session: r.session,
            }
        }

        pub fn node(n: &core::NodeState) -> wt::NodeState {
            wt::NodeState {
                index: n.index,
                healthy: n.healthy,
                in_flight: n.in_flight,
                waiting_first_token: n.waiting_first_token,
                in_flight_input_tokens: n.in_flight_input_tokens,
                remaining_output_tokens: n.remaining_output_tokens,
                completed: n.completed,
                failed: n.failed,
                ewma_ttft_ns: n.ewma_ttft_ns,
                ewma_itl_ns: n.ewma_itl_ns,
                server: n.server.map(|s| wt::ServerSnapshot {
                    running: s.running,
                    queued: s.queued,
                    kv_usage: s.kv_usage,
                    cache_hit_rate: s.cache_hit_rate,
                    age_ns: s.age_ns,
                }),
            }
        }

        /// Core completion -> WIT record.
        pub fn completion(c: &core::Completion) -> wt::Completion {
            wt::Completion {
                id: c.id,
                node: c.node,
                outcome: match c.outcome {
                    core::Outcome::Ok => wt::Outcome::Ok,
                    core::Outcome::Error => wt::Outcome::Error,
                    core::Outcome::Cancelled => wt::Outcome::Cancelled,
                },
                ttft_ns: c.ttft_ns,
                latency_ns: c.latency_ns,
                input_tokens: c.input_tokens,
                output_tokens: c.output_tokens,
            }
        }

        /// WIT route decision -> core.
        pub fn route_decision(d: wt::RouteDecision) -> core::RouteDecision {
            match d {
                wt::RouteDecision::Dispatch(n) => core::RouteDecision::Dispatch(n),
                wt::RouteDecision::Defer(t) => core::RouteDecision::Defer(t),
                wt::RouteDecision::Reject(r) => core::RouteDecision::Reject(match r {
                    wt::RejectReason::NoHealthyNode => core::RejectReason::NoHealthyNode,
                    wt::RejectReason::OverCapacity => core::RejectReason::OverCapacity,
                    wt::RejectReason::Policy => core::RejectReason::Policy,
                }),
            }
        }

        /// WIT poll result -> core.
        pub fn poll_result(p: wt::PollResult) -> core::PollResult {
            core::PollResult { release: p.release, wake_at: p.wake_at }
        }

        /// WIT plugin-info -> host description.
        pub fn plugin_meta(i: wt::PluginInfo) -> super::wit::PluginMeta {
            super::wit::PluginMeta {
                name: i.name,
                version: i.version,
                kind: match i.kind {
                    wt::PluginKind::Router => "routing",
                    wt::PluginKind::Batcher => "batching",
                },
                description: i.description,
                options: i
                    .options
                    .into_iter()
                    .map(|o| super::wit::OptionMeta {
                        name: o.name,
                        value_type: o.value_type,
                        default: o.default_value,
                        help: o.help,
                    })
                    .collect(),
                capabilities: i.capabilities.into_iter().map(capability_name).collect(),
            }
        }

        /// WIT plugin-error -> message.
        pub fn plugin_error(e: wt::PluginError) -> String {
            match e {
                wt::PluginError::InvalidConfig(m) => m,
                wt::PluginError::Internal(m) => format!("internal error: {m}"),
            }
        }
    };
}
pub(super) use conversions;

conversions!();

/// Folds delta `u` into the changes not yet delivered: the plugin
/// receives node changes with its next `route`/`poll` (contract 0.2), so
/// two deltas in between become one, each node's latest state once, in
/// first-change order.
pub fn merge_update(pending: &mut Vec<wt::NodeState>, u: &core::NodeUpdate) {
    for n in &u.changed {
        match pending.iter_mut().find(|c| c.index == n.index) {
            Some(slot) => *slot = node(n),
            None => pending.push(node(n)),
        }
    }
}

/// A plugin's self-description, in host terms (serialised into results).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginMeta {
    /// Short name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// `routing` or `batching`.
    pub kind: &'static str,
    /// Description.
    pub description: String,
    /// Options: (name, type, default, help).
    pub options: Vec<OptionMeta>,
    /// Capabilities asked for.
    pub capabilities: Vec<&'static str>,
}

/// One documented option.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptionMeta {
    /// Key.
    pub name: String,
    /// Type in words.
    pub value_type: String,
    /// Default as TOML text.
    pub default: Option<String>,
    /// Help.
    pub help: String,
}

/// The name a contract-0.2 capability goes by in results.
fn capability_name(c: wt::Capability) -> &'static str {
    match c {
        wt::Capability::PromptText => "prompt-text",
        wt::Capability::PrefixHashes => "prefix-hashes",
    }
}
