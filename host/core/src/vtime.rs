//! Virtual time: the client session and the simulated nodes' engines on one
//! discrete-event clock. No HTTP, no tasks, no sleeping: the loop jumps
//! from one due time to the next and hands token events straight from the
//! engines to the session.
//!
//! What is due, in this order when several things fall on the same
//! nanosecond (the order is part of the contract: runs are reproducible):
//! 1. engine steps that end (node by node, each engine's events in order);
//! 2. events on their way back to the client (`virtual_rtt_ms / 2` late);
//! 3. requests reaching a server (`virtual_rtt_ms / 2` plus `--stall-ms`);
//! 4. client timeouts;
//! 5. the session: arrivals, then the plugins' wake-ups and dispatch;
//! 6. the server-metrics sample.
//!
//! A node's faults (`--fail-rate`, `--abort-after-tokens`, `--stall-ms`,
//! `--crash-after-requests`) are modelled as `sglab sim` injects them, with
//! the errors the live client records for them.

use std::collections::VecDeque;

use crate::Nanos;
use crate::config::Backend;
use crate::policy::{BatchPolicy, RoutePolicy, ServerSnapshot};
use crate::record::ErrorKind;
use crate::session::{Act, Attempt, Session, Signal};
use crate::sim::text::tokenize;
use crate::sim::{EngineStats, SimRequest, TokenEvent};
use crate::workload::{Prompt, RequestSpec};

mod flights;
mod node;
#[cfg(test)]
mod tests;

use flights::{Flight, Flights, Hot};
pub use node::VirtualNode;

/// Client settings of a virtual run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Network round trip: half on the way to the server, half back.
    pub rtt: Nanos,
    /// `client.timeout_s`.
    pub timeout: Nanos,
    /// Keep every token event's time (tokens.csv).
    pub token_times: bool,
    /// Streamed responses (token events) or whole bodies.
    pub stream: bool,
    /// The request API (the chat API wraps text in the sim's chat template).
    pub backend: Backend,
    /// Server-metrics sample interval (None: no samples).
    pub sample_every: Option<Nanos>,
    /// Warm-up requests, run on the engines before the run and not recorded.
    pub warmup: u32,
    /// Let engines that can ([`Engine::quiet_decode`]) skip the events of
    /// tokens in the middle of a decode run: the loop then fills in their
    /// times from the engine's decode log when the request's next event
    /// comes (or it times out or is cancelled). The records are the same
    /// either way (a test checks); it is used only where nothing acts on a
    /// single token as it comes: `virtual_rtt_ms = 0` (events reach the
    /// client at once, in the step they were made) and no
    /// `--abort-after-tokens` or `--crash-after-requests` on the node
    /// (both cut a stream at a given token).
    pub quiet_decode: bool,
}

/// What the loop needs from its host.
pub trait Host {
    /// Simulated time moved to `t` (the plugins' clock reads it).
    fn now(&mut self, t: Nanos);
    /// A record, a warning (never `Send` or `CancelInFlight`, which the loop
    /// carries out).
    fn act(&mut self, act: Act);
    /// A server-metrics sample of `node` at `t`.
    fn sample(&mut self, node: usize, t: Nanos, stats: &EngineStats);
    /// A signal or a failed result write since the last call.
    fn interrupt(&mut self) -> Option<HostEvent>;
}

/// Something from outside the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// SIGINT, SIGTERM, SIGHUP.
    Signal(Signal),
    /// A result file could not be written.
    WriteFailed(String),
}

/// What the loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Simulated time at the end, ns (warm-up excluded).
    pub end: Nanos,
    /// Simulated warm-up time, ns.
    pub warmup: Nanos,
    /// Forward passes of every engine.
    pub forward_passes: u64,
    /// Token events from the engines.
    pub engine_events: u64,
    /// Prompt plus generated tokens the engines processed.
    pub tokens: u64,
    /// Loop iterations.
    pub iterations: u64,
}

/// The loop could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("virtual time stalled at {at} ns with {unfinished} request(s) unrecorded and nothing due")]
pub struct Stalled {
    /// When.
    pub at: Nanos,
    /// Requests without a record.
    pub unfinished: usize,
}

