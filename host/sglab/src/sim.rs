//! `sglab sim`: a simulated SGLang server.
//!
//! It speaks SGLang's HTTP API (see `sim/api.rs`, `sim/openai.rs`,
//! `sim/observe.rs`) and times tokens with an engine from the core:
//! `--profile fixed` gives exact `--ttft-ms`/`--itl-ms`; any other profile
//! runs the copy of SGLang's scheduler (`sglab_core::sim::scheduler`) with
//! that profile's cost model. Flags use `python -m sglang.launch_server`
//! names where they exist, so one node config can target either.

mod api;
mod engine_task;
mod observe;
mod openai;
mod stream;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sglab_core::sim::cost::{self, Profile};
use sglab_core::sim::{Engine, EngineConfig, EngineKind, Faults, Policy, SchedulerConfig};
use tokio::net::TcpSocket;

/// Arguments of `sglab sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free one. The first line on stdout is
    /// `listening on http://HOST:PORT`.
    #[arg(long, default_value_t = 30000)]
    pub port: u16,
    /// Hardware profile: llama-3.1-8b-h100 (default), qwen2.5-7b-a100,
    /// llama-3.1-70b-h100-tp4, fixed (exact --ttft-ms/--itl-ms), or a path
    /// to a profile TOML file.
    #[arg(long, default_value = "llama-3.1-8b-h100")]
    pub profile: String,
    /// Time to first token (fixed profile), milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub ttft_ms: f64,
    /// Inter-token latency (fixed profile), milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub itl_ms: f64,
    /// Wall seconds per simulated second (0.1 runs ten times faster;
    /// reported times stay in simulated units).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed (random schedule policy, injected failures).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model path reported by /model_info (echoed only). By default sglab
    /// sim writes a tiny local model directory (a word-level tokenizer.json
    /// and config.json) and reports it, so that routers and clients that
    /// load the worker's tokenizer find it locally and never try to download one.
    #[arg(long)]
    pub model_path: Option<String>,
    /// Model name reported by /v1/models (defaults to `sglab-sim`, or to
    /// --model-path when one is given).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Cap on running requests (default: SGLang's rule for the KV capacity).
    #[arg(long)]
    pub max_running_requests: Option<u64>,
    /// Cap on KV pool tokens.
    #[arg(long)]
    pub max_total_tokens: Option<u64>,
    /// Prefill chunk size; -1 disables chunking (default: the profile's, 8192).
    #[arg(long, allow_negative_numbers = true)]
    pub chunked_prefill_size: Option<i64>,
    /// Prefill tokens per step (default: the profile's, 16384).
    #[arg(long)]
    pub max_prefill_tokens: Option<u64>,
    /// fcfs | lpm | random | lof.
    #[arg(long, default_value = "fcfs")]
    pub schedule_policy: String,
    /// Scales the new-token reservation ratio.
    #[arg(long, default_value_t = 1.0)]
    pub schedule_conservativeness: f64,
    /// No prefix cache.
    #[arg(long)]
    pub disable_radix_cache: bool,
    /// Serve /metrics (Prometheus).
    #[arg(long)]
    pub enable_metrics: bool,
    /// `/generate` streams send only the new text and ids in each event
    /// (SGLang's flag; `completion_tokens` stays cumulative).
    #[arg(long)]
    pub incremental_streaming_output: bool,
    /// Fraction of GPU memory for weights + KV (default: SGLang's automatic value).
    #[arg(long)]
    pub mem_fraction_static: Option<f64>,
    /// Fault injection: fraction of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Fault injection: end each stream after this many tokens, without the final event.
    #[arg(long)]
    pub abort_after_tokens: Option<u32>,
    /// Fault injection: wait this long before a request reaches the engine.
    #[arg(long, default_value_t = 0.0)]
    pub stall_ms: f64,
    /// Fault injection: exit the process once this many requests finished.
    #[arg(long)]
    pub crash_after_requests: Option<u64>,
}

/// Resolved server settings (also reported by /server_info).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags.
    pub args: SimArgs,
    /// The model path reported.
    pub model_path: String,
    /// The model name reported.
    pub model_name: String,
    /// The profile (None for `fixed`).
    pub profile: Option<Profile>,
    /// The scheduler settings (None for `fixed`).
    pub scheduler: Option<SchedulerConfig>,
}

fn load_profile(spec: &str) -> anyhow::Result<Profile> {
    if let Some(p) = cost::builtin(spec) {
        return Ok(p);
    }
    let path = Path::new(spec);
    if !path.is_file() {
        bail!("--profile {spec:?}: not a built-in profile (fixed, {}) and no such file", cost::BUILTIN.join(", "));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--profile {spec}: cannot read"))?;
    let de = toml::Deserializer::parse(&text).with_context(|| format!("--profile {spec}: invalid TOML"))?;
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("--profile {spec}: {}: {}", e.path(), e.inner().message()))
}

/// Builds the engine the flags describe.
pub fn build(args: &SimArgs) -> anyhow::Result<(Box<dyn Engine + Send>, Settings)> {
    let node = engine_config(args)?;
    let (profile, scheduler) = match &node.kind {
        EngineKind::Fixed { .. } => (None, None),
        EngineKind::Scheduler { profile, cfg } => (Some((**profile).clone()), Some(cfg.clone())),
    };
    Ok((node.build(), settings(args, profile, scheduler)?))
}

