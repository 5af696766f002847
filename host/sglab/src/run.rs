//! `sglab run FILE`: one experiment run, end to end.
//!
//! Order of work: read and check the experiment, load and create both
//! plugins (a config error exits with code 2 before anything starts), create
//! the results directory, start the nodes, drive the workload, stop the
//! nodes, write the summary. Records are streamed to `requests.csv` as
//! requests finish, so nothing is lost if the run fails part-way.

/// Reports to stdout. A closed stdout (`sglab run ... | head`) must not
/// end the run early or panic it: the run goes on and writes its files, and
/// what could not be printed is dropped.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// [`say!`] without the newline.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod driver;
mod prepare;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sglab_core::stats::{Dist, Summary};
use sglab_core::timefmt;
use sglab_core::workload::RequestSpec;

use crate::experiment::{self, ConfigError};
use crate::nodes::Nodes;
use crate::plugin::trace::DecisionTrace;
use crate::plugin::{Kind, Limits, LoadError, Loaded, RunClock, Runtime, WasmBatcher, WasmRouter};
use crate::results::{self, RecordWriter};

/// Arguments of `sglab run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// Override a value: `--set workload.num_requests=50` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Send to this external node instead of the file's [[nodes]] (repeatable).
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Check the experiment (file, dataset, plugins and their configs) and
    /// exit without starting anything.
    #[arg(long)]
    pub check: bool,
    /// Continue a sweep in this directory: points with a summary.json are skipped.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Leave the launched nodes running at the end (for reuse with --url).
    #[arg(long)]
    pub keep_servers: bool,
    /// Write every plugin decision to decisions.jsonl in the run directory.
    #[arg(long)]
    pub trace_decisions: bool,
}

fn plugin_error(cfg: &experiment::Loaded, slot: &str, e: LoadError) -> ConfigError {
    let key = match e {
        LoadError::Config(_) => format!("{slot}.config"),
        _ => format!("{slot}.plugin"),
    };
    ConfigError::Plugin { path: cfg.shown(), key, msg: e.to_string() }
}

struct Plugins {
    batching: Loaded,
    routing: Loaded,
    batcher: WasmBatcher,
    router: WasmRouter,
}

fn load_plugins(cfg: &experiment::Loaded, clock: &RunClock, specs: &[RequestSpec]) -> Result<Plugins, ConfigError> {
    let e = &cfg.exp;
    let rt = Runtime::get();
    let batching =
        rt.load(&e.batching.plugin, &cfg.base_dir, Kind::Batching).map_err(|x| plugin_error(cfg, "batching", x))?;
    let routing =
        rt.load(&e.routing.plugin, &cfg.base_dir, Kind::Routing).map_err(|x| plugin_error(cfg, "routing", x))?;
    let limits = Limits {
        memory_bytes: e.sandbox.memory_mib as usize * 1024 * 1024,
        deadline: Duration::from_millis(e.sandbox.deadline_ms),
        backstop: Duration::from_millis(e.sandbox.wall_backstop_ms),
        output_bytes: e.sandbox.output_bytes as usize,
        seed: e.experiment.seed,
    };
    let bcfg = serde_json::Value::Object(e.batching.config.clone()).to_string();
    let rcfg = serde_json::Value::Object(e.routing.config.clone()).to_string();
    let mut batcher =
        WasmBatcher::new(&batching, &bcfg, limits, clock.clone()).map_err(|x| plugin_error(cfg, "batching", x))?;
    let mut router =
        WasmRouter::new(&routing, &rcfg, limits, clock.clone()).map_err(|x| plugin_error(cfg, "routing", x))?;
    // Only plugins that asked for the prompt-text capability get the prompts.
    let wants = |l: &Loaded| l.meta.capabilities.contains(&"prompt-text");
    if wants(&batching) || wants(&routing) {
        let texts = prepare::prompt_texts(specs);
        if wants(&batching) {
            batcher.grant_prompts(texts.clone());
        }
        if wants(&routing) {
            router.grant_prompts(texts);
        }
    }
    Ok(Plugins { batching, routing, batcher, router })
}

fn plugin_json(l: &Loaded) -> serde_json::Value {
    json!({
        "name": l.meta.name, "version": l.meta.version, "source": l.source, "sha256": l.sha256,
        "size_bytes": l.size, "wit": format!("sglab:strategy@{}", l.wit_version),
    })
}

