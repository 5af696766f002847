//! `sglab report DIR`: plots (`plots/*.svg`) and a self-contained
//! `report.html` from a run's files. `sglab run` calls it at the end.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use sglab_core::record::{RequestRecord, Status, split_csv_line};
use sglab_core::run_summary::RunSummary;
use sglab_core::timeline;

use crate::plots;

mod run_html;
mod sweep_html;

pub use sweep_html::generate as generate_sweep;

/// Arguments of `sglab report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A run directory (results/<name>/<stamp>/) or a sweep directory.
    pub dir: PathBuf,
    /// Latency axes (CDFs, latency against rate) on a log scale.
    #[arg(long)]
    pub log: bool,
}

impl ReportArgs {
    /// The scale of latency axes.
    pub fn scale(&self) -> plots::Scale {
        if self.log { plots::Scale::Log } else { plots::Scale::Linear }
    }
}

/// A CSV file as header + rows (RFC 4180 quoting, one record per line).
pub fn read_csv(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header = split_csv_line(lines.next().with_context(|| format!("{} is empty", path.display()))?);
    // A run killed mid-write can leave a partial last line: skip short rows.
    let rows = lines.map(split_csv_line).filter(|r| r.len() == header.len()).collect();
    Ok((header, rows))
}

fn col(header: &[String], name: &str) -> anyhow::Result<usize> {
    header.iter().position(|h| h == name).with_context(|| format!("requests.csv has no {name} column"))
}

/// The records of `requests.csv` (times back in nanoseconds), converted
/// line by line so only the records are held.
pub fn load_records(dir: &Path) -> anyhow::Result<Vec<RequestRecord>> {
    use std::io::BufRead as _;
    let path = dir.join("requests.csv");
    let file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let h = split_csv_line(&lines.next().with_context(|| format!("{} is empty", path.display()))??);
    let idx = |n: &str| col(&h, n);
    let (id, inp, dec, arr, sent, first, fin, node, status, error, sched, cached, ev) = (
        idx("req_id")?,
        idx("input_length")?,
        idx("decode_length")?,
        idx("arrival_time")?,
        idx("to_server_time")?,
        idx("first_token_time")?,
        idx("finish_time")?,
        idx("node")?,
        idx("status")?,
        idx("error")?,
        idx("scheduled_time")?,
        idx("cached_tokens")?,
        idx("token_events")?,
    );
    // Columns added later: runs written before them still load.
    let opt = |n: &str| h.iter().position(|c| c == n);
    let (req_out, reason, client_in) =
        (opt("requested_output_length"), opt("finish_reason"), opt("client_input_length"));
    let ns = |s: &str| s.parse::<f64>().ok().map(|v| (v * 1e9).round() as u64);
    let mut records = Vec::new();
    for line in lines {
        let r = split_csv_line(&line.with_context(|| format!("reading {}", path.display()))?);
        // A run killed mid-write can leave a partial last line: skip short rows.
        if r.len() != h.len() {
            continue;
        }
        let input_length = r[inp].parse().unwrap_or(0);
        records.push(RequestRecord {
            id: r[id].parse().unwrap_or(0),
            input_length,
            decode_length: r[dec].parse().unwrap_or(0),
            scheduled: ns(&r[sched]),
            arrival: ns(&r[arr]),
            to_server: ns(&r[sent]),
            first_token: ns(&r[first]),
            finish: ns(&r[fin]),
            node: r[node].parse().ok(),
            status: match r[status].as_str() {
                "ok" => Status::Ok,
                "rejected" => Status::Rejected,
                "cancelled" => Status::Cancelled,
                _ => Status::Error,
            },
            error: r[error].clone(),
            cached_tokens: r[cached].parse().ok(),
            token_events: r[ev].parse().unwrap_or(0),
            retractions: None,
            token_times: Vec::new(),
            requested_output_length: req_out.and_then(|i| r[i].parse().ok()).unwrap_or(0),
            finish_reason: reason.map(|i| r[i].clone()).unwrap_or_default(),
            client_input_length: client_in.and_then(|i| r[i].parse().ok()).unwrap_or(input_length),
            error_kind: None,
        });
    }
    Ok(records)
}

