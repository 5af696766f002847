//! The dispatcher: the client-side queue and per-node bookkeeping, as a
//! sans-IO state machine.
//!
//! The driver (live or virtual-time) feeds it events with the current time —
//! [`Dispatcher::arrive`], [`Dispatcher::first_token`], [`Dispatcher::finish`]
//! — and then calls [`Dispatcher::step`], which polls the batching plugin,
//! routes what it released and returns the [`Action`]s to carry out plus the
//! next time it wants to be stepped. Before any plugin call that reads node
//! state, the plugin is sent the nodes that changed since its last update.
//!
//! Routing is in release order: when the router defers the request at the
//! head of the line, the ones behind it wait too.

use std::collections::VecDeque;

use crate::Nanos;
use crate::policy::{
    BatchPolicy, Completion, NodeIndex, NodeState, NodeUpdate, Outcome, PolicyError, RejectReason, RequestId,
    RequestInfo, RouteDecision, RoutePolicy,
};

/// What the driver must do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start sending request `id` to `node` now.
    Send {
        /// Request.
        id: RequestId,
        /// Node.
        node: NodeIndex,
    },
    /// The router refused request `id`.
    Reject {
        /// Request.
        id: RequestId,
        /// Why.
        reason: RejectReason,
    },
}

/// How a sent request ended, as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// Request.
    pub id: RequestId,
    /// Outcome.
    pub outcome: Outcome,
    /// First token - to_server, if a token came.
    pub ttft_ns: Option<Nanos>,
    /// Finish - to_server.
    pub latency_ns: Nanos,
    /// Output tokens received.
    pub output_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotArrived,
    Queued,
    Released,
    InFlight { node: NodeIndex, first_token: bool },
    Done,
}

/// Which nodes one plugin has not yet been told about.
#[derive(Debug, Clone)]
struct Feed {
    generation: u64,
    dirty: Vec<bool>,
    list: Vec<NodeIndex>,
    /// The last update's list, handed back for the next one (an update
    /// went out with most plugin calls, each a fresh allocation).
    spare: Vec<NodeState>,
}

impl Feed {
    fn all_dirty(n: usize) -> Self {
        Self { generation: 0, dirty: vec![true; n], list: (0..n as NodeIndex).collect(), spare: Vec::new() }
    }

    fn mark(&mut self, node: NodeIndex) {
        if !std::mem::replace(&mut self.dirty[node as usize], true) {
            self.list.push(node);
        }
    }
}

const BATCHER: usize = 0;
const ROUTER: usize = 1;
/// Weight of the newest sample in the per-node TTFT/ITL moving averages.
const EWMA_ALPHA: f64 = 0.125;

/// The dispatcher state machine. See the module docs.
#[derive(Debug)]
pub struct Dispatcher {
    /// Boxed: only requests between arrival and finish hold one (a large
    /// workload keeps 8 bytes per request, not a whole `RequestInfo`).
    infos: Vec<Option<Box<RequestInfo>>>,
    phase: Vec<Phase>,
    pending: VecDeque<RequestId>,
    nodes: Vec<NodeState>,
    feeds: [Feed; 2],
    batcher_wake: Option<Nanos>,
    router_wake: Option<Nanos>,
    queued: usize,
    in_flight: usize,
}

fn ewma(old: Nanos, sample: Nanos) -> Nanos {
    if old == 0 { sample } else { (old as f64 + EWMA_ALPHA * (sample as f64 - old as f64)).round() as Nanos }
}

