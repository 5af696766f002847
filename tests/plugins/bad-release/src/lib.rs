//! Hostile test plugin: releases arrivals like `immediate`, but after the
//! 3rd it also releases request 1_000_000, which was never queued.

use sglab_plugin_sdk::{Batcher, NoConfig, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher};

#[derive(Default)]
pub struct BadRelease {
    queued: Vec<RequestId>,
    seen: u64,
}

impl Batcher for BadRelease {
    const NAME: &'static str = "bad-release";
    const DESCRIPTION: &'static str = "Test plugin: releases an unknown request id.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Self::default())
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queued.push(request.id);
        self.seen += 1;
    }

    fn poll(&mut self, _: TimeNs, _: &NodeTable) -> PollResult {
        let mut release = std::mem::take(&mut self.queued);
        if self.seen > 3 {
            release.push(1_000_000);
        }
        PollResult { release, wake_at: None }
    }
}

export_batcher!(BadRelease);
