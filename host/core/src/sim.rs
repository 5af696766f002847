//! The simulated server's engines: when each request's tokens come out.
//!
//! The HTTP server (host, `sglab sim`) owns the sockets and the wall clock;
//! an [`Engine`] only answers "given these requests and this (simulated)
//! time, which tokens are due". Two engines implement it:
//!
//! - [`fixed::FixedEngine`]: exact configured TTFT and inter-token latency,
//!   independent of load (for accuracy tests);
//! - [`scheduler::SglangEngine`]: a discrete copy of SGLang 0.5.23's
//!   scheduler (prefill-first batching, chunked prefill, KV budget with
//!   reservations, retraction, radix prefix cache, policies) whose steps are
//!   timed by the [`cost`] model of a hardware [`cost::Profile`].

pub mod config;
pub mod cost;
pub mod fixed;
pub mod radix;
pub mod scheduler;
pub mod text;

pub use config::{EngineConfig, EngineKind, Faults};
pub use fixed::FixedEngine;
pub use scheduler::{Policy, SchedulerConfig, SglangEngine, StepLog};

use crate::Nanos;

/// A request as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    /// Prompt token ids (their values matter to the prefix cache).
    pub input_ids: Vec<u32>,
    /// Tokens to generate (`max_new_tokens`).
    pub max_new_tokens: u32,
    /// `ignore_eos`: reserve the full output in the KV budget. (The
    /// simulator never samples EOS: every request produces `max_new_tokens`.)
    pub ignore_eos: bool,
}

/// Progress of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    /// The server's key for the request.
    pub key: u64,
    /// Tokens generated so far (cumulative).
    pub completion_tokens: u32,
    /// Prompt tokens served from the prefix cache at first admission.
    pub cached_tokens: u32,
    /// Times the request was retracted (preempted) under KV pressure.
    pub retractions: u32,
    /// True on the request's last event.
    pub finished: bool,
    /// Set when the engine aborted the request (e.g. it cannot fit in KV).
    pub error: Option<String>,
    /// Tokens before this event that no event reported (quiet decode, see
    /// [`Engine::quiet_decode`]): the request's tokens
    /// `completion_tokens - silent ..` (this event's own token aside), made
    /// at [`Engine::decode_times`]`[silent_from..][..silent]`. Always 0
    /// unless quiet decode is on.
    pub silent: u32,
    /// Where the silent tokens' times start in [`Engine::decode_times`].
    pub silent_from: u32,
}

impl TokenEvent {
    /// An immediate abort of `key`.
    pub fn abort(key: u64, msg: impl Into<String>) -> Self {
        Self {
            key,
            completion_tokens: 0,
            cached_tokens: 0,
            retractions: 0,
            finished: true,
            error: Some(msg.into()),
            silent: 0,
            silent_from: 0,
        }
    }
}

/// What the engine reports for `/metrics`, `/v1/loads` and `/server_info`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    /// Requests in the running (decode) batch.
    pub num_running_reqs: u64,
    /// Requests waiting for admission.
    pub num_queue_reqs: u64,
    /// KV pool capacity, tokens.
    pub max_total_num_tokens: u64,
    /// KV tokens held by live requests (capacity - free - evictable cache).
    pub num_used_tokens: u64,
    /// Cached KV tokens that can be evicted.
    pub evictable_tokens: u64,
    /// Prompt tokens of waiting requests not in the cache (approximate).
    pub waiting_uncached_tokens: u64,
    /// Cache hit rate of the last prefill batch.
    pub cache_hit_rate: f64,
    /// Generated tokens per second over the last decode window.
    pub gen_throughput: f64,
    /// Current new-token ratio.
    pub new_token_ratio: f64,
    /// Effective max running requests.
    pub max_running_requests: u64,
    /// Retracted requests since start.
    pub retracted_total: u64,
    /// Prompt tokens of finished requests since start.
    pub prompt_tokens_total: u64,
    /// Generated tokens since start.
    pub generation_tokens_total: u64,
    /// Prefix-cache hit tokens since start.
    pub cached_tokens_total: u64,
    /// Finished requests since start.
    pub num_requests_total: u64,
    /// Forward passes since start.
    pub steps_total: u64,
}

/// A token-timing engine driven by an external clock (simulated ns).
pub trait Engine {
    /// Accepts a request at `now`. Requests that can never run produce an
    /// immediate abort event from the next `advance`.
    fn submit(&mut self, now: Nanos, key: u64, req: SimRequest);
    /// Drops a request (the client went away).
    fn cancel(&mut self, key: u64);
    /// When the next event is due, if any work is pending.
    fn next_event_at(&self) -> Option<Nanos>;
    /// Appends every event due at or before `now`.
    fn advance(&mut self, now: Nanos, out: &mut Vec<TokenEvent>);
    /// Requests accepted and not finished.
    fn active(&self) -> usize;
    /// Current counters.
    fn stats(&self) -> EngineStats;
    /// Drops the prefix cache if nothing is running (`/flush_cache`).
    fn flush_cache(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Asks for quiet decode; true if this engine does it (from now on).
    /// A decode step then reports no event for the tokens that neither
    /// start a request's stream again (after a prefill) nor end it: the
    /// next event of the request counts them in `silent`, and their times
    /// are the ends of consecutive decode steps, kept once per step in
    /// [`Engine::decode_times`] instead of once per request. Virtual time
    /// uses it to skip the per-token event of ~126 of a 128-token
    /// request's tokens; the sim's HTTP server streams every token and
    /// never asks.
    fn quiet_decode(&mut self) -> bool {
        false
    }
    /// The end time of every decode step since quiet decode was turned on.
    fn decode_times(&self) -> &[Nanos] {
        &[]
    }
    /// Request `key`'s tokens that no event reported yet, as
    /// `(silent_from, silent)` (see [`TokenEvent::silent`]); (0, 0) for a
    /// request the engine does not hold.
    fn unreported(&self, key: u64) -> (u32, u32) {
        let _ = key;
        (0, 0)
    }
}