/// A run's `summary.json`; the error names the file and what is wrong.
pub fn load_summary(dir: &Path) -> anyhow::Result<RunSummary> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    RunSummary::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `plots/*.svg` and `report.html` for the run in `dir`; returns the plots.
pub fn generate(dir: &Path, scale: plots::Scale) -> anyhow::Result<Vec<PathBuf>> {
    let summary = load_summary(dir)?;
    let records = load_records(dir)?;
    let nodes = summary.nodes.len().max(1);
    let plots_dir = dir.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.status == Status::Ok).collect();
    let mut made = Vec::new();
    let mut plot_cdf = |file: &str, title: &str, values: Vec<f64>| -> anyhow::Result<()> {
        let p = plots_dir.join(file);
        plots::cdf(&p, title, "milliseconds", &[(String::new(), values)], scale)?;
        made.push(p);
        Ok(())
    };
    plot_cdf(
        "ttft_cdf.svg",
        "Time to first token (ttft, from sending)",
        ok.iter().filter_map(|r| r.derived().ttft).map(|v| v * 1e3).collect(),
    )?;
    plot_cdf(
        "total_latency_cdf.svg",
        "Total latency (arrival to finish)",
        ok.iter().filter_map(|r| r.derived().total_latency).map(|v| v * 1e3).collect(),
    )?;
    // The ITL CDF is per token, as the summary's `itl`: it needs every
    // token's time (tokens.csv). Without them the per-request mean
    // (`tpot`) is what there is, and its plot says so.
    match read_csv(&dir.join("tokens.csv")) {
        Ok((_, rows)) => {
            let mut last: std::collections::HashMap<&str, (f64, f64)> = std::collections::HashMap::new();
            let mut out = Vec::new();
            for r in &rows {
                let (t, n): (f64, f64) = (r[1].parse().unwrap_or(0.0), r[2].parse().unwrap_or(0.0));
                if let Some((t0, n0)) = last.insert(r[0].as_str(), (t, n))
                    && n > n0
                {
                    out.extend(std::iter::repeat_n((t - t0) / (n - n0) * 1e3, (n - n0) as usize));
                }
            }
            plot_cdf("itl_cdf.svg", "Inter-token latency (per token)", out)?;
        }
        Err(_) => plot_cdf(
            "tpot_cdf.svg",
            "Time per output token (per request mean; results.tokens_csv = true for per-token ITL)",
            ok.iter().filter_map(|r| r.derived().tpot).map(|v| v * 1e3).collect(),
        )?,
    }

    let end = summary.metrics.duration_s;
    let rows = timeline::exact(&records, nodes);
    let mut series = vec![
        ("client: queued".to_owned(), plots::steps(rows.iter().map(|r| (r.t, r.queued as f64)))),
        ("client: running".to_owned(), plots::steps(rows.iter().map(|r| (r.t, r.running as f64)))),
    ];
    if let Ok((h, srows)) = read_csv(&dir.join("server_metrics.csv")) {
        let (n, t, run, q) =
            (col(&h, "node")?, col(&h, "time")?, col(&h, "num_running_reqs")?, col(&h, "num_queue_reqs")?);
        for node in 0..nodes {
            let pick = |c: usize| -> Vec<(f64, f64)> {
                srows
                    .iter()
                    .filter(|r| r[n] == node.to_string())
                    .filter_map(|r| Some((r[t].parse().ok()?, r[c].parse().ok()?)))
                    .collect()
            };
            // Samples hold until the next one: steps, not lines between samples.
            series.push((format!("node {node} (server): running"), plots::steps(pick(run).into_iter())));
            series.push((format!("node {node} (server): queued"), plots::steps(pick(q).into_iter())));
        }
    }
    let p = plots_dir.join("timeline.svg");
    let mut chart = plots::Chart::over_time("Requests over time: client view and server reports", "requests", &series);
    chart.y_integer = true;
    chart.save(&p)?;
    made.push(p);

    // Throughput per 1-second bin, from throughput_1s.csv (the summary's
    // bins: tokens by arrival, so the plot's peak is the summary's peak).
    // One quantity per plot; bins drawn as steps; a last bin shorter than
    // a second is left out rather than drawn as a false dive.
    let (tokens, finished, by) = match read_csv(&dir.join("throughput_1s.csv")) {
        Ok((_, rows)) => {
            let v = |r: &Vec<String>, i: usize| r.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            (rows.iter().map(|r| v(r, 1)).collect(), rows.iter().map(|r| v(r, 2)).collect(), "token arrival")
        }
        // A run from before the file existed: tokens by finish time.
        Err(_) => {
            let secs = end.ceil().max(1.0) as usize;
            let (mut toks, mut reqs) = (vec![0.0; secs], vec![0.0; secs]);
            for r in &ok {
                if let Some(f) = r.finish {
                    let b = ((f as f64 / 1e9) as usize).min(secs - 1);
                    toks[b] += r.decode_length as f64;
                    reqs[b] += 1.0;
                }
            }
            (toks, reqs, "request finish")
        }
    };
    let full = (end.floor() as usize).max(1);
    let binned = |v: &Vec<f64>| -> Vec<(f64, f64)> {
        let v = &v[..v.len().min(full)];
        let mut pts = plots::steps(v.iter().enumerate().map(|(i, &x)| (i as f64, x)));
        if let Some(&(_, last)) = pts.last() {
            pts.push((v.len() as f64, last));
        }
        pts
    };
    let peak = tokens.iter().copied().fold(0.0f64, f64::max);
    let p = plots_dir.join("throughput.svg");
    let title = format!("Output tokens per second (1-s bins by {by}; peak {peak:.0} tok/s)");
    plots::Chart::over_time(&title, "output tokens / s", &[(String::new(), binned(&tokens))]).save(&p)?;
    made.push(p);
    let p = plots_dir.join("requests_per_s.svg");
    let finished = [(String::new(), binned(&finished))];
    let mut chart = plots::Chart::over_time("Requests finished per second (1-s bins)", "requests / s", &finished);
    chart.y_integer = true;
    chart.save(&p)?;
    made.push(p);
    let node_series: Vec<(String, Vec<(f64, f64)>)> = (0..nodes)
        .map(|n| (format!("node {n}: in flight"), plots::steps(rows.iter().map(|r| (r.t, r.nodes[n].0 as f64)))))
        .collect();
    let p = plots_dir.join("node_load.svg");
    let mut chart = plots::Chart::over_time("Requests in flight per node", "requests", &node_series);
    chart.y_integer = true;
    chart.save(&p)?;
    made.push(p);

    run_html::write(dir, &summary, &made)?;
    Ok(made)
}

/// Runs `sglab report DIR`.
pub fn main(args: ReportArgs) -> anyhow::Result<()> {
    if !args.dir.join("summary.json").is_file() {
        // A sweep directory: rebuild sweep.csv from the points that are there.
        let n = crate::run::sweep_table::rebuild(&args.dir, args.scale())?;
        anyhow::ensure!(
            n > 0,
            "{}: neither a run directory (no summary.json) nor a sweep directory (no point.json under it)",
            args.dir.display()
        );
        let html = generate_sweep(&args.dir, args.scale())?;
        println!("{n} points: {} and {}", args.dir.join("sweep.csv").display(), html.display());
        return Ok(());
    }
    let plots = generate(&args.dir, args.scale())?;
    println!("{} plots and {}", plots.len(), args.dir.join("report.html").display());
    Ok(())
}
