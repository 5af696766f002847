//! A discrete copy of SGLang 0.5.23's scheduler, timed by the cost model.
//!
//! Rules and where they come from (SGLang 0.5.23, `python/sglang/srt/`):
//! - Step order — merge the last prefill into the running batch, try a
//!   prefill batch, else decode ("prefill first"): `managers/scheduler.py`
//!   `get_next_batch_to_run`, `event_loop_overlap`.
//! - Prefill admission with head-of-line blocking, the three budgets
//!   (KV tokens with reservations, `max_prefill_tokens`,
//!   `chunked_prefill_size`), at most one chunked request, the continuing
//!   chunk first, `max_running_requests` slots, `batch_is_full`:
//!   `managers/scheduler.py` `_get_new_batch_prefill_raw`,
//!   `managers/schedule_policy.py` `PrefillAdder`, `mem_cache/prefill_budget.py`.
//! - Reservations `min(max_new - out, 4096) × (ignore_eos ? 1 : new_token_ratio)`
//!   for running requests, full clipped `max_new` for new ones:
//!   `schedule_policy.py` `PrefillAdder.__init__`, `add_one_req`.
//! - `new_token_ratio` init/min/decay/reset: `managers/scheduler_components/new_token_ratio_tracker.py`.
//! - Decode memory check and retraction (fewest outputs first, then longest
//!   prompt; back to the queue tail; re-prefill minus the cached prefix; 20
//!   tokens per remaining request evicted; ratio re-estimated):
//!   `managers/schedule_batch.py` `check_decode_mem`, `retract_decode`.
//! - Prefix cache: match capped at len-1, prompt inserted and locked after
//!   prefill (and between chunks), prompt+output inserted and unlocked at
//!   finish, LRU eviction on demand: `mem_cache/radix_cache.py`, `mem_cache/common.py`.
//! - Policies fcfs, lof, random, lpm (FCFS above 128 waiting):
//!   `managers/schedule_policy.py` `SchedulePolicy.calc_priority`.
//! - `max_new_tokens` clamping and the input-length limit:
//!   `managers/scheduler.py` `init_req_max_new_tokens`.
//!
//! Not modelled: the overlap scheduler's one-step lag (tokens are emitted at
//! the end of the step that computes them), mixed chunks, in-batch prefix
//! dedup of `lpm`, priority scheduling, EOS sampling (every request runs to
//! `max_new_tokens`), speculative decoding, DP attention.

mod commit;
mod decode;
mod prefill;
mod req;

use std::collections::{HashMap, VecDeque};

use super::cost::{Profile, StepShape};
use super::radix::{NodeId, ROOT, RadixCache};
use super::{Engine, EngineStats, SimRequest, TokenEvent};
use crate::Nanos;
use crate::rng::Rng;
use req::Req;

/// Reservations clip `max_new_tokens` to this (SGLang `CLIP_MAX_NEW_TOKENS`).
const CLIP_MAX_NEW_TOKENS: u64 = 4096;
/// Tokens evicted per remaining request on retraction (`SGLANG_RETRACT_DECODE_STEPS`).
const RETRACT_DECODE_STEPS: u64 = 20;
/// LPM falls back to FCFS above this many waiting requests.
const LPM_FALLBACK_QUEUE: usize = 128;
/// Decode steps per `gen_throughput` window (`--decode-log-interval`).
const DECODE_LOG_INTERVAL: u64 = 40;

/// Waiting-queue order (`--schedule-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Arrival order; retracted requests at the tail.
    Fcfs,
    /// Longest cached prefix first (FCFS above 128 waiting).
    Lpm,
    /// Shuffled on every admission attempt.
    Random,
    /// Longest output (`max_new_tokens`) first.
    Lof,
}

impl Policy {
    /// Parses a `--schedule-policy` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fcfs" => Self::Fcfs,
            "lpm" => Self::Lpm,
            "random" => Self::Random,
            "lof" => Self::Lof,
            _ => return None,
        })
    }
}

