//! Native counterparts of the first-party `immediate` and `round-robin`
//! plugins, for what runs the dispatcher without WebAssembly: the event
//! loop benchmark and the core's tests.

use super::{
    BatchPolicy, Completion, NodeIndex, NodeUpdate, PolicyError, PollResult, RequestId, RequestInfo, RouteDecision,
    RoutePolicy,
};
use crate::Nanos;

/// Releases every arrival at the next poll.
#[derive(Debug, Default)]
pub struct Immediate(Vec<RequestId>);

impl BatchPolicy for Immediate {
    fn name(&self) -> &str {
        "immediate"
    }
    fn on_nodes(&mut self, _: &NodeUpdate) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_arrival(&mut self, r: &RequestInfo) -> Result<(), PolicyError> {
        self.0.push(r.id);
        Ok(())
    }
    fn on_complete(&mut self, _: &Completion) -> Result<(), PolicyError> {
        Ok(())
    }
    fn poll(&mut self, _: Nanos) -> Result<PollResult, PolicyError> {
        Ok(PollResult { release: std::mem::take(&mut self.0), wake_at: None })
    }
}

/// Nodes 0, 1, ..., n-1 in turn, as the `round-robin` plugin routes while
/// every node is healthy (it does not check: what uses it runs no faults).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: NodeIndex,
    nodes: u32,
}

impl RoutePolicy for RoundRobin {
    fn name(&self) -> &str {
        "round-robin"
    }
    fn on_nodes(&mut self, u: &NodeUpdate) -> Result<(), PolicyError> {
        self.nodes = u.node_count;
        Ok(())
    }
    fn route(&mut self, _: &RequestInfo) -> Result<RouteDecision, PolicyError> {
        let n = self.nodes.max(1);
        let node = self.next % n;
        self.next = (node + 1) % n;
        Ok(RouteDecision::Dispatch(node))
    }
    fn on_dispatched(&mut self, _: RequestId, _: NodeIndex, _: Nanos) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_first_token(&mut self, _: RequestId, _: NodeIndex, _: Nanos) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_complete(&mut self, _: &Completion) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_tick(&mut self, _: Nanos) -> Result<(), PolicyError> {
        Ok(())
    }
}
