//! `static-batch` batching: holds requests back and releases them together,
//! `size` at a time as soon as `size` are queued, or all that are queued once
//! the oldest has waited `timeout_ms`, whichever comes first.

use std::collections::VecDeque;

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests per batch.
    size: u32,
    /// Longest wait of the oldest queued request (milliseconds).
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    100
}

pub struct StaticBatch {
    size: usize,
    timeout_ns: u64,
    /// (request id, arrival time), oldest first.
    queue: VecDeque<(u64, TimeNs)>,
}

impl Batcher for StaticBatch {
    const NAME: &'static str = "static-batch";
    const DESCRIPTION: &'static str = "Releases requests together: `size` at a time as soon as that many are queued, or every queued request once the oldest has waited `timeout_ms`.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option("size", "integer", None, "requests per batch (required)"),
            option("timeout_ms", "integer", Some("100"), "release what is queued once the oldest has waited this long"),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.size == 0 {
            return Err("size: must be at least 1".into());
        }
        Ok(Self { size: c.size as usize, timeout_ns: c.timeout_ms.saturating_mul(1_000_000), queue: VecDeque::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queue.push_back((request.id, request.arrival_ns));
    }

    fn poll(&mut self, now: TimeNs, _: &NodeTable) -> PollResult {
        let full = self.queue.len() / self.size * self.size;
        let timed_out = self.queue.front().is_some_and(|&(_, t)| now >= t.saturating_add(self.timeout_ns));
        let n = if timed_out { self.queue.len() } else { full };
        let release = self.queue.drain(..n).map(|(id, _)| id).collect();
        let wake_at = self.queue.front().map(|&(_, t)| t.saturating_add(self.timeout_ns));
        PollResult { release, wake_at }
    }
}

export_batcher!(StaticBatch);