/// Scheduler settings (SGLang `ServerArgs` names).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// KV pool capacity in tokens (`max_total_num_tokens`).
    pub max_total_tokens: u64,
    /// Running + newly admitted requests at most.
    pub max_running_requests: u64,
    /// Prefill tokens per step per chunk; None disables chunking.
    pub chunked_prefill_size: Option<u64>,
    /// Prefill tokens per step.
    pub max_prefill_tokens: u64,
    /// Queue order.
    pub policy: Policy,
    /// Scales the initial new-token ratio (default 1.0).
    pub schedule_conservativeness: f64,
    /// No prefix cache: nothing is shared, KV is freed at finish.
    pub disable_radix_cache: bool,
    /// Model context length (caps request length).
    pub context_len: u64,
    /// Delay before a submitted request reaches the scheduler.
    pub ingest_ns: Nanos,
    /// Seed for the `random` policy.
    pub seed: u64,
}

impl SchedulerConfig {
    /// SGLang's defaults for `profile` (automatic memory fraction).
    pub fn for_profile(p: &Profile) -> Self {
        let cap = p.kv_capacity(p.auto_mem_fraction(p.chunked_prefill_size));
        Self {
            max_total_tokens: cap,
            max_running_requests: p.default_max_running(cap),
            chunked_prefill_size: Some(p.chunked_prefill_size),
            max_prefill_tokens: p.max_prefill_tokens,
            policy: Policy::Fcfs,
            schedule_conservativeness: 1.0,
            disable_radix_cache: false,
            context_len: p.context_len,
            ingest_ns: (p.ingest_ms * 1e6).round() as Nanos,
            seed: 0,
        }
    }
}

#[derive(Debug)]
enum Batch {
    /// (request, extend tokens) per admitted request.
    Prefill(Vec<(usize, u64)>),
    /// The running requests and the KV tokens the step reads.
    Decode(Vec<usize>, u64),
}

/// SGLang's scheduler over a simulated GPU. See the module docs.
#[derive(Debug)]
pub struct SglangEngine {
    cfg: SchedulerConfig,
    profile: Profile,
    slots: Vec<Option<Req>>,
    free_slots: Vec<usize>,
    by_key: HashMap<u64, usize>,
    arrivals: VecDeque<(Nanos, usize)>,
    waiting: Vec<usize>,
    running: Vec<usize>,
    /// The last decode batch's list, kept for the next one (a decode step
    /// allocated a copy of the running batch).
    spare: Vec<usize>,
    chunked: Option<usize>,
    batch_is_full: bool,
    radix: RadixCache,
    private_total: u64,
    ratio: f64,
    ratio_init: f64,
    ratio_min: f64,
    ratio_decay: f64,
    step: Option<(Nanos, Batch)>,
    /// Requests marked cancelled and not yet released (spares the per-step
    /// scan of the running batch when there are none).
    marked: usize,
    free_at: Nanos,
    pending_events: Vec<TokenEvent>,
    rng: Rng,
    stats: EngineStats,
    window: (Nanos, u64, u64),
    log: Option<Vec<StepLog>>,
    /// Quiet decode (see [`Engine::quiet_decode`]).
    quiet: bool,
    /// Every decode step's end time, while quiet.
    decode_log: Vec<Nanos>,
}

/// One forward pass, as SGLang's "Prefill batch" / "Decode batch" log lines
/// describe it (recorded only after [`SglangEngine::record_steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLog {
    /// Start time.
    pub start: Nanos,
    /// End time.
    pub end: Nanos,
    /// Requests in a prefill batch (0 for decode).
    pub prefill_reqs: u32,
    /// Extend tokens computed (prefill).
    pub extend_tokens: u64,
    /// Decode batch size (0 for prefill).
    pub decode_seqs: u32,
}