fn min_opt(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Dispatcher {
    /// A dispatcher for `requests` requests over `nodes` nodes.
    pub fn new(nodes: usize, requests: usize) -> Self {
        Self {
            infos: vec![None; requests],
            phase: vec![Phase::NotArrived; requests],
            pending: VecDeque::new(),
            nodes: (0..nodes as NodeIndex).map(NodeState::idle).collect(),
            feeds: [Feed::all_dirty(nodes), Feed::all_dirty(nodes)],
            batcher_wake: None,
            router_wake: None,
            queued: 0,
            in_flight: 0,
        }
    }

    /// The client's view of every node.
    pub fn nodes(&self) -> &[NodeState] {
        &self.nodes
    }

    /// Requests waiting for the batcher.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Requests released and waiting for the router.
    pub fn pending_route(&self) -> usize {
        self.pending.len()
    }

    /// Requests sent and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The earliest time a plugin asked to be called again.
    pub fn next_wake(&self) -> Option<Nanos> {
        min_opt(self.batcher_wake, self.router_wake)
    }

    /// Tells a plugin (its feed: `BATCHER` or `ROUTER`) of the nodes that
    /// changed since it last heard, through `tell`.
    fn feed(
        &mut self,
        feed: usize,
        mut tell: impl FnMut(&NodeUpdate) -> Result<(), PolicyError>,
    ) -> Result<(), PolicyError> {
        let f = &mut self.feeds[feed];
        if f.list.is_empty() {
            return Ok(());
        }
        f.generation += 1;
        let mut changed = std::mem::take(&mut f.spare);
        changed.clear();
        changed.extend(f.list.drain(..).map(|i| {
            f.dirty[i as usize] = false;
            self.nodes[i as usize]
        }));
        let u = NodeUpdate { generation: f.generation, node_count: self.nodes.len() as u32, changed };
        let told = tell(&u);
        self.feeds[feed].spare = u.changed;
        told
    }

    fn touch(&mut self, node: NodeIndex) {
        for f in &mut self.feeds {
            f.mark(node);
        }
    }

    /// Marks a node unhealthy (or healthy again).
    pub fn set_healthy(&mut self, node: NodeIndex, healthy: bool) {
        self.nodes[node as usize].healthy = healthy;
        self.touch(node);
    }

    /// The server's latest report on `node` (plugins see it with their next
    /// node update).
    pub fn set_server(&mut self, node: NodeIndex, snapshot: crate::policy::ServerSnapshot) {
        self.nodes[node as usize].server = Some(snapshot);
        self.touch(node);
    }

    /// Request `info.id` entered the client queue at `now`.
    pub fn arrive(&mut self, info: RequestInfo, batcher: &mut dyn BatchPolicy) -> Result<(), PolicyError> {
        let id = info.id as usize;
        assert_eq!(self.phase[id], Phase::NotArrived, "request {id} arrived twice");
        self.feed(BATCHER, |u| batcher.on_nodes(u))?;
        batcher.on_arrival(&info)?;
        self.infos[id] = Some(Box::new(info));
        self.phase[id] = Phase::Queued;
        self.queued += 1;
        Ok(())
    }

    /// The first token of `id` arrived at `now`.
    pub fn first_token(
        &mut self,
        now: Nanos,
        id: RequestId,
        ttft_ns: Nanos,
        router: &mut dyn RoutePolicy,
    ) -> Result<(), PolicyError> {
        let Phase::InFlight { node, first_token: false } = self.phase[id as usize] else { return Ok(()) };
        self.phase[id as usize] = Phase::InFlight { node, first_token: true };
        let n = &mut self.nodes[node as usize];
        n.waiting_first_token -= 1;
        n.remaining_output_tokens = n.remaining_output_tokens.saturating_sub(1);
        n.ewma_ttft_ns = ewma(n.ewma_ttft_ns, ttft_ns);
        self.touch(node);
        router.on_first_token(id, node, now)
    }

    /// A request finished; both plugins hear of it. Returns the completion.
    pub fn finish(
        &mut self,
        f: Finish,
        batcher: &mut dyn BatchPolicy,
        router: &mut dyn RoutePolicy,
    ) -> Result<Completion, PolicyError> {
        let Finish { id, outcome, ttft_ns, latency_ns, output_tokens } = f;
        let Phase::InFlight { node, first_token } = self.phase[id as usize] else {
            panic!("request {id} finished but was not in flight");
        };
        self.phase[id as usize] = Phase::Done;
        self.in_flight -= 1;
        let info = self.infos[id as usize].take().expect("in-flight request has info");
        let n = &mut self.nodes[node as usize];
        n.in_flight -= 1;
        if !first_token {
            n.waiting_first_token -= 1;
        }
        n.in_flight_input_tokens -= info.input_tokens as u64;
        let expected_left = info.max_new_tokens as u64 - first_token as u64;
        n.remaining_output_tokens = n.remaining_output_tokens.saturating_sub(expected_left);
        match outcome {
            Outcome::Ok => n.completed += 1,
            Outcome::Error | Outcome::Cancelled => n.failed += 1,
        }
        if let (Some(ttft), true) = (ttft_ns, output_tokens > 1) {
            let itl = latency_ns.saturating_sub(ttft) / (output_tokens as u64 - 1);
            n.ewma_itl_ns = ewma(n.ewma_itl_ns, itl);
        }
        self.touch(node);
        let done =
            Completion { id, node, outcome, ttft_ns, latency_ns, input_tokens: info.input_tokens, output_tokens };
        self.feed(BATCHER, |u| batcher.on_nodes(u))?;
        batcher.on_complete(&done)?;
        router.on_complete(&done)?;
        Ok(done)
    }

    /// Polls the batcher, routes what is released (and what was deferred),
    /// and appends the resulting actions. Returns the next wake-up time.
    pub fn step(
        &mut self,
        now: Nanos,
        batcher: &mut dyn BatchPolicy,
        router: &mut dyn RoutePolicy,
        out: &mut Vec<Action>,
    ) -> Result<Option<Nanos>, PolicyError> {
        // With nothing in the client queue the batcher has nothing to
        // release, and a wake-up could only ask to release nothing: it is
        // not polled (the next arrival polls it, with every node change).
        if self.queued == 0 {
            self.batcher_wake = None;
            return self.route_pending(now, router, out);
        }
        self.feed(BATCHER, |u| batcher.on_nodes(u))?;
        let polled = batcher.poll(now)?;
        for id in polled.release {
            if self.phase.get(id as usize) != Some(&Phase::Queued) {
                return Err(PolicyError {
                    kind: "batching",
                    plugin: batcher.name().to_owned(),
                    call: "poll",
                    cause: format!("invalid answer: released request {id}, which is not in the queue"),
                });
            }
            self.phase[id as usize] = Phase::Released;
            self.queued -= 1;
            self.pending.push_back(id);
        }
        self.batcher_wake = polled.wake_at.map(|w| w.max(now + 1));
        self.route_pending(now, router, out)
    }

    /// Routes what is released (and what was deferred), in release order.
    fn route_pending(
        &mut self,
        now: Nanos,
        router: &mut dyn RoutePolicy,
        out: &mut Vec<Action>,
    ) -> Result<Option<Nanos>, PolicyError> {
        if self.router_wake.is_some_and(|w| now >= w) {
            self.router_wake = None;
            router.on_tick(now)?;
        }
        while let Some(&id) = self.pending.front() {
            self.feed(ROUTER, |u| router.on_nodes(u))?;
            let info: &RequestInfo = self.infos[id as usize].as_ref().expect("released request has info");
            match router.route(info)? {
                RouteDecision::Dispatch(node) => {
                    if node as usize >= self.nodes.len() {
                        return Err(PolicyError {
                            kind: "routing",
                            plugin: router.name().to_owned(),
                            call: "route",
                            cause: format!(
                                "invalid answer: dispatch to node {node} for request {id}, but the run has {} node(s) (0..={})",
                                self.nodes.len(),
                                self.nodes.len() - 1
                            ),
                        });
                    }
                    let (input, max_new) = (info.input_tokens as u64, info.max_new_tokens as u64);
                    self.pending.pop_front();
                    self.phase[id as usize] = Phase::InFlight { node, first_token: false };
                    self.in_flight += 1;
                    let n = &mut self.nodes[node as usize];
                    n.in_flight += 1;
                    n.waiting_first_token += 1;
                    n.in_flight_input_tokens += input;
                    n.remaining_output_tokens += max_new;
                    self.touch(node);
                    out.push(Action::Send { id, node });
                    router.on_dispatched(id, node, now)?;
                }
                RouteDecision::Defer(until) => {
                    self.router_wake = min_opt(self.router_wake, until.map(|u| u.max(now + 1)));
                    break;
                }
                RouteDecision::Reject(reason) => {
                    self.pending.pop_front();
                    self.phase[id as usize] = Phase::Done;
                    self.infos[id as usize] = None;
                    out.push(Action::Reject { id, reason });
                }
            }
        }
        Ok(self.next_wake())
    }

    /// Stops dispatching: every arrived request not yet sent is dropped from
    /// the queues and returned (the driver records them as cancelled).
    pub fn abort_unsent(&mut self) -> Vec<RequestId> {
        let mut ids: Vec<RequestId> = Vec::new();
        for (id, p) in self.phase.iter_mut().enumerate() {
            if matches!(p, Phase::Queued | Phase::Released) {
                *p = Phase::Done;
                ids.push(id as RequestId);
            }
        }
        self.pending.clear();
        self.queued = 0;
        self.batcher_wake = None;
        self.router_wake = None;
        ids
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
