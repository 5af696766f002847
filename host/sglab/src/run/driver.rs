//! The live driver: one OS thread that owns the dispatcher and the plugin
//! instances, feeds them arrivals and request events, and starts requests
//! on the tokio runtime. Plugin calls happen inline on this thread (never in
//! an async context), and waits use the channel's timeout, so arrival times
//! are kept with sub-millisecond lag.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use indicatif::ProgressBar;
use sglab_core::Nanos;
use sglab_core::arrival::Schedule;
use sglab_core::config::Backend;
use sglab_core::dispatch::{Action, Dispatcher, Finish};
use sglab_core::policy::{Outcome, PolicyError, RequestInfo};
use sglab_core::record::{RequestRecord, Status};
use sglab_core::workload::{PREFIX_BLOCK_TOKENS, RequestSpec};
use tokio::sync::watch;

use crate::client::{self, Attempt, Endpoint, Http, Sending};
use crate::plugin::{RunClock, WasmBatcher, WasmRouter};
use crate::signals::Signal;

/// What request tasks (and the signal handler) tell the driver.
#[derive(Debug)]
pub enum Event {
    /// The first token of `id` arrived.
    FirstToken {
        /// Request.
        id: u64,
        /// When it was sent.
        to_server: Nanos,
        /// When the token arrived.
        at: Nanos,
    },
    /// Request `id` ended.
    Done {
        /// Request.
        id: u64,
        /// What happened.
        attempt: Attempt,
    },
    /// A signal asked the run to stop (SIGINT, SIGTERM, SIGHUP).
    Interrupt(Signal),
    /// A result file could not be written (a full disk): the run stops at once.
    WriteFailed(String),
}

/// Everything the driver needs.
pub struct Input {
    /// The workload.
    pub specs: Arc<[RequestSpec]>,
    /// When requests arrive.
    pub schedule: Schedule,
    /// Each node.
    pub nodes: Vec<Endpoint>,
    /// Batching plugin.
    pub batcher: WasmBatcher,
    /// Routing plugin.
    pub router: WasmRouter,
    /// Run clock (started by the driver).
    pub clock: RunClock,
    /// How requests are sent (bodies, API, limits).
    pub sending: Arc<Sending>,
    /// Stop dispatching after this long (None: no limit).
    pub max_duration: Option<Nanos>,
    /// Stop dispatching after this many errors (None: no limit).
    pub max_errors: Option<u32>,
    /// False when a router in front of the nodes picks the node: records
    /// then mark the node as unknown.
    pub node_known: bool,
    /// Where finished records go.
    pub records: Sender<RequestRecord>,
    /// Runtime for request tasks.
    pub runtime: tokio::runtime::Handle,
    /// HTTP client.
    pub http: Http,
    /// Progress bar (one tick per finished request).
    pub progress: ProgressBar,
}

/// Why dispatch stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A plugin failed (the run failed).
    Failure(String),
    /// A signal interrupted the run.
    Interrupted(Signal),
    /// A configured stop rule (`max_duration_s`, `max_errors`) ended it.
    Rule(String),
}

impl Stop {
    /// The reason in words.
    pub fn reason(&self) -> String {
        match self {
            Stop::Failure(r) | Stop::Rule(r) => r.clone(),
            Stop::Interrupted(s) => format!("interrupted by {}", s.name()),
        }
    }
}

/// How the run ended.
#[derive(Debug)]
pub struct Output {
    /// Why dispatch stopped early, if it did.
    pub stop: Option<Stop>,
    /// Peak linear memory of the (batching, routing) plugins, bytes.
    pub plugin_memory: (usize, usize),
    /// Time inside the (batching, routing) plugins' calls, and call counts.
    pub plugin_time: [(std::time::Duration, u64); 2],
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    scheduled: Option<Nanos>,
    arrival: Option<Nanos>,
    node: Option<u32>,
}