impl SglangEngine {
    /// An idle engine.
    pub fn new(cfg: SchedulerConfig, profile: Profile) -> Self {
        let ratio_init = (0.7 * cfg.schedule_conservativeness).min(1.0);
        let ratio_min = (ratio_init * 0.14).min(1.0);
        let stats = EngineStats {
            max_total_num_tokens: cfg.max_total_tokens,
            max_running_requests: cfg.max_running_requests,
            new_token_ratio: ratio_init,
            ..EngineStats::default()
        };
        Self {
            rng: Rng::new(cfg.seed, 0x51A),
            cfg,
            profile,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_key: HashMap::new(),
            arrivals: VecDeque::new(),
            waiting: Vec::new(),
            running: Vec::new(),
            chunked: None,
            batch_is_full: false,
            radix: RadixCache::new(),
            private_total: 0,
            ratio: ratio_init,
            ratio_init,
            ratio_min,
            ratio_decay: (ratio_init - ratio_min) / 600.0,
            step: None,
            marked: 0,
            free_at: 0,
            pending_events: Vec::new(),
            stats,
            window: (0, 0, 0),
            log: None,
            quiet: false,
            decode_log: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Starts recording every step (see [`SglangEngine::take_steps`]).
    pub fn record_steps(&mut self) {
        self.log.get_or_insert_with(Vec::new);
    }

    /// The steps recorded since the last call.
    pub fn take_steps(&mut self) -> Vec<StepLog> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The scheduler settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    fn req(&self, i: usize) -> &Req {
        self.slots[i].as_ref().expect("live request")
    }

    fn req_mut(&mut self, i: usize) -> &mut Req {
        self.slots[i].as_mut().expect("live request")
    }

    fn free(&self) -> u64 {
        self.cfg.max_total_tokens.saturating_sub(self.radix.total() + self.private_total)
    }

    fn available(&self) -> u64 {
        self.free() + self.radix.evictable()
    }

    /// Takes `n` KV slots for request `i`, evicting cache if needed.
    fn alloc(&mut self, i: usize, n: u64) -> bool {
        let free = self.free();
        if free < n {
            self.radix.evict(n - free);
        }
        if self.free() < n {
            return false;
        }
        self.private_total += n;
        self.req_mut(i).private += n;
        true
    }

    fn set_lock(&mut self, i: usize, node: Option<NodeId>) {
        if let Some(n) = node {
            self.radix.lock(n);
        }
        if let Some(old) = std::mem::replace(&mut self.req_mut(i).lock, node) {
            self.radix.unlock(old);
        }
    }

    /// Puts the request's computed KV into the tree (locked by it) and
    /// releases its private slots (duplicates are freed).
    fn checkpoint(&mut self, i: usize) {
        let (kv_len, private) = (self.req(i).kv_len, self.req(i).private);
        self.req_mut(i).materialize(kv_len);
        self.private_total -= private;
        self.req_mut(i).private = 0;
        if self.cfg.disable_radix_cache {
            // Without a tree the KV stays private.
            self.private_total += private;
            self.req_mut(i).private = private;
            return;
        }
        // The tree reads the request's tokens in place (no copy): the slot
        // and the tree are disjoint fields. The node the request holds
        // (from its prefix match or last checkpoint) spells the start of
        // its ids, which only grow: the insert resumes there.
        let r = self.slots[i].as_ref().expect("live request");
        let (tokens, held) = (&r.tokens[..kv_len], r.lock.unwrap_or(ROOT));
        let (_, node) = self.radix.insert_locked(tokens, held);
        // Locked by the insert: the request's old lock goes.
        if let Some(old) = self.req_mut(i).lock.replace(node) {
            self.radix.unlock(old);
        }
    }

    /// A finished, aborted or cancelled request gives back everything;
    /// its KV stays in the tree as evictable cache.
    fn release(&mut self, i: usize, insert: bool) {
        if insert && !self.cfg.disable_radix_cache {
            self.checkpoint(i);
        }
        self.private_total -= self.req(i).private;
        self.set_lock(i, None);
        let r = self.slots[i].take().expect("live request");
        self.marked -= usize::from(r.cancelled);
        self.by_key.remove(&r.key);
        self.free_slots.push(i);
        self.batch_is_full = false;
    }

    /// Request `i`'s event (see [`Req::event`]).
    fn event(&mut self, i: usize, finished: bool, token: bool) -> TokenEvent {
        let next = self.decode_log.len() as u32;
        self.req_mut(i).event(finished, token, next)
    }

    fn abort(&mut self, i: usize, msg: &str, out: &mut Vec<TokenEvent>) {
        let mut ev = self.event(i, true, false);
        ev.error = Some(msg.to_owned());
        out.push(ev);
        self.release(i, false);
    }

    fn shape(&self, batch: &Batch) -> StepShape {
        match batch {
            Batch::Prefill(items) => {
                let mut s = StepShape::default();
                for &(i, ext) in items {
                    let p = self.req(i).kv_len as f64;
                    s.extend_tokens += ext;
                    s.prefill_pairs += ext as f64 * (p + (ext as f64 + 1.0) / 2.0);
                }
                s
            }
            Batch::Decode(items, kv_tokens) => {
                StepShape { decode_seqs: items.len() as u32, decode_kv_tokens: *kv_tokens, ..StepShape::default() }
            }
        }
    }

    fn refresh_stats(&mut self) {
        let used = self.cfg.max_total_tokens - self.free() - self.radix.evictable();
        let waiting_tokens = self.waiting.iter().map(|&i| self.slots[i].as_ref().map_or(0, |r| r.len() as u64)).sum();
        let s = &mut self.stats;
        s.num_running_reqs = self.running.len() as u64 + self.chunked.is_some() as u64;
        s.num_queue_reqs = self.waiting.len() as u64 + self.arrivals.len() as u64;
        s.evictable_tokens = self.radix.evictable();
        s.num_used_tokens = used;
        s.new_token_ratio = self.ratio;
        s.waiting_uncached_tokens = waiting_tokens;
    }
}

impl Engine for SglangEngine {
    fn submit(&mut self, now: Nanos, key: u64, req: SimRequest) {
        let max_req_len = (self.cfg.context_len - 1).min(self.cfg.max_total_tokens.saturating_sub(1));
        let input_len = req.input_ids.len() as u64;
        if input_len == 0 || input_len + 5 > max_req_len {
            self.pending_events.push(TokenEvent::abort(
                key,
                format!(
                    "The input ({input_len} tokens) is longer than the model's context length ({max_req_len} tokens)."
                ),
            ));
            return;
        }
        let max_new = (req.max_new_tokens as u64).min(max_req_len - input_len - 1);
        let r = Req::new(key, req.input_ids, max_new, req.ignore_eos);
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(r);
                s
            }
            None => {
                self.slots.push(Some(r));
                self.slots.len() - 1
            }
        };
        self.by_key.insert(key, slot);
        if max_new == 0 {
            // Nothing to generate: answer at once.
            let ev = self.event(slot, true, false);
            self.pending_events.push(ev);
            self.release(slot, false);
            return;
        }
        self.arrivals.push_back((now + self.cfg.ingest_ns, slot));
    }

