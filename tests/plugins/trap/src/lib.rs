//! Hostile test plugin: a batcher that releases arrivals like `immediate`
//! but panics (a trap) when request `panic_at` arrives, and/or sleeps
//! `sleep_ms` in every `on-arrival` (a call that takes wall time but no CPU,
//! as on a busy machine).

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The request whose arrival traps.
    #[serde(default)]
    panic_at: Option<u64>,
    /// Sleep this long in every on-arrival.
    #[serde(default)]
    sleep_ms: u64,
}

pub struct Trap {
    panic_at: Option<u64>,
    sleep_ms: u64,
    queued: Vec<RequestId>,
}

impl Batcher for Trap {
    const NAME: &'static str = "trap";
    const DESCRIPTION: &'static str = "Test plugin: traps in on-arrival for one request.";
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        Ok(Self { panic_at: c.panic_at, sleep_ms: c.sleep_ms, queued: Vec::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        assert_ne!(Some(request.id), self.panic_at, "trap: request {} arrived", request.id);
        if self.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
        }
        self.queued.push(request.id);
    }

    fn poll(&mut self, _: TimeNs, _: &NodeTable) -> PollResult {
        PollResult { release: std::mem::take(&mut self.queued), wake_at: None }
    }
}

export_batcher!(Trap);
