//! Before a run: the workload (dataset file, tokenizer, specs, schedule),
//! the model name for OpenAI backends, and warmup requests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::Method;
use sglab_core::arrival::{self, Schedule};
use sglab_core::config::{Backend, Dataset};
use sglab_core::workload::{self, Approx, Prompt, RequestSpec, TokenCount, Tokenizer};

use crate::client::body::BodyTemplate;
use crate::client::{self, Endpoint, Http, Sending};
use crate::experiment::{self, ConfigError};
use crate::plugin::RunClock;
use crate::tokenizer::HfTokenizer;

/// The generated workload.
#[derive(Clone)]
pub struct Workload {
    /// Requests.
    pub specs: Arc<[RequestSpec]>,
    /// Each request's prefix-block hashes (handed to the session).
    pub prefix_hashes: Vec<Vec<u64>>,
    /// Arrival times.
    pub schedule: Schedule,
    /// How prompt lengths were counted.
    pub count: TokenCount,
}

/// What `host.prompt-text` reads (made only for a plugin that asked for the
/// capability): each request's prompt, whose routing text
/// ([`Prompt::routing_text`]) is made when the plugin asks for it. Token
/// prompts are compact (a shared head and a generator), so this copy is
/// small; the texts of 10,000 prompts of 2,300 tokens would be 140 MB.
pub fn prompts(specs: &[RequestSpec]) -> Arc<Vec<Prompt>> {
    Arc::new(specs.iter().map(|s| s.prompt.clone()).collect())
}

fn config_err(cfg: &experiment::Loaded, key: &str, msg: String) -> ConfigError {
    ConfigError::Plugin { path: cfg.shown(), key: key.to_owned(), msg }
}

/// Reads the dataset and tokenizer, generates the requests and their arrival
/// times. Every problem is a config error naming the key.
pub fn workload(cfg: &experiment::Loaded) -> Result<Workload, ConfigError> {
    let w = &cfg.exp.workload;
    let resolve = |p: &str| cfg.base_dir.join(p);
    let hf;
    let tok: &dyn Tokenizer = match &w.tokenizer {
        Some(p) => {
            hf = HfTokenizer::load(&resolve(p)).map_err(|e| config_err(cfg, "workload.tokenizer", e))?;
            &hf
        }
        None => &Approx,
    };
    let file = match (&w.path, w.dataset) {
        (Some(p), Dataset::Sharegpt | Dataset::Jsonl | Dataset::Trace) => {
            let path = resolve(p);
            Some(
                crate::bounded::read_text(&path, crate::bounded::DATASET_BYTES)
                    .map_err(|e| config_err(cfg, "workload.path", format!("cannot read {}: {e}", path.display())))?,
            )
        }
        _ => None,
    };
    let workload::Generated { specs, prefix_hashes, count } =
        workload::generate(w, cfg.exp.experiment.seed, file.as_deref(), tok).map_err(|e| {
            let what = w.path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            config_err(cfg, if file.is_some() { "workload.path" } else { "workload" }, format!("{what}{e}"))
        })?;
    let schedule = arrival::schedule(&cfg.exp.arrival, &specs, cfg.exp.experiment.seed)
        .map_err(|e| config_err(cfg, "arrival.process", e))?;
    BodyTemplate::new(w, "").map_err(|e| config_err(cfg, "workload.drop_fields", e))?;
    for (i, n) in cfg.exp.nodes.iter().enumerate() {
        client::node_headers(n.api_key_env.as_deref(), &n.headers, &cfg.exp.client, &format!("nodes[{i}]"))
            .map_err(|(key, msg)| config_err(cfg, &key, msg))?;
    }
    Ok(Workload { specs: specs.into(), prefix_hashes, schedule, count })
}

