//! The experiment file's schema (`exp.toml`), its defaults and validation.
//!
//! Parsing from text happens in the host (it knows the file); this module
//! owns what the keys mean. Every table denies unknown keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod validate;

/// One experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// `[experiment]`: name, seed, where results go.
    pub experiment: ExperimentSection,
    /// `[workload]`: what requests look like.
    #[serde(default)]
    pub workload: Workload,
    /// `[arrival]`: when requests enter the client.
    #[serde(default)]
    pub arrival: Arrival,
    /// `[[nodes]]`: the serving endpoints.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// `[batching]`: the batching plugin.
    #[serde(default = "Batching::default")]
    pub batching: Batching,
    /// `[routing]`: the routing mode and plugin.
    #[serde(default)]
    pub routing: Routing,
    /// `[sandbox]`: limits applied to every plugin.
    #[serde(default)]
    pub sandbox: Sandbox,
    /// `[client]`: how requests are sent.
    #[serde(default)]
    pub client: Client,
    /// `[slo]`: limits for goodput and SLO attainment.
    #[serde(default)]
    pub slo: Slo,
    /// `[results]`: optional outputs.
    #[serde(default)]
    pub results: Results,
}

/// `[slo]`: a request meets the SLO when it finished ok within every limit set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slo {
    /// Time to first token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Time per output token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// Finish - arrival (total latency), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
}

/// `[results]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Results {
    /// Also write `tokens.csv`: every token event's time.
    pub tokens_csv: bool,
    /// Window of `timeline_<interval>.csv`, seconds.
    pub timeline_interval_s: f64,
    /// How often each node's `/v1/loads` is polled into `server_metrics.csv`, seconds (0: off).
    pub server_metrics_interval_s: f64,
}

impl Default for Results {
    fn default() -> Self {
        Self { tokens_csv: false, timeline_interval_s: 1.0, server_metrics_interval_s: 0.5 }
    }
}

/// `[experiment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Names the results directory `<output_dir>/<name>/<UTC stamp>/`.
    pub name: String,
    /// Seeds the workload, the arrivals and the plugins' `random-u64`.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Root of the results tree, relative to the working directory.
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// `real` (default) or `virtual` (a discrete-event run of the sim nodes).
    #[serde(default)]
    pub clock: Clock,
}

/// How time passes in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// Wall-clock time: real HTTP to real (or simulated) servers.
    #[default]
    Real,
    /// Simulated time: the sim nodes' engines in-process, on one event loop.
    Virtual,
}

impl Clock {
    /// `real` or `virtual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Real => "real",
            Clock::Virtual => "virtual",
        }
    }
}

fn default_seed() -> u64 {
    42
}
fn default_output_dir() -> String {
    "results".to_owned()
}

/// Which dataset generates the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// Random token ids with lengths drawn as SGLang's `random` dataset does.
    Random,
    /// A local ShareGPT JSON file: the first turn, the reply's length as output.
    Sharegpt,
    /// SGLang's generated-shared-prefix: groups of prompts sharing a system prompt.
    SharedPrefix,
    /// A local JSONL file, one request per line.
    Jsonl,
    /// A Mooncake-style trace (JSONL: timestamp, input_length, output_length, hash_ids).
    Trace,
}

/// The HTTP API requests are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// SGLang's native `POST /generate` (token ids as `input_ids` where known).
    Sglang,
    /// OpenAI `POST /v1/completions`.
    OpenaiCompletions,
    /// OpenAI `POST /v1/chat/completions`.
    OpenaiChat,
}