/// The node the flags describe (shared by `sglab sim` and virtual-time runs).
pub fn engine_config(args: &SimArgs) -> anyhow::Result<EngineConfig> {
    let ms = |v: f64, flag: &str| -> anyhow::Result<u64> {
        anyhow::ensure!(v.is_finite() && v >= 0.0, "{flag} must be a non-negative number of milliseconds, got {v}");
        Ok((v * 1e6).round() as u64)
    };
    anyhow::ensure!(
        args.time_scale.is_finite() && args.time_scale > 0.0,
        "--time-scale must be positive, got {}",
        args.time_scale
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fail_rate),
        "--fail-rate must be between 0 and 1, got {}",
        args.fail_rate
    );
    let faults = Faults {
        fail_rate: args.fail_rate,
        abort_after_tokens: args.abort_after_tokens,
        stall: ms(args.stall_ms, "--stall-ms")?,
        crash_after_requests: args.crash_after_requests,
    };
    if args.profile == "fixed" {
        let kind = EngineKind::Fixed { ttft: ms(args.ttft_ms, "--ttft-ms")?, itl: ms(args.itl_ms, "--itl-ms")? };
        return Ok(EngineConfig { kind, faults, seed: args.seed });
    }
    let profile = load_profile(&args.profile)?;
    let mut cfg = SchedulerConfig::for_profile(&profile);
    if let Some(c) = args.chunked_prefill_size {
        cfg.chunked_prefill_size = (c > 0).then_some(c as u64);
    }
    let chunk_for_memory = cfg.chunked_prefill_size.unwrap_or(profile.chunked_prefill_size);
    if let Some(f) = args.mem_fraction_static {
        anyhow::ensure!(f > 0.0 && f < 1.0, "--mem-fraction-static must be between 0 and 1, got {f}");
    }
    let fraction = args.mem_fraction_static.unwrap_or_else(|| profile.auto_mem_fraction(chunk_for_memory));
    cfg.max_total_tokens = profile.kv_capacity(fraction);
    if let Some(t) = args.max_total_tokens {
        cfg.max_total_tokens = cfg.max_total_tokens.min(t);
    }
    anyhow::ensure!(cfg.max_total_tokens > 16, "the KV pool has {} tokens: too small to serve", cfg.max_total_tokens);
    cfg.max_running_requests = match args.max_running_requests {
        Some(m) => m.min(cfg.max_total_tokens / 2).max(1),
        None => profile.default_max_running(cfg.max_total_tokens),
    };
    if let Some(m) = args.max_prefill_tokens {
        cfg.max_prefill_tokens = m.max(1);
    }
    cfg.policy = Policy::parse(&args.schedule_policy)
        .with_context(|| format!("--schedule-policy {:?}: expected fcfs, lpm, random or lof", args.schedule_policy))?;
    cfg.schedule_conservativeness = args.schedule_conservativeness;
    cfg.disable_radix_cache = args.disable_radix_cache;
    cfg.seed = args.seed;
    Ok(EngineConfig { kind: EngineKind::Scheduler { profile: Box::new(profile), cfg }, faults, seed: args.seed })
}

/// `sglab sim`'s flags as a parser of a node's `args` list.
#[derive(Debug, clap::Parser)]
#[command(name = "sglab sim", no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
pub struct NodeArgs {
    /// The flags.
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Parses a `launch = "sim"` node's `args` as `sglab sim` would.
pub fn parse_node_args(args: &[String]) -> anyhow::Result<SimArgs> {
    use clap::Parser as _;
    let parsed = NodeArgs::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().trim_start_matches("error: ");
        anyhow::anyhow!("{first}")
    })?;
    Ok(parsed.sim)
}

fn settings(args: &SimArgs, profile: Option<Profile>, scheduler: Option<SchedulerConfig>) -> anyhow::Result<Settings> {
    let (model_path, default_name) = match &args.model_path {
        Some(p) => (p.clone(), p.clone()),
        None => (local_model_dir()?, "sglab-sim".to_owned()),
    };
    let model_name = args.served_model_name.clone().unwrap_or(default_name);
    Ok(Settings { args: args.clone(), model_path, model_name, profile, scheduler })
}

/// Writes (once) a minimal Hugging Face model directory whose word-level
/// tokenizer knows the simulator's output token, and returns its path.
fn local_model_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join("sglab-sim-model");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        (
            "tokenizer.json",
            r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"tok":1,"the":2,"a":3,"hello":4,"world":5},"unk_token":"[UNK]"}}"#,
        ),
        (
            "tokenizer_config.json",
            r#"{"tokenizer_class":"PreTrainedTokenizerFast","unk_token":"[UNK]","model_max_length":131072}"#,
        ),
        (
            "config.json",
            r#"{"architectures":["SglabSim"],"model_type":"sglab-sim","vocab_size":6,"max_position_embeddings":131072}"#,
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            let tmp = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(dir.display().to_string())
}

/// Runs the server until the process is stopped.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let (engine, settings) = build(&args)?;
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid --host/--port {}:{}", args.host, args.port))?;
    // A deep accept queue (capped by the kernel's somaxconn): a closed-loop
    // client opening thousands of connections at once must not see dropped
    // SYNs (and their 1 s retransmission) as server latency.
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("cannot bind {addr}"))?;
    let listener = socket.listen(65_535).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let handle = engine_task::spawn(engine, args.time_scale, args.crash_after_requests);
    let state = Arc::new(api::Server::new(handle, settings));
    println!("listening on http://{local}");
    tracing::info!(profile = %args.profile, "sglab sim ready on {local}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| api::handle(state.clone(), req));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