/// The `model` field for OpenAI backends: configured, or the first model
/// the first node lists at `/v1/models`.
pub async fn model(
    configured: Option<&str>,
    backend: Backend,
    first: &Endpoint,
    http: &Http,
) -> anyhow::Result<String> {
    if let Some(m) = configured {
        return Ok(m.to_owned());
    }
    if backend == Backend::Sglang {
        return Ok(String::new());
    }
    let url = format!("{}/v1/models", first.base);
    let hint = "set workload.model = \"NAME\" in the experiment file";
    let (status, body) = client::call(http, first, Method::GET, "/v1/models", Duration::from_secs(10))
        .await
        .with_context(|| format!("{url}: {hint}"))?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}; {hint}");
    let v: serde_json::Value = serde_json::from_slice(&body).with_context(|| format!("{url}: not JSON; {hint}"))?;
    v.pointer("/data/0/id")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .with_context(|| format!("{url} lists no model; {hint}"))
}

/// Sends `n` warmup requests (copies of the first request with at most 32
/// output tokens, as SGLang's client does) round-robin over the nodes and
/// waits for them. Fails only if every one of them fails.
pub async fn warmup(
    n: u32,
    spec: &RequestSpec,
    nodes: &[Endpoint],
    http: &Http,
    sending: &Sending,
) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let warm = RequestSpec { output_len: spec.output_len.min(32), ..spec.clone() };
    // Hold the sender: a closed channel would read as "cancel".
    let (_keep, never) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n as usize {
        let send = sending.request(nodes[i % nodes.len()].clone(), &warm);
        let (http, never) = (http.clone(), never.clone());
        tasks.spawn(async move { client::send(&http, send, RunClock::new(), never, |_, _| {}).await });
    }
    let mut last_error = None;
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        let a = done?;
        if let Some(r) = a.refused {
            anyhow::bail!(
                "the server refused the request field {}: {}; {}",
                r.field,
                a.error.unwrap_or_default(),
                r.hint
            );
        }
        match a.error {
            None => ok += 1,
            Some(e) => last_error = Some(e),
        }
    }
    match (ok, last_error) {
        (0, Some(e)) => anyhow::bail!("all {n} warmup requests failed; the last: {e}"),
        _ => {
            tracing::info!("{ok} of {n} warmup requests succeeded");
            Ok(())
        }
    }
}

/// What the run will need from this machine, checked before anything
/// starts (and by `--check`): a writable results directory, valid flags for
/// launched sim nodes, and the sglang-router module for that routing mode.
pub fn environment(cfg: &experiment::Loaded) -> Result<(), ConfigError> {
    let e = &cfg.exp;
    let out = std::path::Path::new(&e.experiment.output_dir);
    // A relative path's last ancestor is "", which never exists: then ".".
    let existing = out.ancestors().find(|p| p.exists()).unwrap_or(std::path::Path::new("."));
    if !existing.is_dir() {
        let msg = format!("{}: {} is not a directory", e.experiment.output_dir, existing.display());
        return Err(config_err(cfg, "experiment.output_dir", msg));
    }
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: access only reads the NUL-terminated path we own.
    #[allow(unsafe_code)]
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let msg = format!("{}: cannot write in {}", e.experiment.output_dir, existing.display());
        return Err(config_err(cfg, "experiment.output_dir", msg));
    }
    for (i, n) in e.nodes.iter().enumerate() {
        if n.kind() == sglab_core::config::Launch::Sim {
            sim_flags(&n.args).map_err(|m| config_err(cfg, &format!("nodes[{i}].args"), m))?;
        }
    }
    if e.routing.mode == sglab_core::config::RoutingMode::SglangRouter {
        let python = crate::nodes::python(e.routing.python.as_deref());
        let found = std::process::Command::new(&python)
            .args(["-c", "import sglang_router.launch_router"])
            .stdin(std::process::Stdio::null())
            .output();
        let why = match found {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default().to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            let msg = format!("{python} cannot import sglang_router ({why}); pip install sglang-router, or set it");
            return Err(config_err(cfg, "routing.python", msg));
        }
    }
    Ok(())
}

/// Parses a sim node's `args` as `sglab sim` would: the first error line.
fn sim_flags(args: &[String]) -> Result<(), String> {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    #[command(name = "sglab sim")]
    struct SimCli {
        #[command(flatten)]
        _args: crate::sim::SimArgs,
    }
    match SimCli::try_parse_from(std::iter::once("sglab sim".to_owned()).chain(args.iter().cloned())) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string().lines().next().unwrap_or("invalid").trim_start_matches("error: ").to_owned()),
    }
}

