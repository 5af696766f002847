//! The client session: everything between the workload and the wire, as a
//! sans-IO state machine shared by the live and the virtual-time drivers.
//!
//! It owns the arrivals (timed schedules, and closed-loop credits with think
//! time), the stop rules (`max_duration_s`, `max_errors`, a failed plugin, a
//! signal), the [`Dispatcher`] with both strategy plugins, and turning what
//! happened to each request into a [`RequestRecord`]. A driver only moves
//! time and bytes:
//!
//! - it reports what happened with [`Session::first_token`],
//!   [`Session::done`], [`Session::interrupt`], [`Session::write_failed`];
//! - it calls [`Session::poll`] with the current time and carries out the
//!   [`Act`]s it returns (start a request, write a record, cancel what is in
//!   flight);
//! - it waits until [`Session::next_due`] or the next event, whichever comes
//!   first, and stops once [`Session::finished`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::Nanos;
use crate::arrival::Schedule;
use crate::dispatch::{Action, Dispatcher, Finish};
use crate::policy::{BatchPolicy, NodeIndex, Outcome, PolicyError, RequestInfo, RoutePolicy, ServerSnapshot};
use crate::record::{ErrorKind, RequestRecord, Status};
use crate::workload::{PREFIX_BLOCK_TOKENS, RequestSpec};

/// A signal that asks the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Int,
    /// `kill`, `timeout`, systemd, Slurm, Kubernetes.
    Term,
    /// The terminal went away.
    Hup,
}

impl Signal {
    /// The signal's number on Linux (2, 15, 1).
    pub fn number(self) -> u8 {
        match self {
            Signal::Int => 2,
            Signal::Term => 15,
            Signal::Hup => 1,
        }
    }

    /// The exit code, 128 + the signal's number (130, 143, 129).
    pub fn exit_code(self) -> u8 {
        128 + self.number()
    }

    /// `SIGINT`, ...
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }
}

/// The server refused a field of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The dotted path of the field.
    pub field: String,
    /// The experiment key to change.
    pub hint: String,
}

/// What happened to one sent request.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// When sending started.
    pub to_server: Nanos,
    /// First event carrying a token.
    pub first_token: Option<Nanos>,
    /// Final event (`[DONE]`) or the failure.
    pub finish: Nanos,
    /// Output tokens (the server's count where it reports one).
    pub decode_length: u32,
    /// The server's prompt token count, if reported.
    pub prompt_tokens: Option<u32>,
    /// Prefix-cache hit tokens, if reported.
    pub cached_tokens: Option<u32>,
    /// Events that carried at least one token.
    pub token_events: u32,
    /// None when ok; else the error.
    pub error: Option<String>,
    /// The client cancelled it.
    pub cancelled: bool,
    /// The node could not be reached at all (connection refused or failed).
    pub unreachable: bool,
    /// Retractions the server reported.
    pub retractions: Option<u32>,
    /// Every token event: (time, cumulative output tokens).
    pub token_times: Vec<(Nanos, u32)>,
    /// Why the server says it stopped.
    pub finish_reason: Option<String>,
    /// The server refused a field of the request body (stops the run).
    pub refused: Option<Refusal>,
    /// What kind of failure `error` is.
    pub kind: Option<ErrorKind>,
}

impl Attempt {
    /// A request sent at `to_server`, nothing heard yet.
    pub fn new(to_server: Nanos) -> Self {
        Self {
            to_server,
            first_token: None,
            finish: to_server,
            decode_length: 0,
            prompt_tokens: None,
            cached_tokens: None,
            token_events: 0,
            error: None,
            cancelled: false,
            unreachable: false,
            retractions: None,
            token_times: Vec::new(),
            finish_reason: None,
            refused: None,
            kind: None,
        }
    }

    /// Ends it at `at` with an error of `kind`.
    pub fn fail(&mut self, at: Nanos, kind: ErrorKind, msg: String) {
        self.error = Some(msg);
        self.kind = Some(kind);
        self.finish = at;
    }
}

/// Why dispatch stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A plugin failed, or a node refused the request body (the run failed).
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

