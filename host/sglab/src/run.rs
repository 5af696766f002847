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
        if !$crate::run::silent() {
            let _ = writeln!(std::io::stdout(), $($t)*);
        }
    }};
}

/// [`say!`] without the newline.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if !$crate::run::silent() {
            let _ = write!(std::io::stdout(), $($t)*);
        }
    }};
}

thread_local! {
    /// Set on the worker threads of a parallel sweep: their points' tables
    /// would interleave on stdout, so each point prints one line instead.
    static SILENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread's reports are suppressed (see [`SILENT`]).
pub(crate) fn silent() -> bool {
    SILENT.with(std::cell::Cell::get)
}

/// Suppresses (or restores) this thread's reports.
pub(crate) fn set_silent(on: bool) {
    SILENT.with(|s| s.set(on));
}

mod driver;
mod finish;
mod live;
mod live_view;
mod prepare;
mod sweep;
pub mod sweep_table;
mod virtual_time;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sglab_core::session::Signal;
use sglab_core::workload::RequestSpec;

use sglab_core::config::Clock;

use crate::experiment::{self, ConfigError};
use crate::nodes::Nodes;
use crate::plugin::trace::DecisionTrace;
use crate::plugin::{Kind, Limits, LoadError, Loaded, RunClock, Runtime, WasmBatcher, WasmRouter};

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
    /// `virtual` runs the sim nodes in-process on a discrete-event clock
    /// (same as `[experiment] clock = "virtual"`); `real` is the default.
    #[arg(long, value_name = "real|virtual", value_parser = parse_clock)]
    pub clock: Option<Clock>,
    /// Sweeps in virtual time: run this many points at once (default: the
    /// number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run every point N times, with seeds seed, seed+1, ... (new workload
    /// draws and arrivals each time): sweep.csv has a row per repeat, and
    /// repeats.csv and the sweep's report.html give each point's mean and
    /// 95 % confidence interval.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeats: u32,
    /// Run only point K (0-based) of a sweep, into the sweep directory given
    /// with --resume (or a new one), e.g. one task of a Slurm job array.
    #[arg(long, value_name = "K")]
    pub point: Option<usize>,
}

/// `--clock`: parsed with the experiment file's own names.
fn parse_clock(s: &str) -> Result<Clock, String> {
    match s {
        "real" => Ok(Clock::Real),
        "virtual" => Ok(Clock::Virtual),
        _ => Err(format!("expected real or virtual, got {s:?}")),
    }
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
    // Each plugin's memory cap: its own `memory_mib`, else the sandbox's.
    let limits = |own: Option<u32>| Limits {
        memory_bytes: own.unwrap_or(e.sandbox.memory_mib) as usize * 1024 * 1024,
        deadline: Duration::from_millis(e.sandbox.deadline_ms),
        backstop: Duration::from_millis(e.sandbox.wall_backstop_ms),
        output_bytes: e.sandbox.output_bytes as usize,
        seed: e.experiment.seed,
    };
    let (blimits, rlimits) = (limits(e.batching.memory_mib), limits(e.routing.memory_mib));
    let batching = rt
        .load_limited(&e.batching.plugin, &cfg.base_dir, Kind::Batching, &blimits)
        .map_err(|x| plugin_error(cfg, "batching", x))?;
    let routing = rt
        .load_limited(&e.routing.plugin, &cfg.base_dir, Kind::Routing, &rlimits)
        .map_err(|x| plugin_error(cfg, "routing", x))?;
    let bcfg = serde_json::Value::Object(e.batching.config.clone()).to_string();
    let rcfg = serde_json::Value::Object(e.routing.config.clone()).to_string();
    let mut batcher =
        WasmBatcher::new(&batching, &bcfg, blimits, clock.clone()).map_err(|x| plugin_error(cfg, "batching", x))?;
    let mut router =
        WasmRouter::new(&routing, &rcfg, rlimits, clock.clone()).map_err(|x| plugin_error(cfg, "routing", x))?;
    // Only plugins that asked for the prompt-text capability get the prompts.
    let wants = |l: &Loaded| l.meta.capabilities.contains(&"prompt-text");
    if wants(&batching) || wants(&routing) {
        let texts = prepare::prompts(specs);
        if wants(&batching) {
            batcher.grant_prompts(texts.clone());
        }
        if wants(&routing) {
            router.grant_prompts(texts);
        }
    }
    Ok(Plugins { batching, routing, batcher, router })
}

fn plugin_info(l: &Loaded) -> sglab_core::run_summary::PluginInfo {
    sglab_core::run_summary::PluginInfo {
        name: l.meta.name.clone(),
        version: l.meta.version.clone(),
        source: l.source.clone(),
        sha256: l.sha256.clone(),
        size_bytes: l.size as u64,
        wit: format!("sglab:strategy@{}", l.wit_version),
    }
}

/// Runs `sglab run`. Exit codes: 0 ok, 1 the run failed, 2 bad experiment file.
/// A point, ready to run: its config, workload, plugins and clock.
struct Ready {
    cfg: experiment::Loaded,
    load: prepare::Workload,
    plugins: Plugins,
    clock: RunClock,
    /// Virtual time: each replica's engine.
    engines: Option<Vec<sglab_core::sim::EngineConfig>>,
}