enum Back {
    Event(TokenEvent),
    /// A connect failure (`ErrorKind::Connect`) marks the attempt unreachable.
    Fail {
        id: u64,
        kind: ErrorKind,
        msg: String,
    },
}

/// The prompt as the simulator tokenizes it.
pub fn prompt_ids(spec: &RequestSpec, backend: Backend) -> Vec<u32> {
    match &spec.prompt {
        // Room for the output tokens the engine appends.
        Prompt::Ids(ids) => ids.to_vec_with_room(spec.output_len as usize),
        // `sglab sim`'s chat template (sim/openai.rs).
        Prompt::Text(t) if backend == Backend::OpenaiChat => tokenize(&format!("<|user|> {t} <|end|> <|assistant|>")),
        Prompt::Text(t) => tokenize(t),
    }
}

struct Loop<'a, B, R, H> {
    session: &'a mut Session<B, R>,
    nodes: &'a mut [VirtualNode],
    specs: &'a [RequestSpec],
    s: &'a Settings,
    host: &'a mut H,
    flights: Flights,
    back: VecDeque<(Nanos, Back)>,
    arriving: Vec<VecDeque<(Nanos, u64)>>,
    timeouts: VecDeque<(Nanos, u64)>,
    acts: Vec<Act>,
    events: Vec<TokenEvent>,
    offset: Nanos,
    now: Nanos,
    next_sample: Nanos,
    changed: bool,
    stats: LoopStats,
}

