//! The virtual-time driver: a thin shell over [`sglab_core::vtime`]. It
//! builds one in-process engine per `launch = "sim"` replica from the
//! node's `args` (parsed exactly as `sglab sim` parses its flags), moves the
//! plugins' clock, streams records to the writer, writes the engines'
//! samples to server_metrics.csv, and turns signals and write failures into
//! session events. See docs/virtual-time.md.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sglab_core::Nanos;
use sglab_core::config::Experiment;
use sglab_core::run_summary::{NodeInfo, VirtualInfo};
use sglab_core::session::{Act, Session, SessionConfig};
use sglab_core::sim::{EngineConfig, EngineStats};
use sglab_core::vtime::{self, HostEvent, VirtualNode};

use super::finish::Driven;
use super::{driver, prepare, progress_bar};
use crate::experiment::{ConfigError, Loaded};
use crate::plugin::{RunClock, WasmBatcher, WasmRouter};
use crate::signals::Received;

/// Each replica's engine, from its node's `args` (a config error names
/// `nodes[i].args`).
pub fn engines(cfg: &Loaded) -> Result<Vec<EngineConfig>, ConfigError> {
    let mut out = Vec::new();
    for (i, n) in cfg.exp.nodes.iter().enumerate() {
        let bad = |msg: String| ConfigError::Plugin { path: cfg.shown(), key: format!("nodes[{i}].args"), msg };
        let args = crate::sim::parse_node_args(&n.args).map_err(|e| bad(format!("{e:#}")))?;
        let engine = crate::sim::engine_config(&args).map_err(|e| bad(format!("{e:#}")))?;
        for _ in 0..n.replicas {
            out.push(engine.clone());
        }
    }
    Ok(out)
}

/// Records go to the writer thread in bursts of this many: one wake-up of
/// the writer per burst instead of one per record (a virtual run finishes
/// tens of thousands of requests per wall second; on one core each wake-up
/// is two context switches, 2 % of the loop's time at 64 a burst).
const BURST: usize = 256;

/// Every this many records, memory freed since is handed back to the
/// system: the prefix hashes made with the workload are freed as their
/// requests arrive, on another thread than the one that made them, and
/// glibc's per-thread arenas would keep that memory while the records grow
/// (the 100,000-request benchmark peaked 25 % higher).
const TRIM_EVERY: u64 = 8192;

struct Shell {
    clock: RunClock,
    records: mpsc::Sender<Vec<sglab_core::record::RequestRecord>>,
    pending: Vec<sglab_core::record::RequestRecord>,
    progress: indicatif::ProgressBar,
    metrics: Option<std::io::BufWriter<std::fs::File>>,
    metrics_error: Option<String>,
    sig: tokio::sync::watch::Receiver<Received>,
    seen: u32,
    write_failed: mpsc::Receiver<String>,
    sent: u64,
}

impl Shell {
    fn flush_records(&mut self) {
        let n = self.pending.len() as u64;
        self.progress.inc(n);
        if n > 0 {
            let _ = self.records.send(std::mem::replace(&mut self.pending, Vec::with_capacity(BURST)));
        }
        if self.sent / TRIM_EVERY != (self.sent + n) / TRIM_EVERY {
            super::release_freed_memory();
        }
        self.sent += n;
    }
}

impl vtime::Host for Shell {
    fn now(&mut self, t: Nanos) {
        self.clock.set(t);
    }

    fn act(&mut self, act: Act) {
        match act {
            Act::Record(rec) => {
                self.pending.push(rec);
                if self.pending.len() >= BURST {
                    self.flush_records();
                }
            }
            Act::Warn(w) => tracing::warn!("{w}"),
            Act::Send { .. } | Act::CancelInFlight => unreachable!("the loop carries these out"),
        }
    }

    fn sample(&mut self, node: usize, t: Nanos, s: &EngineStats) {
        let Some(file) = &mut self.metrics else { return };
        let usage =
            if s.max_total_num_tokens > 0 { s.num_used_tokens as f64 / s.max_total_num_tokens as f64 } else { 0.0 };
        let mut line = String::with_capacity(96);
        let _ = write!(
            line,
            "{node},{},engine,{},{},{usage},{},{},{},{}",
            sglab_core::secs(t),
            s.num_running_reqs,
            s.num_queue_reqs,
            s.cache_hit_rate,
            s.gen_throughput,
            s.num_used_tokens,
            s.max_total_num_tokens
        );
        if let Err(e) = writeln!(file, "{line}") {
            self.metrics_error.get_or_insert_with(|| format!("server_metrics.csv: {e}"));
            self.metrics = None;
        }
    }

