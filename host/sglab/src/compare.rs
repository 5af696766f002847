//! `sglab compare DIR DIR...`: headline metrics of several runs side by side
//! with ratios to the first, written to `compare.md`, plus overlay CDFs.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sglab_core::record::Status;
use sglab_core::run_summary::{Metric, RunSummary, stat};

use crate::{plots, report};

/// Arguments of `sglab compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Run directories; ratios are to the first.
    #[arg(required = true, num_args = 2..)]
    pub dirs: Vec<PathBuf>,
    /// Where to write compare.md and the overlay plots.
    #[arg(long, default_value = "compare")]
    pub out: PathBuf,
    /// Latency axes on a log scale.
    #[arg(long)]
    pub log: bool,
}

/// (label, metric, unit scale, unit).
const METRICS: &[(&str, Metric, f64, &str)] = &[
    ("requests ok", |m| Some(m.requests.ok as f64), 1.0, ""),
    ("request throughput", |m| Some(m.request_throughput), 1.0, "req/s"),
    ("output token throughput", |m| Some(m.output_token_throughput), 1.0, "tok/s"),
    ("mean in flight", |m| Some(m.mean_concurrency), 1.0, ""),
    ("prefix cache hit rate", |m| m.prefix_cache_hit_rate, 100.0, "%"),
    // TTFT from arrival first: it includes the client queue, so a batcher
    // that holds requests back cannot look faster than it is.
    ("ttft_total mean (from arrival)", |m| stat(&m.ttft_total, |d| d.mean), 1e3, "ms"),
    ("ttft_total p99 (from arrival)", |m| stat(&m.ttft_total, |d| d.p99), 1e3, "ms"),
    ("ttft mean (from sending)", |m| stat(&m.ttft, |d| d.mean), 1e3, "ms"),
    ("ttft p99 (from sending)", |m| stat(&m.ttft, |d| d.p99), 1e3, "ms"),
    ("tpot mean", |m| stat(&m.tpot, |d| d.mean), 1e3, "ms"),
    ("itl p99", |m| stat(&m.itl, |d| d.p99), 1e3, "ms"),
    ("server latency mean", |m| stat(&m.server_latency, |d| d.mean), 1e3, "ms"),
    ("total latency p99", |m| stat(&m.total_latency, |d| d.p99), 1e3, "ms"),
    ("queue time mean", |m| stat(&m.queue_time, |d| d.mean), 1e3, "ms"),
];

/// The comparison table as markdown.
pub fn table(names: &[String], summaries: &[RunSummary]) -> String {
    let mut t = String::from("| metric |");
    for n in names {
        let _ = write!(t, " {n} |");
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(names.len()));
    t.push('\n');
    for (label, metric, scale, unit) in METRICS {
        let _ = write!(t, "| {label}{} |", if unit.is_empty() { String::new() } else { format!(" ({unit})") });
        let base = metric(&summaries[0].metrics);
        for s in summaries {
            match (metric(&s.metrics), base) {
                (Some(v), Some(b)) if b != 0.0 => {
                    let _ = write!(t, " {:.2} ({:.2}x) |", v * scale, v / b);
                }
                (Some(v), _) => {
                    let _ = write!(t, " {:.2} |", v * scale);
                }
                (None, _) => t.push_str(" - |"),
            }
        }
        t.push('\n');
    }
    t
}

/// Runs `sglab compare`.
pub fn main(args: CompareArgs) -> anyhow::Result<()> {
    let mut names = Vec::new();
    let mut summaries = Vec::new();
    let mut ttft = Vec::new();
    let mut total = Vec::new();
    for (i, dir) in args.dirs.iter().enumerate() {
        let s = report::load_summary(dir)?;
        let stamp = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let name = format!("{}. {} {}", i + 1, s.experiment, stamp);
        let recs = report::load_records(dir)?;
        let ok = recs.iter().filter(|r| r.status == Status::Ok);
        ttft.push((name.clone(), ok.clone().filter_map(|r| r.derived().ttft_total).map(|v| v * 1e3).collect()));
        total.push((name.clone(), ok.filter_map(|r| r.derived().total_latency).map(|v| v * 1e3).collect()));
        names.push(name);
        summaries.push(s);
    }
    let md = table(&names, &summaries);
    print!("{md}");
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    std::fs::write(args.out.join("compare.md"), &md)?;
    let scale = if args.log { plots::Scale::Log } else { plots::Scale::Linear };
    plots::cdf(
        &args.out.join("ttft_total_cdf.svg"),
        "Time to first token from arrival (ttft_total)",
        "milliseconds",
        &ttft,
        scale,
    )?;
    plots::cdf(&args.out.join("total_latency_cdf.svg"), "Total latency", "milliseconds", &total, scale)?;
    println!("\nwritten: {}", args.out.display());
    Ok(())
}