    fn cancel(&mut self, key: u64) {
        let Some(&i) = self.by_key.get(&key) else { return };
        if let Some(pos) = self.arrivals.iter().position(|&(_, s)| s == i) {
            self.arrivals.remove(pos);
            self.release(i, false);
        } else if let Some(pos) = self.waiting.iter().position(|&s| s == i) {
            self.waiting.remove(pos);
            self.release(i, false);
        } else {
            // Running, chunked, or in the current step: dropped at the next commit or step.
            let r = self.req_mut(i);
            if !r.cancelled {
                r.cancelled = true;
                self.marked += 1;
            }
            if self.step.is_none() {
                self.running.retain(|&x| x != i);
                if self.chunked == Some(i) {
                    self.chunked = None;
                }
                self.release(i, false);
            }
        }
    }

    fn next_event_at(&self) -> Option<Nanos> {
        if !self.pending_events.is_empty() {
            return Some(self.free_at);
        }
        match &self.step {
            Some((end, _)) => Some(*end),
            None => self.arrivals.front().map(|&(t, _)| t.max(self.free_at)),
        }
    }

    fn advance(&mut self, now: Nanos, out: &mut Vec<TokenEvent>) {
        out.append(&mut self.pending_events);
        loop {
            if let Some((end, _)) = &self.step {
                if *end > now {
                    break;
                }
                let (end, batch) = self.step.take().expect("step in progress");
                self.commit(end, batch, out);
                self.free_at = end;
            }
            // Drop requests cancelled while running between steps.
            if self.marked > 0 && self.running.iter().any(|&i| self.req(i).cancelled) {
                let cancelled: Vec<usize> = self.running.iter().copied().filter(|&i| self.req(i).cancelled).collect();
                for i in cancelled {
                    self.running.retain(|&x| x != i);
                    self.release(i, false);
                }
            }
            // The scheduler is free from `free_at`; it starts the next step
            // then, or at the next arrival if it has nothing to do.
            let idle = self.running.is_empty() && self.waiting.is_empty() && self.chunked.is_none();
            let start = if idle {
                match self.arrivals.front() {
                    Some(&(t, _)) if t.max(self.free_at) <= now => t.max(self.free_at),
                    _ => {
                        self.ratio = self.ratio_init;
                        break;
                    }
                }
            } else {
                self.free_at
            };
            while let Some(&(t, i)) = self.arrivals.front() {
                if t > start {
                    break;
                }
                self.arrivals.pop_front();
                self.waiting.push(i);
            }
            let batch = match self.try_prefill() {
                Some(items) => Some(Batch::Prefill(items)),
                None => self.prepare_decode(out).map(|(items, kv)| Batch::Decode(items, kv)),
            };
            match batch {
                Some(b) => {
                    let shape = self.shape(&b);
                    let end = start + (self.profile.step_ms(&shape) * 1e6).round() as Nanos;
                    if let Some(log) = &mut self.log {
                        let prefill_reqs = match &b {
                            Batch::Prefill(items) => items.len() as u32,
                            Batch::Decode(..) => 0,
                        };
                        log.push(StepLog {
                            start,
                            end,
                            prefill_reqs,
                            extend_tokens: shape.extend_tokens,
                            decode_seqs: shape.decode_seqs,
                        });
                    }
                    self.step = Some((end, b));
                }
                None if self.running.is_empty() && self.chunked.is_none() && !self.waiting.is_empty() => {
                    // Nothing runs and the head cannot be admitted: it can never fit.
                    let head = self.waiting.remove(0);
                    self.abort(head, "the request does not fit in the KV cache", out);
                    self.free_at = start;
                }
                None => {
                    self.free_at = start;
                    let work = !self.waiting.is_empty() || !self.running.is_empty() || self.chunked.is_some();
                    if !work && self.arrivals.front().is_none_or(|&(t, _)| t > now) {
                        break;
                    }
                }
            }
        }
        self.refresh_stats();
    }

    fn active(&self) -> usize {
        self.by_key.len()
    }

    fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    fn flush_cache(&mut self) -> Result<(), String> {
        if !self.by_key.is_empty() || self.step.is_some() {
            return Err("Cache not flushed because there are pending requests.".to_owned());
        }
        self.radix = RadixCache::new();
        self.refresh_stats();
        Ok(())
    }

    fn quiet_decode(&mut self) -> bool {
        self.quiet = true;
        true
    }

    fn decode_times(&self) -> &[Nanos] {
        &self.decode_log
    }

    fn unreported(&self, key: u64) -> (u32, u32) {
        match self.by_key.get(&key) {
            Some(&i) if !self.req(i).cancelled => {
                let r = self.req(i);
                (r.silent_from, r.out_len() as u32 - r.reported)
            }
            _ => (0, 0),
        }
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