/// Runs `sglab run`. Exit codes: 0 ok, 1 the run failed, 2 bad experiment file.
/// A point, ready to run: its config, workload, plugins and clock.
struct Ready {
    cfg: experiment::Loaded,
    load: prepare::Workload,
    plugins: Plugins,
    clock: RunClock,
}

/// Makes the workload and the plugins (before anything starts: a problem
/// with either is a config error). The plugins' clock starts with the run.
fn ready(cfg: experiment::Loaded) -> Result<Ready, ConfigError> {
    let load = prepare::workload(&cfg)?;
    prepare::environment(&cfg)?;
    let clock = RunClock::new();
    let plugins = load_plugins(&cfg, &clock, &load.specs)?;
    Ok(Ready { cfg, load, plugins, clock })
}

fn check_line(r: &Ready, label: &str) -> String {
    let e = &r.cfg.exp;
    format!(
        "ok: {}{} — {} requests ({:?} dataset, {:?} arrivals, token counts {}), {} node(s), batching {} {}, routing {}",
        r.cfg.shown(),
        if label.is_empty() { String::new() } else { format!(" [{label}]") },
        r.load.specs.len(),
        e.workload.dataset,
        e.arrival.process,
        r.load.count.as_str(),
        e.node_count(),
        r.plugins.batching.meta.name,
        r.plugins.batching.meta.version,
        match e.routing.mode {
            sglab_core::config::RoutingMode::Plugin =>
                format!("{} {}", r.plugins.routing.meta.name, r.plugins.routing.meta.version),
            sglab_core::config::RoutingMode::SglangRouter => format!("sglang-router {}", e.routing.policy),
        },
    )
}