/// `[workload]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Dataset kind.
    pub dataset: Dataset,
    /// The dataset file (sharegpt, jsonl, trace), relative to the experiment file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Requests in the run. Default: 100 for random, all rows for file
    /// datasets, groups x prompts per group for shared-prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u32>,
    /// Maximum (and, with `range_ratio = 1`, exact) prompt length in tokens (random).
    pub input_len: u32,
    /// Maximum (and, with `range_ratio = 1`, exact) output length in tokens
    /// (random, shared-prefix; the default for jsonl rows without one).
    pub output_len: u32,
    /// SGLang's meaning: lengths uniform in `[max(floor(len*ratio),1), len]`.
    pub range_ratio: f64,
    /// Token ids are drawn uniformly from `0..vocab_size`.
    pub vocab_size: u32,
    /// sharegpt: use this output length instead of the reply's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_output_len: Option<u32>,
    /// shared-prefix: number of system prompts.
    pub num_groups: u32,
    /// shared-prefix: prompts per system prompt.
    pub prompts_per_group: u32,
    /// shared-prefix: system prompt length in tokens.
    pub system_prompt_len: u32,
    /// shared-prefix: question length in tokens.
    pub question_len: u32,
    /// trace: tokens per `hash_ids` block (Mooncake uses 512).
    pub trace_block_tokens: u32,
    /// API to send requests to.
    pub backend: Backend,
    /// Stream responses (SSE); false waits for the whole response.
    pub stream: bool,
    /// The `model` field for OpenAI backends (default: the first node's /v1/models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A Hugging Face `tokenizer.json` for exact text token counts (default:
    /// an approximation of about one token per word; see the docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Merged into every request body (tables merge key by key, so
    /// `[workload.extra_body.sampling_params]` adds SGLang sampling fields).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra_body: Map<String, Value>,
    /// Fields of sglab's default body left out, as dotted paths
    /// (`"ignore_eos"`, `"stream_options.continuous_usage_stats"`,
    /// `"sampling_params.ignore_eos"`): strict servers refuse fields outside
    /// OpenAI's API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_fields: Vec<String>,
    /// openai-chat: which field carries the output limit.
    pub max_tokens_field: MaxTokensField,
}

/// How openai-chat sends the output limit (servers read different fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens` and `max_completion_tokens`, the same value.
    Both,
    /// `max_tokens` only (transformers serve, llama.cpp, older servers).
    MaxTokens,
    /// `max_completion_tokens` only (OpenAI's reasoning models refuse `max_tokens`).
    MaxCompletionTokens,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            dataset: Dataset::Random,
            path: None,
            num_requests: None,
            input_len: 512,
            output_len: 128,
            range_ratio: 1.0,
            vocab_size: 32_000,
            fixed_output_len: None,
            num_groups: 8,
            prompts_per_group: 16,
            system_prompt_len: 1024,
            question_len: 128,
            trace_block_tokens: 512,
            backend: Backend::Sglang,
            stream: true,
            model: None,
            tokenizer: None,
            extra_body: Map::new(),
            drop_fields: Vec::new(),
            max_tokens_field: MaxTokensField::Both,
        }
    }
}

/// The arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Process {
    /// Exponential gaps with mean `1/rate`.
    Poisson,
    /// Gamma gaps with mean `1/rate` and shape `burstiness` (CV = 1/sqrt(burstiness)).
    Gamma,
    /// Gaps of exactly `1/rate`.
    Constant,
    /// Every request arrives at t = 0.
    Burst,
    /// `concurrency` users; each sends its next request when its previous one
    /// finished (plus `think_time_s`).
    ClosedLoop,
    /// The dataset's timestamps, multiplied by `time_scale`.
    Trace,
}

/// `[arrival]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Arrival {
    /// Process kind.
    pub process: Process,
    /// Requests per second (poisson, gamma, constant).
    pub rate: f64,
    /// Gamma shape: 1 is Poisson, below 1 burstier, above 1 smoother.
    pub burstiness: f64,
    /// Users (closed-loop).
    pub concurrency: u32,
    /// Pause between a user's requests (closed-loop), seconds.
    pub think_time_s: f64,
    /// closed-loop: the users' first requests are spread evenly over this
    /// many seconds (user u starts at u * ramp_up_s / concurrency), so they
    /// do not prefill in lockstep. 0: all start at once.
    pub ramp_up_s: f64,
    /// Trace timestamps are multiplied by this (0.5 replays twice as fast).
    pub time_scale: f64,
}

