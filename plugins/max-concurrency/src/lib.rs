//! `max-concurrency` batching: releases queued requests in arrival order
//! while fewer than `cap` are in flight in total (a client-side concurrency
//! limit, like `--max-concurrency` of SGLang's benchmark client).

use std::collections::VecDeque;

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests in flight at most.
    cap: u32,
}

pub struct MaxConcurrency {
    cap: u32,
    queue: VecDeque<RequestId>,
}

impl Batcher for MaxConcurrency {
    const NAME: &'static str = "max-concurrency";
    const DESCRIPTION: &'static str =
        "Releases requests in arrival order while fewer than `cap` are in flight (all nodes together).";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![option("cap", "integer", None, "requests in flight at most (required)")]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.cap == 0 {
            return Err("cap: must be at least 1".into());
        }
        Ok(Self { cap: c.cap, queue: VecDeque::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queue.push_back(request.id);
    }

    /// In flight = the node table's count (current at every poll: the host
    /// sends the deltas of what it dispatched since), so rejected or failed
    /// requests never hold a slot.
    fn poll(&mut self, _now: TimeNs, nodes: &NodeTable) -> PollResult {
        let in_flight: u32 = nodes.iter().map(|n| n.in_flight).sum();
        let free = self.cap.saturating_sub(in_flight) as usize;
        let n = free.min(self.queue.len());
        PollResult { release: self.queue.drain(..n).collect(), wake_at: None }
    }
}

export_batcher!(MaxConcurrency);
