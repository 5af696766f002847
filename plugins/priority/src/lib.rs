//! `priority` batching: releases the most urgent queued requests first
//! (larger `priority` is more urgent), in arrival order within a level,
//! while fewer than `cap` are in flight.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests in flight at most (all nodes together); 0: no limit.
    #[serde(default)]
    cap: u32,
}

pub struct Priority {
    cap: u32,
    /// (most urgent first, arrival sequence) -> request id.
    queue: BTreeMap<(Reverse<i32>, u64), RequestId>,
    next_seq: u64,
}

impl Batcher for Priority {
    const NAME: &'static str = "priority";
    const DESCRIPTION: &'static str = "Releases queued requests by priority (larger first), in arrival order within a level, while fewer than `cap` are in flight; with no cap, everything queued goes at once, most urgent first.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![option("cap", "integer", Some("0"), "requests in flight at most, all nodes together (0: no limit)")]
    }

    fn new(c: Config) -> Result<Self, String> {
        Ok(Self { cap: c.cap, queue: BTreeMap::new(), next_seq: 0 })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queue.insert((Reverse(request.priority), self.next_seq), request.id);
        self.next_seq += 1;
    }

    fn poll(&mut self, _now: TimeNs, nodes: &NodeTable) -> PollResult {
        let free = if self.cap == 0 {
            self.queue.len()
        } else {
            let in_flight: u32 = nodes.iter().map(|n| n.in_flight).sum();
            self.cap.saturating_sub(in_flight) as usize
        };
        let mut release = Vec::with_capacity(free.min(self.queue.len()));
        while release.len() < free {
            let Some((_, id)) = self.queue.pop_first() else { break };
            release.push(id);
        }
        PollResult { release, wake_at: None }
    }
}

export_batcher!(Priority);
