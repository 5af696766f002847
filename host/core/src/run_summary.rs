//! `summary.json`, typed: what `sglab run` writes at the end of every run
//! (and of a run that never started), and what `sglab compare`, sweeps and
//! `sglab report` read back. Serde both ways; `SCHEMA_VERSION` changes
//! whenever a field is renamed, moved or removed.
//!
//! Everything that depends on the host — where and when the run happened,
//! wall and CPU times, time inside plugin calls, the virtual-time speed-up —
//! is in [`RunSummary::host`], so that the rest of a virtual-time summary
//! is the same, byte for byte, for the same file and seed.

use serde::{Deserialize, Serialize};

use crate::config::{Backend, Clock, Dataset};
use crate::stats::{Dist, Summary};

/// The version of this schema.
pub const SCHEMA_VERSION: u32 = 1;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Every request dispatched.
    Ok,
    /// A configured stop rule ended dispatch (a complete run).
    Stopped,
    /// A plugin failed, a node refused the body, or the run never started.
    Failed,
    /// A signal stopped it.
    Interrupted,
}

impl RunStatus {
    /// `ok`, `stopped`, `failed` or `interrupted`, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the run reached its end (`--resume` skips such points).
    pub fn completed(self) -> bool {
        matches!(self, RunStatus::Ok | RunStatus::Stopped)
    }
}

/// Which sglab wrote a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SglabInfo {
    /// The crate version, e.g. `0.1.0`.
    pub version: String,
    /// The git commit it was built from (12 hex digits), when it was built
    /// from a git checkout.
    pub commit: Option<String>,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSummary {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The sglab that wrote it (absent in summaries from before it was
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sglab: Option<SglabInfo>,
    /// `experiment.name`.
    pub experiment: String,
    /// How it ended.
    pub status: RunStatus,
    /// Why dispatch stopped early, if it did.
    pub stop_reason: Option<String>,
    /// `real` or `virtual`.
    pub clock: Clock,
    /// `experiment.seed`.
    pub seed: u64,
    /// The workload (absent when the run never started).
    pub workload: Option<WorkloadInfo>,
    /// Arrival minus scheduled time of every arrived request, ms.
    pub schedule_lag_ms: Option<Dist>,
    /// The results are degraded: the client could not keep the schedule
    /// (p99 lag over the limit) or a node reported a step lag over its limit.
    pub degraded: bool,
    /// Why [`Self::degraded`] is set, one sentence per cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded_reasons: Vec<String>,
    /// The nodes, as started.
    pub nodes: Vec<NodeInfo>,
    /// The sglang-router in front of them, if any.
    pub router: Option<NodeInfo>,
    /// The plugins and what they used (absent when the run never started).
    pub plugins: Option<PluginsInfo>,
    /// Virtual-time facts (virtual runs only).
    pub virtual_time: Option<VirtualInfo>,
    /// The level-2 metrics.
    pub metrics: Summary,
    /// What depends on the host, not on the experiment.
    pub host: HostInfo,
}

/// The workload as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadInfo {
    /// `workload.dataset`.
    pub dataset: Dataset,
    /// `workload.backend`.
    pub backend: Backend,
    /// `workload.stream`.
    pub stream: bool,
    /// `exact`, `tokenizer` or `approximate`.
    pub token_counts: String,
    /// `client.warmup_requests`.
    pub warmup_requests: u32,
}

/// One node (or the router).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// `sim-0`, `url-1`, ...
    pub name: String,
    /// Base URL (None for an in-process virtual-time engine).
    pub url: Option<String>,
    /// `sim`, `sglang`, `command`, `url` or `sglang-router`.
    pub kind: String,
    /// Seconds from launch to ready (launched nodes).
    pub startup_s: Option<f64>,
    /// Its log file (launched nodes).
    pub log: Option<String>,
    /// The sim profile (virtual time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The engine's version, where the server tells it (`/get_server_info`
    /// `version`, vLLM's `/version`, llama.cpp's `/props` `build_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
}

/// One plugin's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Built-in name or path.
    pub source: String,
    /// sha256 of the component.
    pub sha256: String,
    /// Component size.
    pub size_bytes: u64,
    /// The contract, `sglab:strategy@X.Y.Z`.
    pub wit: String,
}

/// A pair of numbers, one per plugin.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPlugin<T> {
    /// The batching plugin's.
    pub batching: T,
    /// The routing plugin's.
    pub routing: T,
}

/// The plugins and what they used (the host-independent part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsInfo {
    /// The batching plugin.
    pub batching: PluginInfo,
    /// The routing plugin.
    pub routing: PluginInfo,
    /// Peak linear memory, bytes.
    pub peak_memory_bytes: PerPlugin<u64>,
    /// Calls made.
    pub calls: PerPlugin<u64>,
}

/// What a virtual-time run simulated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualInfo {
    /// Simulated seconds of the run (warm-up excluded).
    pub simulated_s: f64,
    /// Simulated seconds of the warm-up.
    pub warmup_simulated_s: f64,
    /// `client.virtual_rtt_ms`.
    pub rtt_ms: f64,
    /// Forward passes of every engine.
    pub forward_passes: u64,
    /// Token events from the engines.
    pub engine_events: u64,
    /// Prompt plus generated tokens the engines processed.
    pub simulated_tokens: u64,
    /// Event-loop iterations.
    pub loop_iterations: u64,
}

/// Host-dependent facts: where, when, how long, how much CPU.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    /// The run directory.
    pub run_dir: String,
    /// Wall-clock start (RFC 3339, UTC), read once.
    pub started_at: Option<String>,
    /// The same, ns since the Unix epoch (a string: JSON numbers lose digits).
    pub started_unix_ns: Option<String>,
    /// Wall time of the drive phase, s.
    pub wall_s: Option<f64>,
    /// sglab's CPU time during the drive phase (the event loop's thread in
    /// virtual time), s.
    pub process_cpu_s: Option<f64>,
    /// Time inside each plugin's calls, s.
    pub plugin_call_time_s: Option<PerPlugin<f64>>,
    /// Plugin call time over `process_cpu_s`.
    pub plugin_cpu_share: Option<f64>,
    /// Virtual time: simulated seconds per wall second.
    pub speedup: Option<f64>,
    /// Virtual time: simulated tokens per wall second.
    pub tokens_per_wall_s: Option<f64>,
}

/// One headline number of a run's metrics (for tables of runs).
pub type Metric = fn(&Summary) -> Option<f64>;

/// `pick` of a distribution that may be absent.
pub fn stat(d: &Option<Dist>, pick: fn(&Dist) -> f64) -> Option<f64> {
    d.as_ref().map(pick)
}

impl RunSummary {
    /// Parses `summary.json`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let version = v.get("schema_version").and_then(serde_json::Value::as_u64);
        if version != Some(SCHEMA_VERSION as u64) {
            return Err(match version {
                Some(n) => format!("schema_version {n}; this sglab reads version {SCHEMA_VERSION}"),
                None => format!(
                    "no schema_version (written by an sglab before schema version 1); this sglab reads version {SCHEMA_VERSION}"
                ),
            });
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
}
