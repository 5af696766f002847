//! The strategy interface as the dispatcher sees it.
//!
//! These types mirror the WIT contract (`wit/strategy.wit`) in plain Rust; the
//! host implements [`RoutePolicy`] and [`BatchPolicy`] over WebAssembly
//! components and converts between the two in one module. Tests and the
//! event-loop benchmark implement them natively ([`native`]).

use crate::Nanos;

pub mod native;

/// Request id (the request's index in the workload).
pub type RequestId = u64;
/// Node index (0-based, stable for the run).
pub type NodeIndex = u32;

/// What a plugin knows about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    /// Id.
    pub id: RequestId,
    /// When it entered the client queue.
    pub arrival_ns: Nanos,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Requested output tokens.
    pub max_new_tokens: u32,
    /// Chained prefix-block hashes.
    pub prefix_hashes: Vec<u64>,
    /// Tokens per prefix block.
    pub prefix_block_tokens: u32,
    /// Priority (larger is more urgent).
    pub priority: i32,
    /// Session key.
    pub session: Option<u64>,
}

/// The server's own report about a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerSnapshot {
    /// Running requests.
    pub running: u32,
    /// Queued requests.
    pub queued: u32,
    /// KV usage 0..1.
    pub kv_usage: f32,
    /// Prefix-cache hit rate 0..1.
    pub cache_hit_rate: f32,
    /// Age of the report.
    pub age_ns: Nanos,
}

/// The client's view of one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeState {
    /// Index.
    pub index: NodeIndex,
    /// False once known down.
    pub healthy: bool,
    /// Sent, not finished.
    pub in_flight: u32,
    /// In flight, no token yet.
    pub waiting_first_token: u32,
    /// Sum of in-flight prompt tokens.
    pub in_flight_input_tokens: u64,
    /// Sum over in-flight requests of tokens still expected.
    pub remaining_output_tokens: u64,
    /// Finished ok.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// EWMA of TTFT.
    pub ewma_ttft_ns: Nanos,
    /// EWMA of inter-token latency.
    pub ewma_itl_ns: Nanos,
    /// Last server report.
    pub server: Option<ServerSnapshot>,
}

impl NodeState {
    /// An idle, healthy node.
    pub fn idle(index: NodeIndex) -> Self {
        Self {
            index,
            healthy: true,
            in_flight: 0,
            waiting_first_token: 0,
            in_flight_input_tokens: 0,
            remaining_output_tokens: 0,
            completed: 0,
            failed: 0,
            ewma_ttft_ns: 0,
            ewma_itl_ns: 0,
            server: None,
        }
    }
}

/// Node states that changed since the plugin's last update.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUpdate {
    /// Per-plugin counter, +1 per update.
    pub generation: u64,
    /// Nodes in the run.
    pub node_count: u32,
    /// Changed nodes.
    pub changed: Vec<NodeState>,
}

/// Why a router refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No healthy node.
    NoHealthyNode,
    /// Every node over capacity.
    OverCapacity,
    /// Policy.
    Policy,
}

impl RejectReason {
    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHealthyNode => "no-healthy-node",
            Self::OverCapacity => "over-capacity",
            Self::Policy => "policy",
        }
    }
}

/// A router's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDecision {
    /// Send to this node.
    Dispatch(NodeIndex),
    /// Keep queued until the next event or this time.
    Defer(Option<Nanos>),
    /// Refuse.
    Reject(RejectReason),
}

/// A batcher's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollResult {
    /// Ids to release now.
    pub release: Vec<RequestId>,
    /// Poll again by this time.
    pub wake_at: Option<Nanos>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished normally.
    Ok,
    /// Failed.
    Error,
    /// Cancelled by the client.
    Cancelled,
}

/// A finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Id.
    pub id: RequestId,
    /// Node.
    pub node: NodeIndex,
    /// Outcome.
    pub outcome: Outcome,
    /// TTFT if a token came.
    pub ttft_ns: Option<Nanos>,
    /// Finish minus to-server.
    pub latency_ns: Nanos,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens received.
    pub output_tokens: u32,
}

/// A plugin call that failed, or answered something impossible. Ends the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} plugin '{plugin}' failed in {call}: {cause}")]
pub struct PolicyError {
    /// `routing` or `batching`.
    pub kind: &'static str,
    /// The plugin's name.
    pub plugin: String,
    /// The WIT function, e.g. `route`.
    pub call: &'static str,
    /// What happened (trap kind and message, or the invalid answer).
    pub cause: String,
}

/// A routing strategy.
pub trait RoutePolicy {
    /// The plugin's name, for error messages.
    fn name(&self) -> &str;
    /// Node deltas.
    fn on_nodes(&mut self, update: &NodeUpdate) -> Result<(), PolicyError>;
    /// Pick a node.
    fn route(&mut self, request: &RequestInfo) -> Result<RouteDecision, PolicyError>;
    /// The request was sent.
    fn on_dispatched(&mut self, id: RequestId, node: NodeIndex, now: Nanos) -> Result<(), PolicyError>;
    /// First token arrived.
    fn on_first_token(&mut self, id: RequestId, node: NodeIndex, now: Nanos) -> Result<(), PolicyError>;
    /// Finished.
    fn on_complete(&mut self, done: &Completion) -> Result<(), PolicyError>;
    /// Wake-up.
    fn on_tick(&mut self, now: Nanos) -> Result<(), PolicyError>;
}

/// A batching strategy.
pub trait BatchPolicy {
    /// The plugin's name, for error messages.
    fn name(&self) -> &str;
    /// Node deltas.
    fn on_nodes(&mut self, update: &NodeUpdate) -> Result<(), PolicyError>;
    /// A request arrived.
    fn on_arrival(&mut self, request: &RequestInfo) -> Result<(), PolicyError>;
    /// A released request finished.
    fn on_complete(&mut self, done: &Completion) -> Result<(), PolicyError>;
    /// What to release now.
    fn poll(&mut self, now: Nanos) -> Result<PollResult, PolicyError>;
}
