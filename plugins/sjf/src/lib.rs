//! `sjf` batching: shortest job first under a concurrency cap. When a slot
//! is free, the queued request with the fewest prompt tokens goes first
//! (ties in arrival order), except that a request which has waited
//! `max_wait_ms` goes before any shorter one, oldest first, so long prompts
//! cannot starve.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests in flight at most (all nodes together).
    cap: u32,
    /// Aging bound: a request that has waited this long goes next (ms).
    #[serde(default = "default_max_wait_ms")]
    max_wait_ms: u64,
}

fn default_max_wait_ms() -> u64 {
    10_000
}

pub struct Sjf {
    cap: u32,
    max_wait_ns: u64,
    /// (prompt tokens, arrival sequence) -> request id: shortest first.
    by_length: BTreeMap<(u32, u64), RequestId>,
    /// (arrival time, prompt tokens, arrival sequence), oldest first; entries
    /// already released by length are skipped when they reach the front.
    by_age: VecDeque<(TimeNs, u32, u64)>,
    next_seq: u64,
}

impl Sjf {
    fn pop_aged(&mut self, now: TimeNs) -> Option<RequestId> {
        while let Some(&(arrival, len, seq)) = self.by_age.front() {
            if !self.by_length.contains_key(&(len, seq)) {
                self.by_age.pop_front();
                continue;
            }
            if now < arrival.saturating_add(self.max_wait_ns) {
                return None;
            }
            self.by_age.pop_front();
            return self.by_length.remove(&(len, seq));
        }
        None
    }
}

impl Batcher for Sjf {
    const NAME: &'static str = "sjf";
    const DESCRIPTION: &'static str = "Shortest job first: while fewer than `cap` requests are in flight, releases the queued request with the shortest prompt (ties in arrival order); a request that has waited `max_wait_ms` goes first, oldest first, so nothing starves.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option("cap", "integer", None, "requests in flight at most, all nodes together (required)"),
            option(
                "max_wait_ms",
                "integer",
                Some("10000"),
                "aging bound: a request queued this long goes before shorter ones",
            ),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.cap == 0 {
            return Err("cap: must be at least 1".into());
        }
        if c.max_wait_ms == 0 {
            return Err("max_wait_ms: must be at least 1 (0 would make this FIFO; use max-concurrency)".into());
        }
        Ok(Self {
            cap: c.cap,
            max_wait_ns: c.max_wait_ms.saturating_mul(1_000_000),
            by_length: BTreeMap::new(),
            by_age: VecDeque::new(),
            next_seq: 0,
        })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_length.insert((request.input_tokens, seq), request.id);
        self.by_age.push_back((request.arrival_ns, request.input_tokens, seq));
    }

    fn poll(&mut self, now: TimeNs, nodes: &NodeTable) -> PollResult {
        let in_flight: u32 = nodes.iter().map(|n| n.in_flight).sum();
        let free = self.cap.saturating_sub(in_flight);
        let mut release = Vec::new();
        for _ in 0..free {
            let next = match self.pop_aged(now) {
                Some(id) => Some(id),
                None => self.by_length.pop_first().map(|(_, id)| id),
            };
            match next {
                Some(id) => release.push(id),
                None => break,
            }
        }
        PollResult { release, wake_at: None }
    }
}

export_batcher!(Sjf);