    fn interrupt(&mut self) -> Option<HostEvent> {
        if let Ok(e) = self.write_failed.try_recv() {
            return Some(HostEvent::WriteFailed(e));
        }
        let r = *self.sig.borrow();
        match r.first {
            Some(s) if r.count > self.seen => {
                self.seen = r.count;
                Some(HostEvent::Signal(s))
            }
            _ => None,
        }
    }
}

/// Drives one point on virtual time (on this thread: no async runtime is
/// needed, and plugin calls must not run inside one).
#[allow(clippy::too_many_arguments)]
pub fn run(
    exp: &Experiment,
    load: prepare::Workload,
    engines: &[EngineConfig],
    (batcher, router): (WasmBatcher, WasmRouter),
    clock: RunClock,
    dir: &Path,
    quiet: bool,
    sig: tokio::sync::watch::Receiver<Received>,
) -> anyhow::Result<Driven> {
    let c = &exp.client;
    let (fail_tx, write_failed) = mpsc::channel();
    let writer = crate::results::RecordWriter::create(
        &dir.join("requests.csv"),
        exp.results.tokens_csv.then(|| dir.join("tokens.csv")).as_deref(),
        load.specs.len(),
        Box::new(move |e| {
            let _ = fail_tx.send(e);
        }),
    )?;
    let interval = exp.results.server_metrics_interval_s;
    let metrics = (interval > 0.0)
        .then(|| crate::poller::csv_file(&dir.join("server_metrics.csv"), crate::collector::HEADER))
        .transpose()?;
    let mut nodes: Vec<VirtualNode> = engines.iter().map(VirtualNode::new).collect();
    let names = (0..nodes.len()).map(|i| format!("sim node {i} (virtual)")).collect();
    let limit = |v: f64| (v > 0.0).then_some((v * 1e9) as u64);
    let cfg = SessionConfig {
        max_duration: limit(c.max_duration_s),
        max_errors: (c.max_errors > 0).then_some(c.max_errors),
        node_known: true,
        node_names: names,
    };
    let prepare::Workload { specs, prefix_hashes, schedule, .. } = load;
    let mut session = Session::new(specs.clone(), prefix_hashes, schedule, cfg, batcher, router);
    let settings = vtime::Settings {
        rtt: (c.virtual_rtt_ms * 1e6).round() as Nanos,
        timeout: (c.timeout_s * 1e9).round() as Nanos,
        token_times: true,
        stream: exp.workload.stream,
        backend: exp.workload.backend,
        sample_every: limit(interval),
        warmup: c.warmup_requests,
        quiet_decode: true,
    };
    let mut shell = Shell {
        clock,
        records: writer.sender(),
        pending: Vec::with_capacity(BURST),
        progress: progress_bar(quiet, specs.len()),
        metrics,
        metrics_error: None,
        sig,
        seen: 0,
        write_failed,
        sent: 0,
    };
    let started_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let cpu_at_start = super::thread_cpu_s();
    let wall = Instant::now();
    let stats = vtime::run(&mut session, &mut nodes, &specs, &settings, &mut shell);
    // Whatever happened, the records made so far are written.
    shell.flush_records();
    let stats = stats?;
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu_s = super::thread_cpu_s() - cpu_at_start;
    shell.progress.finish_and_clear();
    if let Some(mut f) = shell.metrics.take()
        && let Err(e) = f.flush()
    {
        shell.metrics_error.get_or_insert_with(|| format!("server_metrics.csv: {e}"));
    }
    if let Some(e) = &shell.metrics_error {
        tracing::warn!("server metrics incomplete: {e}");
    }
    drop(shell);
    let (stop, batcher, router) = session.into_parts();
    drop((specs, nodes));
    let out = driver::Output {
        stop,
        plugin_memory: (batcher.peak_memory(), router.peak_memory()),
        plugin_time: [batcher.call_time(), router.call_time()],
    };
    let (records, token_stats) = writer.finish()?;
    let virtual_time = VirtualInfo {
        simulated_s: sglab_core::secs(stats.end),
        warmup_simulated_s: sglab_core::secs(stats.warmup),
        rtt_ms: c.virtual_rtt_ms,
        forward_passes: stats.forward_passes,
        engine_events: stats.engine_events,
        simulated_tokens: stats.tokens,
        loop_iterations: stats.iterations,
    };
    let nodes = engines
        .iter()
        .enumerate()
        .map(|(i, e)| NodeInfo {
            name: format!("sim-{i}"),
            url: None,
            kind: "sim".to_owned(),
            startup_s: None,
            log: None,
            profile: Some(e.profile_name().to_owned()),
            engine_version: None,
        })
        .collect();
    Ok(Driven {
        out,
        records,
        token_stats,
        cpu_s,
        wall_s,
        started_wall,
        nodes,
        router: None,
        virtual_time: Some(virtual_time),
        server_step_lag_ms: Vec::new(),
    })
}