struct Driver {
    input: Input,
    events: Sender<Event>,
    disp: Dispatcher,
    slots: Vec<Slot>,
    next: usize,
    credits: usize,
    finalized: usize,
    errors: u32,
    stop: Option<Stop>,
    cancel: watch::Sender<bool>,
    /// Closed loop: times at which a user may send again.
    think: BinaryHeap<Reverse<Nanos>>,
    think_ns: Nanos,
}

impl Driver {
    fn record(&mut self, rec: RequestRecord) {
        if rec.status == Status::Error {
            self.errors += 1;
        }
        let _ = self.input.records.send(rec);
        self.finalized += 1;
        if self.think_ns == 0 {
            self.credits += 1;
        } else {
            self.think.push(Reverse(self.input.clock.now_ns() + self.think_ns));
        }
        self.input.progress.inc(1);
        if let Some(max) = self.input.max_errors
            && self.errors >= max
            && self.stop.is_none()
        {
            self.stop(Stop::Rule(format!("max_errors = {max} reached")), false);
        }
    }

    fn unsent(&self, id: usize, status: Status, error: String) -> RequestRecord {
        let s = self.slots[id];
        let spec = &self.input.specs[id];
        let mut r = RequestRecord::unsent(id as u64, (spec.input_len(), spec.output_len), s.scheduled, status, error);
        r.arrival = s.arrival;
        r
    }

    /// Stops dispatching: unsent requests are recorded as cancelled;
    /// in-flight ones are awaited (or cancelled too).
    fn stop(&mut self, why: Stop, cancel_in_flight: bool) {
        if self.stop.is_some() {
            return;
        }
        let reason = why.reason();
        self.stop = Some(why);
        let in_flight = self.disp.in_flight();
        if in_flight > 0 && !cancel_in_flight {
            tracing::warn!("stopping dispatch ({reason}); waiting for {in_flight} request(s) in flight");
        }
        let note = format!("not sent: the run stopped ({reason})");
        for id in self.disp.abort_unsent() {
            let rec = self.unsent(id as usize, Status::Cancelled, note.clone());
            self.record(rec);
        }
        if let Schedule::Timed(t) = &self.input.schedule {
            for (slot, &at) in self.slots.iter_mut().zip(t).skip(self.next) {
                slot.scheduled = Some(at);
            }
        }
        for id in self.next..self.slots.len() {
            let rec = self.unsent(id, Status::Cancelled, note.clone());
            self.record(rec);
        }
        self.next = self.slots.len();
        if cancel_in_flight {
            let _ = self.cancel.send(true);
        }
    }

    fn fail(&mut self, e: PolicyError) {
        self.stop(Stop::Failure(e.to_string()), false);
    }

