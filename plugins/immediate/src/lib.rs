//! `immediate` batching: every request is released as soon as it arrives.

use sglab_plugin_sdk::{Batcher, NoConfig, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher};

#[derive(Default)]
pub struct Immediate {
    queued: Vec<RequestId>,
}

impl Batcher for Immediate {
    const NAME: &'static str = "immediate";
    const DESCRIPTION: &'static str = "Releases every request the moment it arrives (no client-side batching).";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Self::default())
    }

    fn on_arrival(&mut self, request: &RequestInfo, _nodes: &NodeTable) {
        self.queued.push(request.id);
    }

    fn poll(&mut self, _now: TimeNs, _nodes: &NodeTable) -> PollResult {
        PollResult { release: std::mem::take(&mut self.queued), wake_at: None }
    }
}

export_batcher!(Immediate);
