//! The last phase of a run, the same for both clocks: the summary, the
//! timeline, plots and report, the stdout table; and the summary of a run
//! that failed before its first request.

use std::path::Path;

use sglab_core::config::Experiment;
use sglab_core::record::RequestRecord;
use sglab_core::run_summary::{
    HostInfo, NodeInfo, PerPlugin, PluginsInfo, RunStatus, RunSummary, SCHEMA_VERSION, VirtualInfo, WorkloadInfo,
};
use sglab_core::stats::{Dist, Summary, TokenStats};
use sglab_core::timefmt;
use sglab_core::workload::TokenCount;

use super::{RunEnd, driver, prepare};
use crate::plugin::Loaded;
use crate::results::{self, RecordWriter};

/// What the drive phase produced.
pub struct Driven {
    /// How dispatch ended, plugin counters.
    pub out: driver::Output,
    /// Every record, in id order.
    pub records: Vec<RequestRecord>,
    /// Token-event statistics from the writer.
    pub token_stats: TokenStats,
    /// sglab's CPU time during the drive phase, s.
    pub cpu_s: f64,
    /// Wall time of the drive phase, s.
    pub wall_s: f64,
    /// Wall-clock start, ns since the Unix epoch (recorded once).
    pub started_wall: u128,
    /// The nodes, as summary.json lists them.
    pub nodes: Vec<NodeInfo>,
    /// The router in front of them, if any.
    pub router: Option<NodeInfo>,
    /// Virtual-time facts (None in real time).
    pub virtual_time: Option<VirtualInfo>,
    /// Each node's largest step lag during the run, ms, where the node
    /// reports one (sglab sim's `/server_info`).
    pub server_step_lag_ms: Vec<Option<f64>>,
}

/// Schedule lag (arrival - scheduled, ms) of every arrived request.
fn schedule_lag(records: &[RequestRecord]) -> Option<Dist> {
    Dist::of(records.iter().filter_map(|r| Some((r.arrival? as f64 - r.scheduled? as f64) / 1e6)).collect())
}

