//! What one simulated node is: its engine (fixed timing, or SGLang's
//! scheduler with a hardware profile) and its injected faults. `sglab sim`
//! builds it from its flags, and a virtual-time run builds one per
//! `launch = "sim"` replica from the node's `args`, through the same flag
//! parser, so a node behaves the same in both.

use super::cost::Profile;
use super::{Engine, FixedEngine, SchedulerConfig, SglangEngine};
use crate::Nanos;

/// Which engine times the tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineKind {
    /// `--profile fixed`: exact TTFT and inter-token latency.
    Fixed {
        /// Time to first token.
        ttft: Nanos,
        /// Inter-token latency.
        itl: Nanos,
    },
    /// SGLang's scheduler, timed by `profile`'s cost model.
    Scheduler {
        /// The hardware profile.
        profile: Box<Profile>,
        /// The scheduler settings.
        cfg: SchedulerConfig,
    },
}

/// Fault injection (`--fail-rate`, `--abort-after-tokens`, `--stall-ms`,
/// `--crash-after-requests`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction of requests answered with HTTP 500.
    pub fail_rate: f64,
    /// End each stream after this many tokens, without the final event.
    pub abort_after_tokens: Option<u32>,
    /// Delay before a request reaches the engine.
    pub stall: Nanos,
    /// The server exits once this many requests finished.
    pub crash_after_requests: Option<u64>,
}

/// One simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The engine.
    pub kind: EngineKind,
    /// Injected faults.
    pub faults: Faults,
    /// Seed of the injected failures.
    pub seed: u64,
}

impl EngineConfig {
    /// A fresh, idle engine.
    pub fn build(&self) -> Box<dyn Engine + Send> {
        match &self.kind {
            EngineKind::Fixed { ttft, itl } => Box::new(FixedEngine::new(*ttft, *itl)),
            EngineKind::Scheduler { profile, cfg } => Box::new(SglangEngine::new(cfg.clone(), (**profile).clone())),
        }
    }

    /// The profile's name (`fixed` for the fixed engine).
    pub fn profile_name(&self) -> &str {
        match &self.kind {
            EngineKind::Fixed { .. } => "fixed",
            EngineKind::Scheduler { profile, .. } => &profile.name,
        }
    }
}