    fn arrivals(&mut self) {
        let now = self.input.clock.now_ns();
        while self.think.peek().is_some_and(|Reverse(t)| *t <= now) {
            self.think.pop();
            self.credits += 1;
        }
        while self.stop.is_none() && self.next < self.slots.len() {
            let now = self.input.clock.now_ns();
            let scheduled = match &self.input.schedule {
                Schedule::Timed(t) if t[self.next] <= now => t[self.next],
                Schedule::ClosedLoop { .. } if self.credits > 0 => {
                    self.credits -= 1;
                    now
                }
                _ => return,
            };
            let id = self.next;
            let spec = &self.input.specs[id];
            let arrival = self.input.clock.now_ns();
            self.slots[id].scheduled = Some(scheduled);
            self.slots[id].arrival = Some(arrival);
            let info = RequestInfo {
                id: id as u64,
                arrival_ns: arrival,
                input_tokens: spec.input_len(),
                max_new_tokens: spec.output_len,
                prefix_hashes: spec.prefix_hashes.clone(),
                prefix_block_tokens: PREFIX_BLOCK_TOKENS,
                priority: spec.priority,
                session: spec.session,
            };
            self.next += 1;
            if let Err(e) = self.disp.arrive(info, &mut self.input.batcher) {
                // It arrived but the batcher never took it: record it here,
                // since it is in neither the queue nor the unsent rest.
                let rec = self.unsent(id, Status::Cancelled, format!("not sent: {e}"));
                self.record(rec);
                self.fail(e);
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::FirstToken { id, to_server, at } => {
                if self.stop.is_none()
                    && let Err(e) = self.disp.first_token(at, id, at - to_server, &mut self.input.router)
                {
                    self.fail(e);
                }
            }
            Event::Done { id, attempt: a } => {
                let slot = self.slots[id as usize];
                let status = if a.cancelled {
                    Status::Cancelled
                } else if a.error.is_some() {
                    Status::Error
                } else {
                    Status::Ok
                };
                if a.unreachable
                    && let Some(node) = slot.node
                    && self.disp.nodes()[node as usize].healthy
                {
                    tracing::warn!(
                        "node {node} ({}) is unreachable; marking it unhealthy",
                        self.input.nodes[node as usize].base
                    );
                    self.disp.set_healthy(node, false);
                }
                if self.stop.is_none() {
                    let outcome = match status {
                        Status::Ok => Outcome::Ok,
                        Status::Cancelled => Outcome::Cancelled,
                        _ => Outcome::Error,
                    };
                    let ttft = a.first_token.map(|f| f - a.to_server);
                    let (b, r) = (&mut self.input.batcher, &mut self.input.router);
                    let f = Finish {
                        id,
                        outcome,
                        ttft_ns: ttft,
                        latency_ns: a.finish - a.to_server,
                        output_tokens: a.decode_length,
                    };
                    if let Err(e) = self.disp.finish(f, b, r) {
                        self.fail(e);
                    }
                }
                if let Some(r) = &a.refused
                    && self.stop.is_none()
                {
                    // Every later request would be refused the same way.
                    let node = slot.node.map(|n| self.input.nodes[n as usize].base.as_str()).unwrap_or("the node");
                    let why = a.error.as_deref().unwrap_or_default();
                    self.stop(
                        Stop::Failure(format!("{node} refused the request field {}: {why}; {}", r.field, r.hint)),
                        false,
                    );
                }
                let spec = &self.input.specs[id as usize];
                let rec = RequestRecord {
                    id,
                    input_length: a.prompt_tokens.unwrap_or(spec.input_len()),
                    decode_length: a.decode_length,
                    scheduled: slot.scheduled,
                    arrival: slot.arrival,
                    to_server: Some(a.to_server),
                    first_token: a.first_token,
                    finish: Some(a.finish),
                    node: slot.node.filter(|_| self.input.node_known),
                    status,
                    error: a.error.unwrap_or_default(),
                    cached_tokens: a.cached_tokens,
                    token_events: a.token_events,
                    retractions: a.retractions,
                    token_times: a.token_times,
                    requested_output_length: spec.output_len,
                    finish_reason: a.finish_reason.unwrap_or_default(),
                    client_input_length: spec.input_len(),
                    error_kind: a.kind,
                };
                self.record(rec);
            }
            Event::WriteFailed(e) => {
                if self.stop.is_none() {
                    self.stop(Stop::Failure(e), true);
                } else {
                    let _ = self.cancel.send(true);
                }
            }
            Event::Interrupt(sig) => {
                if self.stop.is_some() {
                    // Already stopping (a plugin failed, a rule, an earlier
                    // signal): a signal now cancels what is still in flight.
                    tracing::warn!("{}: cancelling {} request(s) in flight", sig.name(), self.disp.in_flight());
                    let _ = self.cancel.send(true);
                } else {
                    self.stop(Stop::Interrupted(sig), true);
                }
            }
        }
    }

    fn step(&mut self, actions: &mut Vec<Action>) {
        let now = self.input.clock.now_ns();
        if let Some(limit) = self.input.max_duration
            && now >= limit
            && self.stop.is_none()
        {
            self.stop(Stop::Rule(format!("max_duration_s = {} reached", limit as f64 / 1e9)), true);
        }
        if self.stop.is_some() {
            return;
        }
        let (b, r) = (&mut self.input.batcher, &mut self.input.router);
        if let Err(e) = self.disp.step(now, b, r, actions) {
            self.fail(e);
        }
        for action in actions.drain(..) {
            match action {
                Action::Send { id, node } => {
                    self.slots[id as usize].node = Some(node);
                    self.spawn(id, node);
                }
                Action::Reject { id, reason } => {
                    let rec = self.unsent(
                        id as usize,
                        Status::Rejected,
                        format!("rejected by the routing plugin: {}", reason.as_str()),
                    );
                    self.record(rec);
                }
            }
        }
    }

    fn spawn(&self, id: u64, node: u32) {
        let ep = self.input.nodes[node as usize].clone();
        let specs = self.input.specs.clone();
        let http = self.input.http.clone();
        let clock = self.input.clock.clone();
        let sending = self.input.sending.clone();
        let events = self.events.clone();
        let cancel = self.cancel.subscribe();
        self.input.runtime.spawn(async move {
            // Reports Done even if this task panics, so the run never waits for it.
            let mut guard =
                DoneGuard { id, backend: sending.backend, clock: clock.clone(), events: Some(events.clone()) };
            let req = sending.request(ep, &specs[id as usize]);
            let ft = events.clone();
            let on_first = move |to_server, at| {
                let _ = ft.send(Event::FirstToken { id, to_server, at });
            };
            let attempt = client::send(&http, req, clock, cancel, on_first).await;
            guard.events = None;
            let _ = events.send(Event::Done { id, attempt });
        });
    }

    /// The earliest time something is due (next timed arrival or plugin wake-up).
    fn next_due(&self) -> Option<Nanos> {
        if self.stop.is_some() {
            return None;
        }
        let arrival = match &self.input.schedule {
            Schedule::Timed(t) => t.get(self.next).copied(),
            Schedule::ClosedLoop { .. } => self.think.peek().map(|Reverse(t)| *t),
        };
        [arrival, self.disp.next_wake(), self.input.max_duration].into_iter().flatten().min()
    }
}

/// Sends an error `Done` for a request task that ended without one (it panicked).
struct DoneGuard {
    id: u64,
    backend: Backend,
    clock: RunClock,
    events: Option<Sender<Event>>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            let now = self.clock.now_ns();
            let mut st = client::StreamState::new(self.backend, now);
            let why = "internal error: the request task panicked".to_owned();
            st.fail(now, sglab_core::record::ErrorKind::Internal, why);
            let _ = events.send(Event::Done { id: self.id, attempt: st.attempt });
        }
    }
}

