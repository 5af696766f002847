//! `max-concurrency` batching: releases queued requests in arrival order
//! while fewer than `cap` are in flight in total (a client-side concurrency
//! limit, like `--max-concurrency` of SGLang's benchmark client), or, with
//! `per_node`, while some healthy node has fewer than `cap` in flight.

use std::collections::VecDeque;

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests in flight at most.
    cap: u32,
    /// The cap holds for each healthy node instead of for all together.
    #[serde(default)]
    per_node: bool,
}

pub struct MaxConcurrency {
    cap: u32,
    per_node: bool,
    queue: VecDeque<RequestId>,
}

impl Batcher for MaxConcurrency {
    const NAME: &'static str = "max-concurrency";
    const DESCRIPTION: &'static str = "Releases requests in arrival order while fewer than `cap` are in flight (all nodes together, or on some healthy node with `per_node`).";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option("cap", "integer", None, "requests in flight at most (required)"),
            option(
                "per_node",
                "bool",
                Some("false"),
                "the cap holds per healthy node: release while some node is under it",
            ),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.cap == 0 {
            return Err("cap: must be at least 1".into());
        }
        Ok(Self { cap: c.cap, per_node: c.per_node, queue: VecDeque::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queue.push_back(request.id);
    }

    /// In flight = the node table's count (current at every poll: the host
    /// sends the deltas of what it dispatched since), so rejected or failed
    /// requests never hold a slot. Per node, the free slots of each healthy
    /// node add up (the router decides where each released request goes).
    fn poll(&mut self, _now: TimeNs, nodes: &NodeTable) -> PollResult {
        let free = if self.per_node {
            nodes.healthy().map(|n| self.cap.saturating_sub(n.in_flight) as usize).sum()
        } else {
            let in_flight: u32 = nodes.iter().map(|n| n.in_flight).sum();
            self.cap.saturating_sub(in_flight) as usize
        };
        let n = free.min(self.queue.len());
        PollResult { release: self.queue.drain(..n).collect(), wake_at: None }
    }
}

export_batcher!(MaxConcurrency);
