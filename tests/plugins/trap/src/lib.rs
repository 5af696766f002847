//! Hostile test plugin: a batcher that releases arrivals like `immediate`
//! but panics (a trap) when request `panic_at` arrives.

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The request whose arrival traps.
    panic_at: u64,
}

pub struct Trap {
    panic_at: u64,
    queued: Vec<RequestId>,
}

impl Batcher for Trap {
    const NAME: &'static str = "trap";
    const DESCRIPTION: &'static str = "Test plugin: traps in on-arrival for one request.";
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        Ok(Self { panic_at: c.panic_at, queued: Vec::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        assert_ne!(request.id, self.panic_at, "trap: request {} arrived", request.id);
        self.queued.push(request.id);
    }

    fn poll(&mut self, _: TimeNs, _: &NodeTable) -> PollResult {
        PollResult { release: std::mem::take(&mut self.queued), wake_at: None }
    }
}

export_batcher!(Trap);