impl Default for Arrival {
    fn default() -> Self {
        Self {
            process: Process::Poisson,
            rate: 10.0,
            burstiness: 1.0,
            concurrency: 1,
            think_time_s: 0.0,
            ramp_up_s: 0.0,
            time_scale: 1.0,
        }
    }
}

/// How a node comes to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Launch {
    /// `sglab sim` processes spawned by the host on free loopback ports.
    Sim,
    /// `python -m sglang.launch_server --model-path M --host H --port P` + args.
    Sglang,
    /// Any command line (`command`), with `{host}`, `{port}`, `{gpus}` and
    /// `{replica}` filled in (e.g. an `srun` or `ssh` line).
    Command,
    /// An external endpoint at `url`; nothing is launched.
    Url,
}

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// `sim` or `url`; omitted means `url` when `url` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// Base URL of an external node, e.g. `http://127.0.0.1:30000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How many identical nodes this entry stands for (launched nodes only).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Extra command-line arguments (sim and sglang nodes).
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds to wait for the node to become ready (default: 60 for a
    /// launched node, 10 for an external url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout_s: Option<f64>,
    /// sglang: `--model-path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<String>,
    /// sglang: the Python with SGLang installed (default: `$SGLAB_PYTHON`, else `python3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// GPUs per replica: replica i gets `gpus[i]` as CUDA_VISIBLE_DEVICES
    /// (and as `{gpus}` in a command), e.g. `["0,1", "2,3"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// command: the argv template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// sglang/command: the host the node listens on (default 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// sglang/command: the first replica's port (default: a free loopback port per replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The path that must answer 200 before the node counts as ready
    /// (default: by backend; see the docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,
    /// The environment variable holding this node's API key, sent as
    /// `Authorization: Bearer` on every request to it (default: `client.api_key_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Extra HTTP headers sent on every request to this node (added to `client.headers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

impl NodeSpec {
    /// An external node.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            launch: None,
            url: Some(url.into()),
            replicas: 1,
            args: Vec::new(),
            startup_timeout_s: None,
            model_path: None,
            python: None,
            gpus: Vec::new(),
            command: Vec::new(),
            host: None,
            port: None,
            ready_path: None,
            api_key_env: None,
            headers: BTreeMap::new(),
        }
    }

    /// Seconds to wait for readiness.
    pub fn startup_timeout(&self) -> f64 {
        self.startup_timeout_s.unwrap_or(match self.kind() {
            Launch::Sim => 60.0,
            Launch::Sglang | Launch::Command => 900.0,
            Launch::Url => 10.0,
        })
    }

    /// The launch kind after applying the "url implies url" rule.
    pub fn kind(&self) -> Launch {
        self.launch.unwrap_or(if self.url.is_some() { Launch::Url } else { Launch::Sim })
    }
}

/// `[batching]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    /// A built-in plugin name or a path to a `.wasm` component.
    #[serde(default = "default_batcher")]
    pub plugin: String,
    /// The plugin's config table, passed to it as JSON.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// This plugin's memory cap in MiB (default: `sandbox.memory_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
}

impl Default for Batching {
    fn default() -> Self {
        Self { plugin: default_batcher(), config: Map::new(), memory_mib: None }
    }
}

fn default_batcher() -> String {
    "immediate".to_owned()
}

/// Who routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingMode {
    /// sglab routes each request with a WebAssembly plugin.
    Plugin,
    /// The real sglang-router (`python -m sglang_router.launch_router`) in
    /// front of the nodes receives all traffic and routes it.
    SglangRouter,
}