/// What the driver must do.
#[derive(Debug)]
pub enum Act {
    /// Start request `id` on `node` now.
    Send {
        /// Request.
        id: u64,
        /// Node.
        node: NodeIndex,
    },
    /// Write this finished record.
    Record(RequestRecord),
    /// Cancel every request in flight.
    CancelInFlight,
    /// Something the user should see (a node marked down, a stop that waits).
    Warn(String),
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Stop dispatching after this long (None: no limit).
    pub max_duration: Option<Nanos>,
    /// Stop dispatching after this many errors (None: no limit).
    pub max_errors: Option<u32>,
    /// False when a router in front of the nodes picks the node: records
    /// then mark the node as unknown.
    pub node_known: bool,
    /// Each node's name in messages (its URL).
    pub node_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    scheduled: Option<Nanos>,
    arrival: Option<Nanos>,
    node: Option<NodeIndex>,
}

/// The client session. See the module docs.
pub struct Session<B, R> {
    specs: Arc<[RequestSpec]>,
    /// Each request's prefix hashes until it arrives (then they move into
    /// its `RequestInfo`, which the dispatcher frees once it is sent).
    prefix_hashes: Vec<Vec<u64>>,
    schedule: Schedule,
    cfg: SessionConfig,
    batcher: B,
    router: R,
    disp: Dispatcher,
    slots: Vec<Slot>,
    next: usize,
    credits: usize,
    finalized: usize,
    errors: u32,
    stop: Option<Stop>,
    /// Closed loop: times at which a user may send again.
    think: BinaryHeap<Reverse<Nanos>>,
    think_ns: Nanos,
    acts: Vec<Act>,
    scratch: Vec<Action>,
}