/// Runs the whole workload; returns when every request has a record.
pub fn run(input: Input, events_tx: Sender<Event>, events: Receiver<Event>) -> Output {
    let n = input.specs.len();
    let (credits, think_ns) = match input.schedule {
        Schedule::ClosedLoop { users, think_ns } => (users as usize, think_ns),
        Schedule::Timed(_) => (0, 0),
    };
    let (cancel, _) = watch::channel(false);
    let nodes = input.nodes.len();
    let mut d = Driver {
        input,
        events: events_tx,
        disp: Dispatcher::new(nodes, n),
        slots: vec![Slot::default(); n],
        next: 0,
        credits,
        finalized: 0,
        errors: 0,
        stop: None,
        cancel,
        think: BinaryHeap::new(),
        think_ns,
    };
    d.input.clock.start();
    let mut actions = Vec::new();
    while d.finalized < n {
        d.arrivals();
        while let Ok(ev) = events.try_recv() {
            d.handle(ev);
        }
        d.arrivals();
        d.step(&mut actions);
        if d.finalized >= n {
            break;
        }
        let now = d.input.clock.now_ns();
        let got = match d.next_due() {
            Some(t) if t <= now => continue,
            Some(t) => events.recv_timeout(Duration::from_nanos(t - now)),
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(ev) => d.handle(ev),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the driver holds a sender"),
        }
    }
    d.input.progress.finish_and_clear();
    Output {
        stop: d.stop,
        plugin_memory: (d.input.batcher.peak_memory(), d.input.router.peak_memory()),
        plugin_time: [d.input.batcher.call_time(), d.input.router.call_time()],
    }
}