/// Runs `sglab run`. Exit codes: 0 ok, 1 the run failed, 2 bad experiment
/// file, 130 interrupted.
pub fn main(args: RunArgs) -> ExitCode {
    let points = match experiment::load_points(&args.file, &args.sets, &args.urls) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        for p in points {
            let label = p.label.clone();
            match ready(p.loaded) {
                Ok(r) => say!("{}", check_line(&r, &label)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // From here on SIGINT, SIGTERM and SIGHUP stop the run through its one
    // shutdown path (node startup included) instead of killing the process.
    let sig = match rt.block_on(async { crate::signals::watch() }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if points.len() == 1 && args.resume.is_none() {
        let p = points.into_iter().next().expect("one point");
        let r = match ready(p.loaded) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let exp = &r.cfg.exp;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = match results::create_dir(
            &PathBuf::from(&exp.experiment.output_dir),
            &exp.experiment.name,
            &timefmt::stamp(created),
        ) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let result = rt.block_on(execute(r, args.quiet, dir, None, args.keep_servers, args.trace_decisions, &sig)).map(
            |(end, nodes)| {
                if let Some(n) = nodes {
                    keep_running(&n);
                    n.detach();
                }
                end
            },
        );
        return exit_code(result);
    }
    sweep::run(&rt, points, args.quiet, args.resume, args.keep_servers, args.trace_decisions, &sig)
}

/// `--keep-servers`: leaves the launched nodes running and says how to
/// reach and stop them.
fn keep_running(nodes: &Nodes) {
    say!("\nservers kept running (reuse them with --url):");
    for n in &nodes.list {
        let pid = nodes.pid(n).map(|p| format!("  (stop: kill -TERM -{p})")).unwrap_or_default();
        say!("  {} {}{pid}", n.name, n.url);
    }
}

fn exit_code(r: anyhow::Result<RunEnd>) -> ExitCode {
    match r {
        Ok(RunEnd::Completed) => ExitCode::SUCCESS,
        Ok(RunEnd::Failed) => ExitCode::FAILURE,
        Ok(RunEnd::Interrupted(s)) => ExitCode::from(s.exit_code()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a run ended (every record is written in each case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Dispatched everything, or stopped by a configured rule.
    Completed,
    /// A plugin failed.
    Failed,
    /// Interrupted by a signal (exit code 128 + its number).
    Interrupted(crate::signals::Signal),
}

/// Schedule lag (arrival - scheduled, ms) of every arrived request.
fn schedule_lag(records: &[sglab_core::record::RequestRecord]) -> Option<Dist> {
    Dist::of(records.iter().filter_map(|r| Some((r.arrival? as f64 - r.scheduled? as f64) / 1e6)).collect())
}

/// Runs one experiment (one sweep point) into `dir`. With `reuse`, the
/// nodes of the previous point serve this one (their prefix caches are
/// flushed first); with `keep`, the nodes are handed back running instead
/// of being stopped (the router, if any, is always stopped).
async fn execute(
    r: Ready,
    quiet: bool,
    dir: PathBuf,
    reuse: Option<Nodes>,
    keep: bool,
    trace: bool,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> anyhow::Result<(RunEnd, Option<Nodes>)> {
    let Ready { cfg, load, mut plugins, clock } = r;
    let trace = if trace {
        let path = dir.join("decisions.jsonl");
        let t = Arc::new(DecisionTrace::create(&path).with_context(|| format!("creating {}", path.display()))?);
        plugins.batcher.trace_decisions(t.clone());
        plugins.router.trace_decisions(t.clone());
        Some(t)
    } else {
        None
    };
    let exp = &cfg.exp;
    let w = &exp.workload;
    let resolved = toml::to_string(exp).context("serialising the resolved config")?;
    std::fs::write(dir.join("config.toml"), resolved).context("writing config.toml")?;

    let mut nodes = match reuse {
        Some(n) => {
            n.flush_caches().await;
            n
        }
        None => match Nodes::start(exp, &dir.join("logs"), sig.clone()).await {
            Ok(n) => n,
            Err(e) => return startup_failed(&dir, &load, exp, e, sig),
        },
    };
    if exp.routing.mode == sglab_core::config::RoutingMode::SglangRouter
        && let Err(e) = nodes.start_router(&exp.routing, &dir.join("logs"), sig.clone()).await
    {
        nodes.stop().await;
        return startup_failed(&dir, &load, exp, e, sig);
    }
    let endpoints = nodes.dispatch_endpoints();
    let node_info = serde_json::to_value(&nodes.list)?;
    let router_info = serde_json::to_value(&nodes.router)?;
    for n in &nodes.list {
        tracing::info!(node = %n.name, url = %n.url, "ready");
    }
    let timeout = Duration::from_secs_f64(exp.client.timeout_s);
    let pool = match exp.arrival.process {
        sglab_core::config::Process::ClosedLoop => exp.arrival.concurrency as usize,
        _ => load.specs.len().min(4096),
    };
    let http = crate::client::http(pool);
    let prepared = async {
        prepare::check_context(&endpoints, &http, &load.specs, load.count).await?;
        let model = prepare::model(w.model.as_deref(), w.backend, &endpoints[0], &http).await?;
        let template = crate::client::body::BodyTemplate::new(w, &model)
            .map_err(|e| anyhow::anyhow!("workload.drop_fields: {e}"))?;
        let sending = Arc::new(crate::client::Sending {
            template: Arc::new(template),
            backend: w.backend,
            stream: w.stream,
            timeout,
            max_output_factor: exp.client.max_output_factor,
            max_event_bytes: exp.client.max_event_bytes as usize,
        });
        prepare::warmup(exp.client.warmup_requests, &load.specs[0], &endpoints, &http, &sending)
            .await
            .context("warmup")?;
        anyhow::Ok(sending)
    };
    let mut sig_rx = sig.clone();
    let prepared = tokio::select! {
        r = prepared => r,
        s = crate::signals::first(&mut sig_rx) => Err(anyhow::anyhow!("interrupted by {} before the first request", s.name())),
    };
    let sending = match prepared {
        Ok(t) => t,
        Err(e) => {
            nodes.stop().await;
            return startup_failed(&dir, &load, exp, e, sig);
        }
    };

    let tokens_csv = exp.results.tokens_csv.then(|| dir.join("tokens.csv"));
    let (tx, rx) = std::sync::mpsc::channel();
    let write_failed = tx.clone();
    let writer = RecordWriter::create(
        &dir.join("requests.csv"),
        tokens_csv.as_deref(),
        Box::new(move |e| {
            let _ = write_failed.send(driver::Event::WriteFailed(e));
        }),
    )?;
    let progress = if quiet { ProgressBar::hidden() } else { ProgressBar::new(load.specs.len() as u64) };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} requests [{elapsed_precise}] {wide_bar} eta {eta}")
            .expect("valid template"),
    );
    let interrupt = tx.clone();
    let limit = |v: f64| (v > 0.0).then_some((v * 1e9) as u64);
    let input = driver::Input {
        specs: load.specs.clone(),
        schedule: load.schedule,
        nodes: endpoints,
        batcher: plugins.batcher,
        router: plugins.router,
        clock: clock.clone(),
        sending,
        max_duration: limit(exp.client.max_duration_s),
        max_errors: (exp.client.max_errors > 0).then_some(exp.client.max_errors),
        node_known: nodes.router.is_none(),
        records: writer.sender(),
        runtime: tokio::runtime::Handle::current(),
        http,
        progress,
    };
    // Reports reach the plugins only when they route to these nodes (not
    // behind sglang-router, where the run has one endpoint).
    let snapshots = nodes.router.is_none().then(|| tx.clone());
    let collector = match exp.results.server_metrics_interval_s {
        i if i > 0.0 => Some(crate::collector::start(
            &dir.join("server_metrics.csv"),
            nodes.list.iter().map(crate::nodes::Node::endpoint).collect(),
            Duration::from_secs_f64(i),
            clock.clone(),
            move |node, snapshot| {
                if let Some(tx) = &snapshots {
                    let _ = tx.send(driver::Event::Server { node: node as u32, snapshot });
                }
            },
        )?),
        _ => None,
    };
    // nvidia-smi describes this host's GPUs: poll it when a node runs here.
    let gpu = match exp.results.server_metrics_interval_s {
        i if i > 0.0 && nodes.list.iter().any(|n| crate::gpu::is_local(&n.url)) => {
            crate::gpu::start(&dir.join("gpu_metrics.csv"), Duration::from_secs_f64(i), clock.clone())?
        }
        _ => None,
    };
    let started_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let cpu_at_start = process_cpu_s();
    let driver = std::thread::Builder::new().name("sglab-dispatch".into()).spawn(move || driver::run(input, tx, rx))?;
    let mut sig_rx = sig.clone();
    let signals = tokio::spawn(async move {
        // Every signal reaches the driver: the first stops the run, a later
        // one also cancels what is in flight.
        let mut seen = 0;
        loop {
            let r = *sig_rx.borrow_and_update();
            if let Some(s) = r.first.filter(|_| r.count > seen) {
                seen = r.count;
                let _ = interrupt.send(driver::Event::Interrupt(s));
            }
            if sig_rx.changed().await.is_err() {
                return;
            }
        }
    });
    let out = tokio::task::spawn_blocking(move || driver.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the dispatcher panicked"))?;
    // CPU time of the run itself (the summary and report come after).
    let cpu_s = process_cpu_s() - cpu_at_start;
    signals.abort();
    if let Some(t) = trace
        && let Err(e) = t.flush()
    {
        tracing::warn!("decisions.jsonl is incomplete: {e}");
    }
    if let Some(g) = gpu {
        match g.finish().await {
            Ok(rows) => tracing::info!("gpu_metrics.csv: {rows} rows"),
            Err(e) => tracing::warn!("GPU metrics collection failed: {e:#}"),
        }
    }
    if let Some(c) = collector {
        match c.finish().await {
            Ok(rows) => tracing::info!("server_metrics.csv: {rows} rows"),
            Err(e) => tracing::warn!("server metrics collection failed: {e:#}"),
        }
    }
    nodes.stop_router().await;
    let nodes = if keep {
        Some(nodes)
    } else {
        nodes.stop().await;
        None
    };
    let (records, token_stats) = writer.finish()?;
    release_freed_memory();
    let mut summary = Summary::from_parts(&records, &exp.slo, token_stats);
    if load.count == sglab_core::workload::TokenCount::Approximate {
        // The client only estimated text prompt lengths: no comparison.
        summary.tokens.input_count_disagree = None;
    }
    results::write_timeline(&dir, &records, exp.node_count(), summary.duration_s, exp.results.timeline_interval_s)?;
    let lag = schedule_lag(&records);
    // The report reads the records back from requests.csv.
    drop(records);
    let degraded = lag.as_ref().is_some_and(|l| l.p99 > exp.client.max_schedule_lag_ms);
    let (status, end) = match &out.stop {
        None => ("ok", RunEnd::Completed),
        Some(driver::Stop::Rule(_)) => ("stopped", RunEnd::Completed),
        Some(driver::Stop::Interrupted(s)) => ("interrupted", RunEnd::Interrupted(*s)),
        Some(driver::Stop::Failure(_)) => ("failed", RunEnd::Failed),
    };
    // The plugins' share of this process's CPU time during the run (plugin
    // calls run synchronously, so their wall time is CPU time).
    let plugin_s = out.plugin_time.map(|(t, _)| t.as_secs_f64());
    let doc = json!({
        "experiment": exp.experiment.name,
        "run_dir": dir,
        "status": status,
        "stop_reason": out.stop.as_ref().map(driver::Stop::reason),
        "started_at": timefmt::rfc3339(started_wall),
        "started_unix_ns": started_wall.to_string(),
        "seed": exp.experiment.seed,
        "workload": {
            "dataset": w.dataset, "backend": w.backend, "stream": w.stream,
            "token_counts": load.count.as_str(), "warmup_requests": exp.client.warmup_requests,
        },
        "schedule_lag_ms": lag,
        "degraded": degraded,
        "nodes": node_info,
        "router": router_info,
        "plugins": {
            "batching": plugin_json(&plugins.batching),
            "routing": plugin_json(&plugins.routing),
            "peak_memory_bytes": {"batching": out.plugin_memory.0, "routing": out.plugin_memory.1},
            "call_time_s": {"batching": plugin_s[0], "routing": plugin_s[1]},
            "calls": {"batching": out.plugin_time[0].1, "routing": out.plugin_time[1].1},
            "process_cpu_s": cpu_s,
            "cpu_share": (cpu_s > 0.0).then(|| (plugin_s[0] + plugin_s[1]) / cpu_s),
        },
        "metrics": summary,
    });
    results::write_atomic(&dir.join("summary.json"), (serde_json::to_string_pretty(&doc)? + "\n").as_bytes())?;
    // A write error here (a full disk) fails the run: exit 1, and no half
    // file is left (plots and report.html are written whole or not at all).
    let report = crate::report::generate(&dir);
    say_raw!("{}", results::table(&summary));
    if let Some(l) = &lag {
        say!(
            "schedule lag p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{}",
            l.p50,
            l.p99,
            l.max,
            if degraded { "  (DEGRADED: p99 over client.max_schedule_lag_ms)" } else { "" }
        );
    }
    say!("\nresults: {}", dir.display());
    match &out.stop {
        Some(driver::Stop::Rule(r)) => eprintln!("note: dispatch stopped early: {r}"),
        Some(s) => {
            eprintln!("error: the run stopped early: {}", s.reason());
            eprintln!("every request is recorded in {}", dir.join("requests.csv").display());
        }
        None => {}
    }
    if degraded {
        tracing::warn!(
            "the client could not keep the arrival schedule (schedule lag p99 above {} ms): results are degraded",
            exp.client.max_schedule_lag_ms
        );
    }
    if let Err(e) = report {
        eprintln!("error: plots and report.html not written: {e:#}");
        return Ok((if end == RunEnd::Completed { RunEnd::Failed } else { end }, nodes));
    }
    Ok((end, nodes))
}

/// Startup failed (a node did not start, the model lookup or the warm-up
/// failed, or a signal came first): every request is recorded as
/// cancelled and a summary says why, then the run ends with exit 1, or
/// 128 + N for a signal.
fn startup_failed(
    dir: &std::path::Path,
    load: &prepare::Workload,
    exp: &sglab_core::config::Experiment,
    e: anyhow::Error,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> anyhow::Result<(RunEnd, Option<Nodes>)> {
    let reason = format!("{e:#}");
    let end = match sig.borrow().first {
        Some(s) => RunEnd::Interrupted(s),
        None => RunEnd::Failed,
    };
    let writer = RecordWriter::create(&dir.join("requests.csv"), None, Box::new(|_| {}))?;
    let tx = writer.sender();
    let first_line = reason.lines().next().unwrap_or_default();
    for s in load.specs.iter() {
        let rec = sglab_core::record::RequestRecord::unsent(
            s.id,
            (s.input_len(), s.output_len),
            None,
            sglab_core::record::Status::Cancelled,
            format!("not sent: the run did not start: {first_line}"),
        );
        let _ = tx.send(rec);
    }
    drop(tx);
    let (records, tokens) = writer.finish()?;
    let summary = Summary::from_parts(&records, &exp.slo, tokens);
    let doc = json!({
        "experiment": exp.experiment.name,
        "run_dir": dir,
        "status": if matches!(end, RunEnd::Failed) { "failed" } else { "interrupted" },
        "stop_reason": reason,
        "seed": exp.experiment.seed,
        "metrics": summary,
    });
    results::write_atomic(&dir.join("summary.json"), (serde_json::to_string_pretty(&doc)? + "\n").as_bytes())?;
    eprintln!("error: {reason}");
    eprintln!("every request is recorded (as not sent) in {}", dir.join("requests.csv").display());
    Ok((end, None))
}

/// User + system CPU time of this process so far, seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Hands memory freed during the run (request bodies, streams, token
/// events, spread over the runtime's threads) back to the system before the
/// summary and report are built, so the peak is the larger of the two
/// phases rather than their sum.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