impl<B: BatchPolicy, R: RoutePolicy> Session<B, R> {
    /// A session over `nodes` nodes, nothing arrived yet. `prefix_hashes`
    /// holds each spec's (as [`crate::workload::Generated`] made them).
    pub fn new(
        specs: Arc<[RequestSpec]>,
        prefix_hashes: Vec<Vec<u64>>,
        schedule: Schedule,
        cfg: SessionConfig,
        batcher: B,
        router: R,
    ) -> Self {
        let n = specs.len();
        assert_eq!(prefix_hashes.len(), n, "one prefix-hash list per request");
        let mut think = BinaryHeap::new();
        let (credits, think_ns) = match schedule {
            Schedule::ClosedLoop { users, think_ns, ramp_ns: 0 } => (users as usize, think_ns),
            // A ramp: user u's first request is due at u * ramp / users,
            // held like a user back from thinking.
            Schedule::ClosedLoop { users, think_ns, ramp_ns } => {
                think.extend((0..users as u64).map(|u| Reverse(u * ramp_ns / users as u64)));
                (0, think_ns)
            }
            Schedule::Timed(_) => (0, 0),
        };
        let nodes = cfg.node_names.len();
        Self {
            specs,
            prefix_hashes,
            schedule,
            cfg,
            batcher,
            router,
            disp: Dispatcher::new(nodes, n),
            slots: vec![Slot::default(); n],
            next: 0,
            credits,
            finalized: 0,
            errors: 0,
            stop: None,
            think,
            think_ns,
            acts: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// True once every request has a record.
    pub fn finished(&self) -> bool {
        self.finalized >= self.slots.len()
    }

    /// Records written so far.
    pub fn finalized(&self) -> usize {
        self.finalized
    }

    /// Why dispatch stopped, if it did.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Requests sent and not finished.
    pub fn in_flight(&self) -> usize {
        self.disp.in_flight()
    }

    /// Requests arrived and not yet sent (held by the batcher or waiting
    /// for a route).
    pub fn queued(&self) -> usize {
        self.disp.queued() + self.disp.pending_route()
    }

    /// Each node's requests in flight.
    pub fn node_in_flight(&self) -> impl Iterator<Item = u32> + '_ {
        self.disp.nodes().iter().map(|n| n.in_flight)
    }

    /// The plugins (for their counters).
    pub fn plugins(&self) -> (&B, &R) {
        (&self.batcher, &self.router)
    }

    /// The stop reason and the plugins back.
    pub fn into_parts(self) -> (Option<Stop>, B, R) {
        (self.stop, self.batcher, self.router)
    }

    /// The actions gathered since the last call, in order.
    pub fn take_acts(&mut self, out: &mut Vec<Act>) {
        out.append(&mut self.acts);
    }

    fn record(&mut self, now: Nanos, rec: RequestRecord) {
        if rec.status == Status::Error {
            self.errors += 1;
        }
        self.acts.push(Act::Record(rec));
        self.finalized += 1;
        if self.think_ns == 0 {
            self.credits += 1;
        } else {
            self.think.push(Reverse(now + self.think_ns));
        }
        if let Some(max) = self.cfg.max_errors
            && self.errors >= max
            && self.stop.is_none()
        {
            self.stop(now, Stop::Rule(format!("max_errors = {max} reached")), false);
        }
    }

    fn unsent(&self, id: usize, status: Status, error: String) -> RequestRecord {
        let s = self.slots[id];
        let spec = &self.specs[id];
        let mut r = RequestRecord::unsent(id as u64, (spec.input_len(), spec.output_len), s.scheduled, status, error);
        r.arrival = s.arrival;
        r
    }

    /// Stops dispatching: unsent requests are recorded as cancelled;
    /// in-flight ones are awaited (or cancelled too).
    pub fn stop(&mut self, now: Nanos, why: Stop, cancel_in_flight: bool) {
        if self.stop.is_some() {
            return;
        }
        let reason = why.reason();
        self.stop = Some(why);
        let in_flight = self.disp.in_flight();
        if in_flight > 0 && !cancel_in_flight {
            self.acts
                .push(Act::Warn(format!("stopping dispatch ({reason}); waiting for {in_flight} request(s) in flight")));
        }
        let note = format!("not sent: the run stopped ({reason})");
        for id in self.disp.abort_unsent() {
            let rec = self.unsent(id as usize, Status::Cancelled, note.clone());
            self.record(now, rec);
        }
        if let Schedule::Timed(t) = &self.schedule {
            for (slot, &at) in self.slots.iter_mut().zip(t.iter()).skip(self.next) {
                slot.scheduled = Some(at);
            }
        }
        for id in self.next..self.slots.len() {
            let rec = self.unsent(id, Status::Cancelled, note.clone());
            self.record(now, rec);
        }
        self.next = self.slots.len();
        if cancel_in_flight {
            self.acts.push(Act::CancelInFlight);
        }
    }

    fn fail(&mut self, now: Nanos, e: PolicyError) {
        self.stop(now, Stop::Failure(e.to_string()), false);
    }

    fn arrivals(&mut self, now: Nanos) {
        while self.think.peek().is_some_and(|Reverse(t)| *t <= now) {
            self.think.pop();
            self.credits += 1;
        }
        while self.stop.is_none() && self.next < self.slots.len() {
            let scheduled = match &self.schedule {
                Schedule::Timed(t) if t[self.next] <= now => t[self.next],
                Schedule::ClosedLoop { .. } if self.credits > 0 => {
                    self.credits -= 1;
                    now
                }
                _ => return,
            };
            let id = self.next;
            let spec = &self.specs[id];
            self.slots[id].scheduled = Some(scheduled);
            self.slots[id].arrival = Some(now);
            let info = RequestInfo {
                id: id as u64,
                arrival_ns: now,
                input_tokens: spec.input_len(),
                max_new_tokens: spec.output_len,
                prefix_hashes: std::mem::take(&mut self.prefix_hashes[id]),
                prefix_block_tokens: PREFIX_BLOCK_TOKENS,
                priority: spec.priority,
                session: spec.session,
            };
            self.next += 1;
            if let Err(e) = self.disp.arrive(info, &mut self.batcher) {
                // It arrived but the batcher never took it: record it here,
                // since it is in neither the queue nor the unsent rest.
                let rec = self.unsent(id, Status::Cancelled, format!("not sent: {e}"));
                self.record(now, rec);
                self.fail(now, e);
            }
        }
    }

    /// The first token of `id` (sent at `to_server`) arrived at `at`.
    pub fn first_token(&mut self, id: u64, to_server: Nanos, at: Nanos) {
        if self.stop.is_none()
            && let Err(e) = self.disp.first_token(at, id, at - to_server, &mut self.router)
        {
            self.fail(at, e);
        }
    }

    /// The server's latest report on `node`.
    pub fn server_snapshot(&mut self, node: NodeIndex, snapshot: ServerSnapshot) {
        self.disp.set_server(node, snapshot);
    }

    /// Request `id` ended at `now` as `a` says.
    pub fn done(&mut self, now: Nanos, id: u64, a: Attempt) {
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
            self.acts.push(Act::Warn(format!(
                "node {node} ({}) is unreachable; marking it unhealthy",
                self.cfg.node_names[node as usize]
            )));
            self.disp.set_healthy(node, false);
        }
        if self.stop.is_none() {
            let outcome = match status {
                Status::Ok => Outcome::Ok,
                Status::Cancelled => Outcome::Cancelled,
                _ => Outcome::Error,
            };
            let f = Finish {
                id,
                outcome,
                ttft_ns: a.first_token.map(|f| f - a.to_server),
                latency_ns: a.finish - a.to_server,
                output_tokens: a.decode_length,
            };
            if let Err(e) = self.disp.finish(f, &mut self.batcher, &mut self.router) {
                self.fail(now, e);
            }
        }
        if let Some(r) = &a.refused
            && self.stop.is_none()
        {
            // Every later request would be refused the same way.
            let node = slot.node.map(|n| self.cfg.node_names[n as usize].as_str()).unwrap_or("the node");
            let why = a.error.as_deref().unwrap_or_default();
            let msg = format!("{node} refused the request field {}: {why}; {}", r.field, r.hint);
            self.stop(now, Stop::Failure(msg), false);
        }
        let spec = &self.specs[id as usize];
        let rec = RequestRecord {
            id,
            input_length: a.prompt_tokens.unwrap_or(spec.input_len()),
            decode_length: a.decode_length,
            scheduled: slot.scheduled,
            arrival: slot.arrival,
            to_server: Some(a.to_server),
            first_token: a.first_token,
            finish: Some(a.finish),
            node: slot.node.filter(|_| self.cfg.node_known),
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
        self.record(now, rec);
    }

    /// A result file could not be written (a full disk): stop at once.
    pub fn write_failed(&mut self, now: Nanos, e: String) {
        if self.stop.is_none() {
            self.stop(now, Stop::Failure(e), true);
        } else {
            self.acts.push(Act::CancelInFlight);
        }
    }

    /// A signal arrived: the first stops the run and cancels what is in
    /// flight; one while already stopping cancels what is still in flight.
    pub fn interrupt(&mut self, now: Nanos, sig: Signal) {
        if self.stop.is_some() {
            // Already stopping (a plugin failed, a rule, an earlier
            // signal): a signal now cancels what is still in flight.
            let n = self.disp.in_flight();
            self.acts.push(Act::Warn(format!("{}: cancelling {n} request(s) in flight", sig.name())));
            self.acts.push(Act::CancelInFlight);
        } else {
            self.stop(now, Stop::Interrupted(sig), true);
        }
    }

    /// Admits what has arrived by `now`, applies the stop rules, and runs
    /// the dispatcher: requests to start come out as [`Act::Send`].
    pub fn poll(&mut self, now: Nanos) {
        self.arrivals(now);
        if let Some(limit) = self.cfg.max_duration
            && now >= limit
            && self.stop.is_none()
        {
            self.stop(now, Stop::Rule(format!("max_duration_s = {} reached", limit as f64 / 1e9)), true);
        }
        if self.stop.is_some() {
            return;
        }
        let mut actions = std::mem::take(&mut self.scratch);
        if let Err(e) = self.disp.step(now, &mut self.batcher, &mut self.router, &mut actions) {
            self.fail(now, e);
        }
        for action in actions.drain(..) {
            match action {
                Action::Send { id, node } => {
                    self.slots[id as usize].node = Some(node);
                    self.acts.push(Act::Send { id, node });
                }
                Action::Reject { id, reason } => {
                    let why = format!("rejected by the routing plugin: {}", reason.as_str());
                    let rec = self.unsent(id as usize, Status::Rejected, why);
                    self.record(now, rec);
                }
            }
        }
        self.scratch = actions;
    }

    /// The earliest time something is due (next timed arrival, a user back
    /// from thinking, a plugin wake-up, the duration limit).
    pub fn next_due(&self) -> Option<Nanos> {
        if self.stop.is_some() {
            return None;
        }
        let arrival = match &self.schedule {
            Schedule::Timed(t) => t.get(self.next).copied(),
            Schedule::ClosedLoop { .. } => {
                let credit = (self.credits > 0 && self.next < self.slots.len()).then_some(0);
                credit.or(self.think.peek().map(|Reverse(t)| *t))
            }
        };
        [arrival, self.disp.next_wake(), self.cfg.max_duration].into_iter().flatten().min()
    }
}
