//! `sglab compare DIR DIR...`: headline metrics of several runs side by side
//! with ratios to the first, written to `compare.md`, plus overlay CDFs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use sglab_core::record::Status;
use sglab_core::run_summary::{Metric, RunSummary, stat};

use crate::run::sweep_table::metric_ci;
use crate::{plots, report};

/// Arguments of `sglab compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Run directories, or sweep directories (a column per point; a
    /// point's repeats make one column, mean ± 95 % CI); ratios are to the first.
    #[arg(required = true, num_args = 1..)]
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

/// A value: whole numbers for counts (no unit), two decimals otherwise.
fn shown(v: f64, unit: &str) -> String {
    if unit.is_empty() && v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// One column of the table: a run, or the repeats of one sweep point
/// (`--repeats`), shown as mean ± 95 % CI.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    pub runs: Vec<RunSummary>,
    /// Where the runs are (listed below the table).
    pub dirs: Vec<PathBuf>,
}

/// The comparison table as markdown; ratios are of the means.
pub fn table(cols: &[Column]) -> String {
    let mut t = String::from("| metric |");
    for c in cols {
        let _ = write!(t, " {} |", c.name);
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(cols.len()));
    t.push('\n');
    for (label, metric, scale, unit) in METRICS {
        let _ = write!(t, "| {label}{} |", if unit.is_empty() { String::new() } else { format!(" ({unit})") });
        let base = metric_ci(&cols[0].runs, *metric, *scale).map(|b| b.mean);
        for c in cols {
            let Some(v) = metric_ci(&c.runs, *metric, *scale) else {
                t.push_str(" - |");
                continue;
            };
            let mut cell = shown(v.mean, unit);
            if v.n > 1 {
                let _ = write!(cell, " ± {:.2}", v.ci95);
            }
            // 0 against 0 has no ratio.
            match base {
                Some(b) if b != 0.0 => {
                    let _ = write!(t, " {cell} ({:.2}x) |", v.mean / b);
                }
                _ => {
                    let _ = write!(t, " {cell} |");
                }
            }
        }
        t.push('\n');
    }
    t
}

/// The columns of one argument: a run directory, or a sweep directory
/// (one column per point; a point's repeats make one column).
fn columns(i: usize, dir: &Path) -> anyhow::Result<Vec<Column>> {
    if dir.join("summary.json").is_file() {
        let s = report::load_summary(dir)?;
        return Ok(vec![Column {
            name: format!("{}. {}", i + 1, s.experiment),
            runs: vec![s],
            dirs: vec![dir.to_owned()],
        }]);
    }
    let points = crate::run::sweep_table::points(dir)?;
    anyhow::ensure!(
        !points.is_empty(),
        "{}: neither a run directory (no summary.json) nor a sweep directory",
        dir.display()
    );
    let mut out = Vec::new();
    for (k, (label, members)) in crate::run::sweep_table::repeat_groups(&points).into_iter().enumerate() {
        let dirs: Vec<PathBuf> = members.iter().map(|&m| points[m].1.clone()).collect();
        let runs: Vec<RunSummary> = dirs.iter().filter_map(|d| crate::run::sweep_table::point_summary(d)).collect();
        anyhow::ensure!(!runs.is_empty(), "{}: point {label} has no summary.json", dir.display());
        let n = if runs.len() > 1 { format!(" (mean of {})", runs.len()) } else { String::new() };
        out.push(Column { name: format!("{}{}. {label}{n}", i + 1, (b'a' + (k % 26) as u8) as char), runs, dirs });
    }
    Ok(out)
}

/// Runs `sglab compare`.
pub fn main(args: CompareArgs) -> anyhow::Result<()> {
    let mut cols = Vec::new();
    for (i, dir) in args.dirs.iter().enumerate() {
        cols.extend(columns(i, dir)?);
    }
    anyhow::ensure!(
        cols.len() >= 2,
        "nothing to compare: give two run directories, or a sweep directory with two points"
    );
    let (mut ttft, mut total) = (Vec::new(), Vec::new());
    for c in &cols {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for dir in &c.dirs {
            let recs = report::load_records(dir)?;
            let ok = recs.iter().filter(|r| r.status == Status::Ok);
            a.extend(ok.clone().filter_map(|r| r.derived().ttft_total).map(|v| v * 1e3));
            b.extend(ok.filter_map(|r| r.derived().total_latency).map(|v| v * 1e3));
        }
        ttft.push((c.name.clone(), a));
        total.push((c.name.clone(), b));
    }
    let mut md = table(&cols);
    md.push('\n');
    if cols.iter().any(|c| c.runs.len() > 1) {
        md.push_str("Columns with several runs (a sweep point's repeats) show mean ± the 95 % confidence half-width (Student's t); ratios are of the means.\n\n");
    }
    for c in &cols {
        let dirs: Vec<String> = c.dirs.iter().map(|d| d.display().to_string()).collect();
        let _ = writeln!(md, "- {}: {}", c.name, dirs.join(", "));
    }
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
