//! A simulated node of a virtual run.

use crate::rng::Rng;
use crate::sim::{Engine, EngineConfig, EngineStats, Faults};

/// One simulated node: its engine and faults.
pub struct VirtualNode {
    pub(super) engine: Box<dyn Engine + Send>,
    pub(super) faults: Faults,
    pub(super) rng: Rng,
    pub(super) finished: u64,
    pub(super) crashed: bool,
    /// The engine reports decode tokens in bulk (see [`super::Settings::quiet_decode`]).
    pub(super) quiet: bool,
}

impl VirtualNode {
    /// A fresh node as `cfg` describes it.
    pub fn new(cfg: &EngineConfig) -> Self {
        Self {
            engine: cfg.build(),
            faults: cfg.faults.clone(),
            // The same stream `sglab sim` draws its injected failures from.
            rng: Rng::new(cfg.seed, 0xFA17),
            finished: 0,
            crashed: false,
            quiet: false,
        }
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }
}
