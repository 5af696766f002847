//! `sglab run FILE`: one experiment run, end to end.
//!
//! Order of work: read and check the experiment, load and create both
//! plugins (a config error exits with code 2 before anything starts), create
//! the results directory, start the nodes, drive the workload, stop the
//! nodes, write the summary. Records are streamed to `requests.csv` as
//! requests finish, so nothing is lost if the run fails part-way.

mod driver;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sglab_core::stats::Summary;
use sglab_core::{arrival, timefmt, workload};

use crate::experiment::{self, ConfigError};
use crate::nodes::Nodes;
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

fn load_plugins(cfg: &experiment::Loaded, clock: &RunClock) -> Result<Plugins, ConfigError> {
    let e = &cfg.exp;
    let rt = Runtime::get();
    let batching =
        rt.load(&e.batching.plugin, &cfg.base_dir, Kind::Batching).map_err(|x| plugin_error(cfg, "batching", x))?;
    let routing =
        rt.load(&e.routing.plugin, &cfg.base_dir, Kind::Routing).map_err(|x| plugin_error(cfg, "routing", x))?;
    let limits = Limits {
        memory_bytes: e.sandbox.memory_mib as usize * 1024 * 1024,
        deadline: Duration::from_millis(e.sandbox.deadline_ms),
        output_bytes: e.sandbox.output_bytes as usize,
        seed: e.experiment.seed,
    };
    let bcfg = serde_json::Value::Object(e.batching.config.clone()).to_string();
    let rcfg = serde_json::Value::Object(e.routing.config.clone()).to_string();
    let batcher =
        WasmBatcher::new(&batching, &bcfg, limits, clock.clone()).map_err(|x| plugin_error(cfg, "batching", x))?;
    let router =
        WasmRouter::new(&routing, &rcfg, limits, clock.clone()).map_err(|x| plugin_error(cfg, "routing", x))?;
    Ok(Plugins { batching, routing, batcher, router })
}

fn plugin_json(l: &Loaded) -> serde_json::Value {
    json!({
        "name": l.meta.name, "version": l.meta.version, "source": l.source, "sha256": l.sha256,
        "size_bytes": l.size, "wit": format!("sglab:strategy@{}", l.wit_version),
    })
}

/// Runs `sglab run`. Exit codes: 0 ok, 1 the run failed, 2 bad experiment file.
pub fn main(args: RunArgs) -> ExitCode {
    let cfg = match experiment::load(&args.file, &args.sets, &args.urls) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Plugins are created before anything starts; their clock starts with the run.
    let clock = RunClock::new();
    let plugins = match load_plugins(&cfg, &clock) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(execute(cfg, plugins, clock, args.quiet)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns Ok(true) if the run completed, Ok(false) if it stopped early
/// (every record is still written).
async fn execute(cfg: experiment::Loaded, plugins: Plugins, clock: RunClock, quiet: bool) -> anyhow::Result<bool> {
    let exp = &cfg.exp;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = results::create_dir(
        &PathBuf::from(&exp.experiment.output_dir),
        &exp.experiment.name,
        &timefmt::stamp(created),
    )?;
    let resolved = toml::to_string(exp).context("serialising the resolved config")?;
    std::fs::write(dir.join("config.toml"), resolved).context("writing config.toml")?;

    let mut nodes = Nodes::start(exp, &dir.join("logs")).await?;
    let urls: Vec<String> = nodes.list.iter().map(|n| n.url.clone()).collect();
    for n in &nodes.list {
        tracing::info!(node = %n.name, url = %n.url, "ready");
    }

    let specs: Arc<[workload::RequestSpec]> = workload::generate(&exp.workload, exp.experiment.seed).into();
    let schedule = arrival::schedule(&exp.arrival, specs.len(), exp.experiment.seed);
    let writer = RecordWriter::create(&dir.join("requests.csv"))?;
    let progress = if quiet { ProgressBar::hidden() } else { ProgressBar::new(specs.len() as u64) };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} requests [{elapsed_precise}] {wide_bar} eta {eta}")
            .expect("valid template"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let interrupt = tx.clone();
    let input = driver::Input {
        specs,
        schedule,
        nodes: urls,
        batcher: plugins.batcher,
        router: plugins.router,
        clock: clock.clone(),
        timeout: Duration::from_secs_f64(exp.client.timeout_s),
        records: writer.sender(),
        runtime: tokio::runtime::Handle::current(),
        http: crate::client::http(),
        progress,
    };
    let started_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let driver = std::thread::Builder::new().name("sglab-dispatch".into()).spawn(move || driver::run(input, tx, rx))?;
    let signals = tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = interrupt.send(driver::Event::Interrupt);
    });
    let out = tokio::task::spawn_blocking(move || driver.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the dispatcher panicked"))?;
    signals.abort();
    nodes.stop().await;
    let records = writer.finish()?;
    let summary = Summary::of(&records);
    let doc = json!({
        "experiment": exp.experiment.name,
        "run_dir": dir,
        "status": if out.failure.is_some() { "failed" } else { "ok" },
        "failure": out.failure,
        "interrupted": out.interrupted,
        "started_at": timefmt::rfc3339(started_wall),
        "started_unix_ns": started_wall.to_string(),
        "seed": exp.experiment.seed,
        "nodes": nodes.list,
        "plugins": {
            "batching": plugin_json(&plugins.batching),
            "routing": plugin_json(&plugins.routing),
            "peak_memory_bytes": {"batching": out.plugin_memory.0, "routing": out.plugin_memory.1},
        },
        "metrics": summary,
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&doc)? + "\n")
        .context("writing summary.json")?;
    print!("{}", results::table(&summary));
    println!("\nresults: {}", dir.display());
    if let Some(f) = &out.failure {
        eprintln!("error: the run stopped early: {f}");
        eprintln!("every request is recorded in {}", dir.join("requests.csv").display());
    }
    Ok(out.failure.is_none())
}