/// `[routing]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Routing mode.
    #[serde(default = "default_mode")]
    pub mode: RoutingMode,
    /// A built-in plugin name or a path to a `.wasm` component.
    #[serde(default = "default_router")]
    pub plugin: String,
    /// The plugin's config table, passed to it as JSON.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// This plugin's memory cap in MiB (default: `sandbox.memory_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// sglang-router mode: `--policy` (random, round_robin, cache_aware, power_of_two).
    #[serde(default = "default_router_policy")]
    pub policy: String,
    /// sglang-router mode: extra router arguments (e.g. `["--disable-retries"]`).
    #[serde(default)]
    pub router_args: Vec<String>,
    /// sglang-router mode: the Python with `sglang-router` installed
    /// (default: `$SGLAB_PYTHON`, else `python3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
}

fn default_router_policy() -> String {
    "cache_aware".to_owned()
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            mode: RoutingMode::Plugin,
            plugin: default_router(),
            config: Map::new(),
            policy: default_router_policy(),
            router_args: Vec::new(),
            python: None,
            memory_mib: None,
        }
    }
}

fn default_mode() -> RoutingMode {
    RoutingMode::Plugin
}
fn default_router() -> String {
    "round-robin".to_owned()
}

/// `[sandbox]`: limits for every plugin instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sandbox {
    /// Linear-memory cap per plugin instance, MiB.
    pub memory_mib: u32,
    /// CPU time one plugin call may use, ms: a call is watched once it has
    /// run this long (wall) and interrupted once it has used this much more
    /// of the dispatcher thread's CPU time.
    pub deadline_ms: u64,
    /// Wall time after which any plugin call is interrupted, ms (at least
    /// `deadline_ms`).
    pub wall_backstop_ms: u64,
    /// Bytes of plugin stdout/stderr kept (the rest is dropped).
    pub output_bytes: u32,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self { memory_mib: 64, deadline_ms: 10, wall_backstop_ms: 1000, output_bytes: 64 * 1024 }
    }
}

/// `[client]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Client {
    /// A request that has not finished after this many seconds is an error.
    pub timeout_s: f64,
    /// Requests sent (and awaited) before the run starts, excluded from results.
    pub warmup_requests: u32,
    /// Stop dispatching after this many seconds (0: no limit).
    pub max_duration_s: f64,
    /// Stop dispatching after this many failed requests (0: no limit).
    pub max_errors: u32,
    /// A run whose p99 schedule lag exceeds this is flagged as degraded, ms.
    pub max_schedule_lag_ms: f64,
    /// A run in which a node reports a step lag (an engine wake-up this
    /// late; sglab sim reports it) over this is flagged as degraded, ms.
    pub max_server_step_lag_ms: f64,
    /// A stream that passes this many times the output length asked for is
    /// cut and recorded as `too_many_tokens` (below it, a longer output is
    /// data, counted in the summary's output-length mismatch).
    pub max_output_factor: f64,
    /// The largest single stream event (or whole non-streamed body) read,
    /// bytes; a larger one is cut and recorded as `event_too_large`.
    pub max_event_bytes: u64,
    /// Virtual time only: the network round trip added to every request,
    /// ms (half on the way out, half to every event on the way back).
    pub virtual_rtt_ms: f64,
    /// Default `api_key_env` of every node that sets none (`--url` nodes too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Headers sent to every node (a node's own `headers` add to these).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            timeout_s: 600.0,
            warmup_requests: 0,
            max_duration_s: 0.0,
            max_errors: 0,
            max_schedule_lag_ms: 1.0,
            max_server_step_lag_ms: 20.0,
            max_output_factor: 2.0,
            max_event_bytes: 16 << 20,
            virtual_rtt_ms: 0.0,
            api_key_env: None,
            headers: BTreeMap::new(),
        }
    }
}

/// The most tokens one request may ask for, prompt or output (1,048,576:
/// above any served context length today, and small enough that a typo
/// like `input_len = 4000000000` is refused before memory is spent on it).
pub const MAX_TOKENS: u32 = 1 << 20;

/// The most requests one run may have (10 million).
pub const MAX_REQUESTS: u32 = 10_000_000;

/// A value that parses but makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} = {value}: {reason}")]
pub struct InvalidValue {
    /// Dotted key, e.g. `arrival.rate`.
    pub key: String,
    /// The offending value as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