impl<B: BatchPolicy, R: RoutePolicy, H: Host> Loop<'_, B, R, H> {
    fn half(&self) -> Nanos {
        self.s.rtt / 2
    }

    /// Carries out what the session asked for, until it asks nothing more.
    fn drain(&mut self) {
        loop {
            self.session.take_acts(&mut self.acts);
            if self.acts.is_empty() {
                return;
            }
            // The list is handed back afterwards: taken and dropped, it
            // was two allocations per request.
            let mut acts = std::mem::take(&mut self.acts);
            for act in acts.drain(..) {
                match act {
                    Act::Send { id, node } => self.send(id, node),
                    Act::CancelInFlight => self.cancel_all(),
                    other => self.host.act(other),
                }
            }
            self.acts = acts;
        }
    }

    fn done(&mut self, id: u64, at: Nanos) {
        if let Some(f) = self.flights.take(id) {
            self.session.done(at, id, f.into_attempt());
            self.changed = true;
        }
    }

    fn fail(&mut self, id: u64, at: Nanos, kind: ErrorKind, msg: String) {
        if let Some(f) = self.flights.get_mut(id) {
            f.attempt.fail(at, kind, msg);
            if kind == ErrorKind::Cancelled {
                f.attempt.cancelled = true;
            }
            if kind == ErrorKind::Connect {
                f.attempt.unreachable = true;
            }
            self.done(id, at);
        }
    }

    fn send(&mut self, id: u64, node: u32) {
        let t = self.now;
        let token_times = if self.s.token_times {
            // One entry per token (streamed): no regrowth on the hot path.
            Vec::with_capacity(self.specs[id as usize].output_len as usize)
        } else {
            Vec::new()
        };
        let hot = Hot {
            to_server: t,
            first_token: None,
            decode_length: 0,
            token_events: 0,
            cached_tokens: 0,
            retractions: 0,
            heard: false,
            token_times,
        };
        self.flights.insert(id, Flight { node, hot, attempt: Box::new(Attempt::new(t)) });
        self.timeouts.push_back((t.saturating_add(self.s.timeout), id));
        let at = t + self.half() + self.nodes[node as usize].faults.stall;
        if at == t {
            self.reach(node, id);
        } else {
            self.arriving[node as usize].push_back((at, id));
        }
    }

    /// Request `id` reaches its server now.
    fn reach(&mut self, node: u32, id: u64) {
        if self.flights.get(id).is_none() {
            return;
        }
        let back_at = self.now + self.half();
        let n = &mut self.nodes[node as usize];
        let fail = if n.crashed {
            let msg = "request failed: connection refused (the server exited: --crash-after-requests)".to_owned();
            Some(Back::Fail { id, kind: ErrorKind::Connect, msg })
        } else if n.faults.fail_rate > 0.0 && n.rng.next_f64() < n.faults.fail_rate {
            let msg = "HTTP 500 Internal Server Error: {\"error\":{\"message\":\"--fail-rate: injected failure\",\"type\":\"invalid_request_error\",\"code\":500}}".to_owned();
            Some(Back::Fail { id, kind: ErrorKind::Http, msg })
        } else {
            None
        };
        match fail {
            Some(f) => self.back_at(back_at, f),
            None => {
                let spec = &self.specs[id as usize];
                let req = SimRequest {
                    input_ids: prompt_ids(spec, self.s.backend),
                    max_new_tokens: spec.output_len,
                    ignore_eos: true,
                };
                self.stats.tokens += req.input_ids.len() as u64;
                n.engine.submit(self.now + self.offset, id, req);
            }
        }
    }

    fn back_at(&mut self, at: Nanos, b: Back) {
        if at == self.now {
            self.deliver(b);
        } else {
            self.back.push_back((at, b));
        }
    }

    /// An engine event or a failure reaches the client now.
    fn deliver(&mut self, b: Back) {
        match b {
            Back::Fail { id, kind, msg } => self.fail(id, self.now, kind, msg),
            Back::Event(ev) => self.deliver_event(ev),
        }
    }

    /// The tokens of request `id` that its engine made without an event
    /// (quiet decode): `n` tokens after the last one the client heard, at
    /// the engine's decode log `from..` (virtual_rtt_ms is 0: they reached
    /// the client as they were made). What a loud engine's events would
    /// have done, in one go.
    fn silent_tokens(&mut self, id: u64, from: u32, n: u32) {
        self.stats.engine_events += u64::from(n);
        let Some(f) = self.flights.get_mut(id) else { return };
        let a = &mut f.hot;
        if self.s.stream {
            a.token_events += n;
            if self.s.token_times {
                let times = &self.nodes[f.node as usize].engine.decode_times()[from as usize..][..n as usize];
                let (off, c) = (self.offset, a.decode_length);
                a.token_times.extend(times.iter().zip(1..).map(|(&t, k)| (t - off, c + k)));
            }
        }
        a.decode_length += n;
    }

    /// Before request `id` ends early (timeout, cancel): its tokens so far
    /// that no event reported.
    fn catch_up(&mut self, node: usize, id: u64) {
        if self.nodes[node].quiet {
            let (from, n) = self.nodes[node].engine.unreported(id);
            if n > 0 {
                self.silent_tokens(id, from, n);
            }
        }
    }

    /// An engine event reaches the client now (the per-token hot path).
    fn deliver_event(&mut self, ev: TokenEvent) {
        let at = self.now;
        let id = ev.key;
        if ev.silent > 0 {
            self.silent_tokens(id, ev.silent_from, ev.silent);
        }
        if let Some(err) = ev.error {
            return self.fail(id, at, ErrorKind::ServerError, format!("server error in stream: {err}"));
        }
        let Some(f) = self.flights.get_mut(id) else { return };
        let node = f.node as usize;
        let a = &mut f.hot;
        if !a.heard {
            a.heard = true;
            f.attempt.prompt_tokens = Some(self.specs[id as usize].input_len);
        }
        a.cached_tokens = ev.cached_tokens;
        a.retractions = ev.retractions;
        let mut first = None;
        if ev.completion_tokens > a.decode_length && (self.s.stream || ev.finished) {
            a.token_events += 1;
            if a.first_token.is_none() {
                a.first_token = Some(at);
                first = Some(a.to_server);
            }
            if self.s.token_times {
                a.token_times.push((at, ev.completion_tokens));
            }
        }
        a.decode_length = ev.completion_tokens;
        if ev.finished {
            f.attempt.finish = at;
            f.attempt.finish_reason = Some("length".to_owned());
        }
        if let Some(to_server) = first {
            self.session.first_token(id, to_server, at);
            self.changed = true;
        }
        if ev.finished {
            return self.done(id, at);
        }
        let cut = self.nodes[node].faults.abort_after_tokens.is_some_and(|n| ev.completion_tokens >= n);
        if cut {
            // The server ends the stream there, without the final event.
            self.nodes[node].engine.cancel(id);
            self.fail(id, at, ErrorKind::StreamCut, "stream ended before a finish_reason or [DONE]".to_owned());
        }
    }

    /// An event leaves engine `node` now.
    fn engine_event(&mut self, node: usize, ev: TokenEvent) {
        self.stats.engine_events += 1;
        let id = ev.key as usize;
        if ev.finished {
            let n = &mut self.nodes[node];
            n.finished += 1;
            if n.faults.crash_after_requests.is_some_and(|c| n.finished >= c) && !n.crashed {
                n.crashed = true;
                self.crash(node, id);
            }
        }
        let half = self.half();
        if half == 0 {
            // It arrives at once (an event of a request no longer in flight is dropped there).
            self.deliver_event(ev);
        } else if self.flights.get(id as u64).is_some() {
            self.back.push_back((self.now + half, Back::Event(ev)));
        }
    }

    /// Node `node` exited (`--crash-after-requests`) as request `last` finished.
    fn crash(&mut self, node: usize, last: usize) {
        let msg =
            "stream broken: connection closed before message completed (the server exited: --crash-after-requests)";
        let at = self.now + self.half();
        let on_node: Vec<u64> = (self.flights.ids().into_iter())
            .filter(|&i| i != last as u64 && self.flights.get(i).is_some_and(|f| f.node as usize == node))
            .collect();
        for id in on_node {
            self.nodes[node].engine.cancel(id);
            let b = Back::Fail { id, kind: ErrorKind::StreamBroken, msg: msg.to_owned() };
            self.back_at(at, b);
        }
    }

    fn cancel_all(&mut self) {
        for id in self.flights.ids() {
            if let Some(f) = self.flights.get(id) {
                let node = f.node as usize;
                self.catch_up(node, id);
                self.nodes[node].engine.cancel(id);
                self.fail(id, self.now, ErrorKind::Cancelled, "cancelled: the run stopped".to_owned());
            }
        }
    }

    fn sample(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let st = n.engine.stats();
            self.host.sample(i, self.now, &st);
            let kv = if st.max_total_num_tokens > 0 {
                st.num_used_tokens as f32 / st.max_total_num_tokens as f32
            } else {
                0.0
            };
            let snap = ServerSnapshot {
                running: st.num_running_reqs as u32,
                queued: st.num_queue_reqs as u32,
                kv_usage: kv,
                cache_hit_rate: st.cache_hit_rate as f32,
                age_ns: 0,
            };
            self.session.server_snapshot(i as u32, snap);
        }
        self.changed = true;
    }

    /// Runs the warm-up requests to completion; returns when they ended.
    fn warmup(&mut self) -> Nanos {
        let Some(spec) = self.specs.first() else { return 0 };
        let n = self.specs.len() as u64;
        let mut left = self.s.warmup as usize;
        for i in 0..self.s.warmup as u64 {
            let node = (i % self.nodes.len() as u64) as usize;
            let req = SimRequest {
                input_ids: prompt_ids(spec, self.s.backend),
                max_new_tokens: spec.output_len.min(32),
                ignore_eos: true,
            };
            self.nodes[node].engine.submit(0, n + i, req);
        }
        let mut t = 0;
        while left > 0 {
            let Some(next) = self.nodes.iter().filter_map(|n| n.engine.next_event_at()).min() else { break };
            t = next;
            for n in self.nodes.iter_mut() {
                if n.engine.next_event_at().is_some_and(|e| e <= t) {
                    n.engine.advance(t, &mut self.events);
                }
            }
            left -= self.events.drain(..).filter(|e| e.finished).count();
        }
        t
    }

    fn next_time(&self) -> Option<Nanos> {
        let off = self.offset;
        let engines = self.nodes.iter().filter_map(|n| n.engine.next_event_at()).map(|t| t.saturating_sub(off)).min();
        let arriving = self.arriving.iter().filter_map(|q| q.front().map(|&(t, _)| t)).min();
        let sample = self.s.sample_every.filter(|_| !self.session.finished()).map(|_| self.next_sample);
        [
            engines,
            self.back.front().map(|&(t, _)| t),
            arriving,
            self.timeouts.front().map(|&(t, _)| t),
            self.session.next_due(),
            sample,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Runs `session` over `nodes` on virtual time until every request has a
/// record. The session's records and warnings go to `host`.
pub fn run<B: BatchPolicy, R: RoutePolicy, H: Host>(
    session: &mut Session<B, R>,
    nodes: &mut [VirtualNode],
    specs: &[RequestSpec],
    s: &Settings,
    host: &mut H,
) -> Result<LoopStats, Stalled> {
    let n = nodes.len();
    let mut l = Loop {
        session,
        nodes,
        specs,
        s,
        host,
        flights: Flights::new(specs.len()),
        back: VecDeque::new(),
        arriving: (0..n).map(|_| VecDeque::new()).collect(),
        timeouts: VecDeque::new(),
        acts: Vec::new(),
        events: Vec::new(),
        offset: 0,
        now: 0,
        next_sample: 0,
        changed: true,
        stats: LoopStats::default(),
    };
    for n in l.nodes.iter_mut() {
        let cuts = n.faults.abort_after_tokens.is_some() || n.faults.crash_after_requests.is_some();
        n.quiet = s.quiet_decode && s.rtt == 0 && !cuts && n.engine.quiet_decode();
    }
    l.offset = l.warmup();
    l.stats.warmup = l.offset;
    l.host.now(0);
    loop {
        if let Some(ev) = l.host.interrupt() {
            match ev {
                HostEvent::Signal(sig) => l.session.interrupt(l.now, sig),
                HostEvent::WriteFailed(e) => l.session.write_failed(l.now, e),
            }
            l.changed = true;
            l.drain();
        }
        if l.session.finished() {
            break;
        }
        let Some(t) = l.next_time() else {
            return Err(Stalled { at: l.now, unfinished: l.specs.len() - l.session.finalized() });
        };
        // Never backwards: something due "before now" is due now.
        let t = t.max(l.now);
        l.stats.iterations += 1;
        l.now = t;
        l.host.now(t);
        // 1. Engine steps that end now.
        let engine_now = t + l.offset;
        for i in 0..n {
            if l.nodes[i].engine.next_event_at().is_some_and(|e| e <= engine_now) {
                let mut evs = std::mem::take(&mut l.events);
                l.nodes[i].engine.advance(engine_now, &mut evs);
                for ev in evs.drain(..) {
                    l.engine_event(i, ev);
                }
                l.events = evs;
                l.drain();
            }
        }
        // 2. Events reaching the client.
        while l.back.front().is_some_and(|&(at, _)| at <= t) {
            let (_, b) = l.back.pop_front().expect("front exists");
            l.deliver(b);
            l.drain();
        }
        // 3. Requests reaching their server.
        for i in 0..n {
            while l.arriving[i].front().is_some_and(|&(at, _)| at <= t) {
                let (_, id) = l.arriving[i].pop_front().expect("front exists");
                l.reach(i as u32, id);
                l.drain();
            }
        }
        // 4. Timeouts.
        while l.timeouts.front().is_some_and(|&(at, _)| at <= t) {
            let (_, id) = l.timeouts.pop_front().expect("front exists");
            if let Some(f) = l.flights.get(id) {
                let node = f.node as usize;
                l.catch_up(node, id);
                l.nodes[node].engine.cancel(id);
                let msg = format!("timed out after {:.1} s", l.s.timeout as f64 / 1e9);
                l.fail(id, t, ErrorKind::Timeout, msg);
                l.drain();
            }
        }
        // 5. The session, when something changed or it is due.
        if l.changed || l.session.next_due().is_some_and(|d| d <= t) {
            l.changed = false;
            l.session.poll(t);
            l.drain();
        }
        // 6. Server metrics.
        if let Some(every) = l.s.sample_every
            && t >= l.next_sample
            && !l.session.finished()
        {
            l.sample();
            l.next_sample = t - t % every + every;
        }
    }
    l.stats.end = l.now;
    for node in l.nodes.iter() {
        let st = node.engine.stats();
        l.stats.forward_passes += st.steps_total;
        l.stats.tokens += st.generation_tokens_total;
    }
    Ok(l.stats)
}