/// The longest request (prompt + output tokens) against the context length
/// each node reports (`max_model_len` in `/v1/models`: SGLang, vLLM, sglab
/// sim). A node that says nothing is not checked, nor are approximate
/// (word-counted) prompt lengths. An error here fails the run before any
/// request is sent.
pub async fn check_context(
    nodes: &[Endpoint],
    http: &Http,
    specs: &[RequestSpec],
    count: TokenCount,
) -> anyhow::Result<()> {
    if count == TokenCount::Approximate {
        return Ok(());
    }
    let Some(longest) = specs.iter().max_by_key(|s| s.input_len() as u64 + s.output_len as u64) else { return Ok(()) };
    let need = longest.input_len() as u64 + longest.output_len as u64;
    for ep in nodes {
        let Ok((status, body)) = client::call(http, ep, Method::GET, "/v1/models", Duration::from_secs(10)).await
        else {
            continue;
        };
        let ctx = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .filter(|_| status.is_success())
            .and_then(|v| v.pointer("/data/0/max_model_len").and_then(serde_json::Value::as_u64));
        if let Some(ctx) = ctx.filter(|c| need > *c) {
            anyhow::bail!(
                "request {} needs {need} tokens ({} prompt + {} output) but {} serves a context of {ctx} \
                 (max_model_len in /v1/models): lower workload.input_len or workload.output_len",
                longest.id,
                longest.input_len(),
                longest.output_len,
                ep.base
            );
        }
    }
    Ok(())
}

/// What a node says about itself at `/get_server_info` (SGLang and sglab
/// sim answer; other servers give `None`).
async fn server_info(ep: &Endpoint, http: &Http) -> Option<serde_json::Value> {
    let (status, body) = client::call(http, ep, Method::GET, "/get_server_info", Duration::from_secs(5)).await.ok()?;
    status.is_success().then(|| serde_json::from_slice(&body).ok()).flatten()
}

/// The largest step lag (late engine wake-ups, seconds) a node reports:
/// sglab sim's `sglab_sim_step_lag.max_s`.
fn step_lag_of(info: Option<&serde_json::Value>) -> Option<f64> {
    info?.pointer("/sglab_sim_step_lag/max_s")?.as_f64()
}

/// Each node's largest step lag so far (see [`step_lag_of`]).
pub async fn step_lag_max(endpoints: &[Endpoint], http: &Http) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        out.push(step_lag_of(server_info(ep, http).await.as_ref()));
    }
    out
}

/// Each node's engine version and its step lag so far, from one
/// `/get_server_info` (`version`); a server without it is asked vLLM's
/// `/version` and llama.cpp's `/props` (`build_info`) for the version.
pub async fn engine_facts(endpoints: &[Endpoint], http: &Http) -> Vec<(Option<String>, Option<f64>)> {
    const OTHERS: [(&str, &str); 2] = [("/version", "/version"), ("/props", "/build_info")];
    let version_of = |v: &serde_json::Value, field: &str| {
        let version = v.pointer(field)?.as_str()?;
        let frontend = v.get("frontend").and_then(|f| f.as_str()).map(|f| format!(" ({f})")).unwrap_or_default();
        Some(format!("{version}{frontend}"))
    };
    let mut out = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        let info = server_info(ep, http).await;
        let mut version = info.as_ref().and_then(|v| version_of(v, "/version"));
        for (path, field) in OTHERS {
            if version.is_some() {
                break;
            }
            let Ok((status, body)) = client::call(http, ep, Method::GET, path, Duration::from_secs(2)).await else {
                continue;
            };
            let v = status.is_success().then(|| serde_json::from_slice::<serde_json::Value>(&body).ok()).flatten();
            version = v.as_ref().and_then(|v| version_of(v, field));
        }
        out.push((version, step_lag_of(info.as_ref())));
    }
    out
}