/// Makes the workload and the plugins (before anything starts: a problem
/// with either is a config error). The plugins' clock starts with the run.
fn ready(cfg: experiment::Loaded) -> Result<Ready, ConfigError> {
    let load = prepare::workload(&cfg)?;
    let virtual_time = cfg.exp.experiment.clock == Clock::Virtual;
    let engines = if virtual_time { Some(virtual_time::engines(&cfg)?) } else { None };
    if !virtual_time {
        prepare::environment(&cfg)?;
    }
    let clock = if virtual_time { RunClock::manual() } else { RunClock::new() };
    let plugins = load_plugins(&cfg, &clock, &load.specs)?;
    Ok(Ready { cfg, load, plugins, clock, engines })
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
pub fn main(mut args: RunArgs) -> ExitCode {
    if let Some(c) = args.clock {
        args.sets.push(format!("experiment.clock={}", c.as_str()));
    }
    if let Err(e) = check_virtual_flags(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let points = match experiment::load_points(&args.file, &args.sets, &args.urls)
        .map_err(|e| e.to_string())
        .and_then(|p| experiment::repeat(p, args.repeats))
    {
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
    // A plain run is a sweep of one point whose directory is the run's.
    let single = points.len() == 1 && args.resume.is_none() && args.point.is_none();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let opts = sweep::SweepOpts {
        quiet: args.quiet,
        resume: args.resume,
        keep_servers: args.keep_servers,
        trace: args.trace_decisions,
        jobs,
        only: args.point,
        single,
    };
    sweep::run(&rt, points, opts, &sig)
}

/// Flags that a virtual-time run cannot honour: `--url` (no real server is
/// reached) and `--keep-servers` (none is started).
fn check_virtual_flags(args: &RunArgs) -> Result<(), String> {
    if args.urls.is_empty() && !args.keep_servers {
        return Ok(());
    }
    // Read the file as written (without --url, which would replace its
    // nodes) to learn its clock; its own errors are reported later.
    let Ok(points) = experiment::load_points(&args.file, &args.sets, &[]) else { return Ok(()) };
    if points.iter().any(|p| p.loaded.exp.experiment.clock == Clock::Virtual) {
        let flag = if args.urls.is_empty() { "--keep-servers" } else { "--url" };
        return Err(format!(
            "{flag} is not available in virtual time ({}: experiment.clock = \"virtual\"; the sim nodes run in-process)",
            args.file.display()
        ));
    }
    Ok(())
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

/// How a run ended (every record is written in each case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Dispatched everything, or stopped by a configured rule.
    Completed,
    /// A plugin failed.
    Failed,
    /// Interrupted by a signal (exit code 128 + its number).
    Interrupted(Signal),
}

/// The progress bar of a run (hidden with `--quiet`).
fn progress_bar(quiet: bool, len: usize) -> ProgressBar {
    let progress = if quiet { ProgressBar::hidden() } else { ProgressBar::new(len as u64) };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} requests [{elapsed_precise}] {wide_bar} eta {eta}")
            .expect("valid template"),
    );
    progress
}

/// Runs one experiment (one sweep point) into `dir`: serve, drive, finish.
/// With `reuse`, the nodes of the previous point serve this one (their
/// prefix caches are flushed first); with `keep`, the nodes are handed back
/// running instead of being stopped (the router, if any, is always
/// stopped). A virtual-time point has no nodes to serve or keep.
async fn execute(
    r: Ready,
    quiet: bool,
    dir: PathBuf,
    reuse: Option<Nodes>,
    keep: bool,
    trace: bool,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> anyhow::Result<(RunEnd, Option<Nodes>)> {
    let Ready { cfg, load, mut plugins, clock, engines } = r;
    let count = load.count;
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
    let resolved = toml::to_string(exp).context("serialising the resolved config")?;
    std::fs::write(dir.join("config.toml"), resolved).context("writing config.toml")?;
    let Plugins { batching, routing, batcher, router } = plugins;
    let (driven, nodes) = match engines {
        Some(engines) => {
            // The workload moves into the point's thread and is dropped
            // there before the summary is made (at 100,000 requests it is
            // tens of MB that the summary does not need).
            let (exp2, dir2, sig2) = (exp.clone(), dir.clone(), sig.clone());
            let d = tokio::task::spawn_blocking(move || {
                virtual_time::run(&exp2, load, &engines, (batcher, router), clock, &dir2, quiet, sig2)
            })
            .await??;
            (d, None)
        }
        None => match live::run(exp, &load, (batcher, router), clock, &dir, reuse, quiet, sig).await? {
            Ok((d, nodes)) => (d, Some(nodes)),
            Err(early) => return Ok(early),
        },
    };
    if let Some(t) = trace
        && let Err(e) = t.flush()
    {
        tracing::warn!("decisions.jsonl is incomplete: {e}");
    }
    let nodes = match nodes {
        Some(n) if keep => Some(n),
        Some(mut n) => {
            n.stop().await;
            None
        }
        None => None,
    };
    let end = finish::finish(&dir, exp, count, (&batching, &routing), driven)?;
    Ok((end, nodes))
}

/// User + system CPU time of this process so far, seconds.
fn process_cpu_s() -> f64 {
    cpu_s(libc::RUSAGE_SELF)
}

/// User + system CPU time of the calling thread so far, seconds (a
/// virtual-time point runs on one thread; parallel points share the process).
fn thread_cpu_s() -> f64 {
    cpu_s(libc::RUSAGE_THREAD)
}

fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Hands memory freed during the run (request bodies, streams, token
/// events, spread over the runtime's threads) back to the system before the
/// summary and report are built, so the peak is the larger of the two
/// phases rather than their sum (and now and then during a virtual run).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