/// Writes the summary, timeline, plots and report of a driven run and
/// prints its table.
pub fn finish(
    dir: &Path,
    exp: &Experiment,
    count: TokenCount,
    meta: (&Loaded, &Loaded),
    d: Driven,
) -> anyhow::Result<RunEnd> {
    let Driven {
        out,
        records,
        token_stats,
        cpu_s,
        wall_s,
        started_wall,
        nodes,
        router,
        virtual_time,
        server_step_lag_ms,
    } = d;
    let w = &exp.workload;
    super::release_freed_memory();
    results::write_throughput(dir, token_stats.per_second(), &records)?;
    let mut summary = Summary::from_parts(&records, &exp.slo, token_stats);
    if count == TokenCount::Approximate {
        // The client only estimated text prompt lengths: no comparison.
        summary.tokens.input_count_disagree = None;
    }
    results::write_timeline(dir, &records, exp.node_count(), summary.duration_s, exp.results.timeline_interval_s)?;
    let lag = schedule_lag(&records);
    // The report reads the records back from requests.csv.
    drop(records);
    let mut degraded_reasons = Vec::new();
    let lag_degraded = lag.as_ref().is_some_and(|l| l.p99 > exp.client.max_schedule_lag_ms);
    if let Some(l) = lag.as_ref().filter(|_| lag_degraded) {
        degraded_reasons.push(format!(
            "client schedule lag p99 {:.1} ms > client.max_schedule_lag_ms = {}",
            l.p99, exp.client.max_schedule_lag_ms
        ));
    }
    for (i, ms) in server_step_lag_ms.iter().enumerate() {
        if let Some(ms) = ms.filter(|ms| *ms > exp.client.max_server_step_lag_ms) {
            let name = nodes.get(i).map_or_else(|| format!("node {i}"), |n| n.name.clone());
            degraded_reasons.push(format!(
                "{name} step lag max {ms:.1} ms > client.max_server_step_lag_ms = {}",
                exp.client.max_server_step_lag_ms
            ));
        }
    }
    let degraded = !degraded_reasons.is_empty();
    let (status, end) = match &out.stop {
        None => (RunStatus::Ok, RunEnd::Completed),
        Some(driver::Stop::Rule(_)) => (RunStatus::Stopped, RunEnd::Completed),
        Some(driver::Stop::Interrupted(s)) => (RunStatus::Interrupted, RunEnd::Interrupted(*s)),
        Some(driver::Stop::Failure(_)) => (RunStatus::Failed, RunEnd::Failed),
    };
    // The plugins' share of this process's CPU time during the run (plugin
    // calls run synchronously, so their wall time is CPU time).
    let plugin_s = out.plugin_time.map(|(t, _)| t.as_secs_f64());
    let simulated = virtual_time.as_ref().map(|v| (v.simulated_s, v.simulated_tokens as f64));
    let per_wall = |x: f64| (wall_s > 0.0).then(|| x / wall_s);
    let doc = RunSummary {
        sglab: Some(crate::sglab_info()),
        schema_version: SCHEMA_VERSION,
        experiment: exp.experiment.name.clone(),
        status,
        stop_reason: out.stop.as_ref().map(driver::Stop::reason),
        clock: exp.experiment.clock,
        seed: exp.experiment.seed,
        workload: Some(WorkloadInfo {
            dataset: w.dataset,
            backend: w.backend,
            stream: w.stream,
            token_counts: count.as_str().to_owned(),
            warmup_requests: exp.client.warmup_requests,
        }),
        schedule_lag_ms: lag.clone(),
        degraded,
        degraded_reasons,
        nodes,
        router,
        plugins: Some(PluginsInfo {
            batching: super::plugin_info(meta.0),
            routing: super::plugin_info(meta.1),
            peak_memory_bytes: PerPlugin { batching: out.plugin_memory.0 as u64, routing: out.plugin_memory.1 as u64 },
            calls: PerPlugin { batching: out.plugin_time[0].1, routing: out.plugin_time[1].1 },
        }),
        virtual_time,
        metrics: summary,
        host: HostInfo {
            run_dir: dir.display().to_string(),
            started_at: Some(timefmt::rfc3339(started_wall)),
            started_unix_ns: Some(started_wall.to_string()),
            wall_s: Some(wall_s),
            process_cpu_s: Some(cpu_s),
            plugin_call_time_s: Some(PerPlugin { batching: plugin_s[0], routing: plugin_s[1] }),
            plugin_cpu_share: (cpu_s > 0.0).then(|| (plugin_s[0] + plugin_s[1]) / cpu_s),
            speedup: simulated.and_then(|(s, _)| per_wall(s)),
            tokens_per_wall_s: simulated.and_then(|(_, t)| per_wall(t)),
        },
    };
    results::write_atomic(&dir.join("summary.json"), (serde_json::to_string_pretty(&doc)? + "\n").as_bytes())?;
    // A write error here (a full disk) fails the run: exit 1, and no half
    // file is left (plots and report.html are written whole or not at all).
    let report = crate::report::generate(dir, crate::plots::Scale::Linear);
    say_raw!("{}{}", crate::describe::text(&crate::describe::rows(exp, &doc)), results::table(&doc.metrics));
    if let Some(l) = &lag {
        say!(
            "schedule lag p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{}",
            l.p50,
            l.p99,
            l.max,
            if lag_degraded { "  (DEGRADED: p99 over client.max_schedule_lag_ms)" } else { "" }
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
    for why in &doc.degraded_reasons {
        tracing::warn!("results are degraded: {why}");
    }
    if let Err(e) = report {
        eprintln!("error: plots and report.html not written: {e:#}");
        return Ok(if end == RunEnd::Completed { RunEnd::Failed } else { end });
    }
    Ok(end)
}

/// Startup failed (a node did not start, the model lookup or the warm-up
/// failed, or a signal came first): every request is recorded as
/// cancelled and a summary says why, then the run ends with exit 1, or
/// 128 + N for a signal.
pub fn startup_failed(
    dir: &Path,
    load: &prepare::Workload,
    exp: &Experiment,
    e: anyhow::Error,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> anyhow::Result<(RunEnd, Option<crate::nodes::Nodes>)> {
    let reason = format!("{e:#}");
    let end = match sig.borrow().first {
        Some(s) => RunEnd::Interrupted(s),
        None => RunEnd::Failed,
    };
    let writer = RecordWriter::create(&dir.join("requests.csv"), None, load.specs.len(), Box::new(|_| {}))?;
    let first_line = reason.lines().next().unwrap_or_default();
    let unsent = load
        .specs
        .iter()
        .map(|s| {
            RequestRecord::unsent(
                s.id,
                (s.input_len(), s.output_len),
                None,
                sglab_core::record::Status::Cancelled,
                format!("not sent: the run did not start: {first_line}"),
            )
        })
        .collect();
    let _ = writer.sender().send(unsent);
    let (records, tokens) = writer.finish()?;
    let summary = Summary::from_parts(&records, &exp.slo, tokens);
    let doc = RunSummary {
        sglab: Some(crate::sglab_info()),
        schema_version: SCHEMA_VERSION,
        experiment: exp.experiment.name.clone(),
        status: if matches!(end, RunEnd::Failed) { RunStatus::Failed } else { RunStatus::Interrupted },
        stop_reason: Some(reason.clone()),
        clock: exp.experiment.clock,
        seed: exp.experiment.seed,
        workload: None,
        schedule_lag_ms: None,
        degraded: false,
        degraded_reasons: Vec::new(),
        nodes: Vec::new(),
        router: None,
        plugins: None,
        virtual_time: None,
        metrics: summary,
        host: HostInfo { run_dir: dir.display().to_string(), ..HostInfo::default() },
    };
    results::write_atomic(&dir.join("summary.json"), (serde_json::to_string_pretty(&doc)? + "\n").as_bytes())?;
    eprintln!("error: {reason}");
    eprintln!("every request is recorded (as not sent) in {}", dir.join("requests.csv").display());
    Ok((end, None))
}
