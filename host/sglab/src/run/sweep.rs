//! Sweeps: the points of a `[sweep]` run in sequence, each into its own
//! sub-directory, with `sweep.csv` (one row of headline metrics per point)
//! rewritten after every point. `--resume DIR` skips points that finished.
//! Servers are started afresh for every point.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sglab_core::record::csv_field;
use sglab_core::timefmt;

use super::{RunEnd, execute, ready};
use crate::experiment::Point;
use crate::results;

/// Headline columns of `sweep.csv` after `point,dir` and the swept keys:
/// (column, JSON pointer into summary.json, scale).
const COLUMNS: &[(&str, &str, f64)] = &[
    ("requests_ok", "/metrics/requests/ok", 1.0),
    ("request_throughput", "/metrics/request_throughput", 1.0),
    ("output_token_throughput", "/metrics/output_token_throughput", 1.0),
    ("mean_concurrency", "/metrics/mean_concurrency", 1.0),
    ("prefix_cache_hit_rate", "/metrics/prefix_cache_hit_rate", 1.0),
    ("ttft_mean_ms", "/metrics/ttft/mean", 1e3),
    ("ttft_p99_ms", "/metrics/ttft/p99", 1e3),
    ("tpot_mean_ms", "/metrics/tpot/mean", 1e3),
    ("itl_p99_ms", "/metrics/itl/p99", 1e3),
    ("total_latency_p99_ms", "/metrics/total_latency/p99", 1e3),
];

fn dir_name(i: usize, label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=' | ',') { c } else { '_' })
        .take(100)
        .collect();
    format!("{i:03}-{clean}")
}

fn write_csv(base: &Path, points: &[Point], done: &[(usize, PathBuf)]) -> anyhow::Result<()> {
    // Every swept key, in order of first appearance (explicit points may differ).
    let mut keys: Vec<&str> = Vec::new();
    for p in points {
        for (k, _) in &p.values {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let mut out = String::from("point,dir,status");
    for k in &keys {
        out.push(',');
        out.push_str(&csv_field(k));
    }
    for (c, _, _) in COLUMNS {
        out.push(',');
        out.push_str(c);
    }
    out.push('\n');
    for (i, dir) in done {
        let s: Value = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        out.push_str(&format!("{i},{},{}", csv_field(name), s["status"].as_str().unwrap_or("missing")));
        for k in &keys {
            let v = match points[*i].values.iter().find(|(key, _)| key == k).map(|(_, v)| v) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            out.push(',');
            out.push_str(&csv_field(&v));
        }
        for (_, ptr, scale) in COLUMNS {
            out.push(',');
            if let Some(v) = s.pointer(ptr).and_then(Value::as_f64) {
                out.push_str(&format!("{}", v * scale));
            }
        }
        out.push('\n');
    }
    std::fs::write(base.join("sweep.csv"), out)?;
    plot_vs_rate(base, points, done, &keys)
}

/// With `arrival.rate` among the swept keys: p50/p99 TTFT and p99 total
/// latency against the request rate, one line per combination of the other
/// swept keys (e.g. per routing strategy).
fn plot_vs_rate(base: &Path, points: &[Point], done: &[(usize, PathBuf)], keys: &[&str]) -> anyhow::Result<()> {
    if !keys.contains(&"arrival.rate") {
        return Ok(());
    }
    let label = |p: &Point| {
        let parts: Vec<String> = p
            .values
            .iter()
            .filter(|(k, _)| k != "arrival.rate")
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }
                )
            })
            .collect();
        if parts.is_empty() { "run".to_owned() } else { parts.join(", ") }
    };
    let mut plots: Vec<(&str, &str, crate::plots::Series)> = vec![
        ("ttft_p50_vs_rate.svg", "/metrics/ttft/p50", Vec::new()),
        ("ttft_p99_vs_rate.svg", "/metrics/ttft/p99", Vec::new()),
        ("total_latency_p99_vs_rate.svg", "/metrics/total_latency/p99", Vec::new()),
    ];
    for (i, dir) in done {
        let p = &points[*i];
        let Some(rate) = p
            .values
            .iter()
            .find(|(k, _)| k == "arrival.rate")
            .and_then(|(_, v)| v.as_float().or(v.as_integer().map(|x| x as f64)))
        else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(dir.join("summary.json"))
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(serde_json::from_str::<Value>(&t)?))
        else {
            continue;
        };
        for (_, ptr, series) in &mut plots {
            let Some(v) = s.pointer(ptr).and_then(Value::as_f64) else { continue };
            let name = label(p);
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, pts)) => pts.push((rate, v * 1e3)),
                None => series.push((name, vec![(rate, v * 1e3)])),
            }
        }
    }
    for (file, ptr, mut series) in plots {
        for (_, pts) in &mut series {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let what = ptr.trim_start_matches("/metrics/").replace('/', " ");
        crate::plots::xy(&base.join(file), &format!("{what} vs request rate"), "request rate (req/s)", "ms", &series)?;
    }
    Ok(())
}

/// A point that ran to its end (`summary.json` with status ok or stopped):
/// `--resume` skips it. Failed and interrupted points run again.
fn completed(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| matches!(v["status"].as_str(), Some("ok" | "stopped")))
}

/// Runs every point; returns the exit code (the worst point's). Nodes are
/// kept running from one point to the next while their `[[nodes]]` config
/// does not change (their caches are flushed in between).
pub fn run(
    rt: &tokio::runtime::Runtime,
    points: Vec<Point>,
    quiet: bool,
    resume: Option<PathBuf>,
    keep_servers: bool,
    trace: bool,
    sig: &tokio::sync::watch::Receiver<crate::signals::Received>,
) -> ExitCode {
    let first = &points[0].loaded.exp;
    let base = match resume {
        Some(d) => d,
        None => {
            let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
            match results::create_dir(
                &PathBuf::from(&first.experiment.output_dir),
                &first.experiment.name,
                &timefmt::stamp(created),
            ) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let total = points.len();
    let mut done: Vec<(usize, PathBuf)> = Vec::new();
    let mut code = ExitCode::SUCCESS;
    let mut running: Option<crate::nodes::Nodes> = None;
    for (i, p) in points.iter().enumerate() {
        let dir = base.join(dir_name(i, &p.label));
        if completed(&dir) {
            say!("== point {}/{total} ({}): done before, skipped", i + 1, p.label);
            done.push((i, dir));
            continue;
        }
        say!("== point {}/{total}: {}", i + 1, p.label);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(dir.join("logs")) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        let r = match ready(p.loaded.clone()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e} (at sweep point {})", p.label);
                return ExitCode::from(2);
            }
        };
        // Keep the nodes for the next point that will run, when its nodes are the same.
        let next = points.iter().enumerate().skip(i + 1).find(|(j, q)| !completed(&base.join(dir_name(*j, &q.label))));
        let keep = match next {
            Some((_, q)) => q.loaded.exp.nodes == p.loaded.exp.nodes,
            None => keep_servers,
        };
        let reuse = running.take();
        let end = rt.block_on(execute(r, quiet, dir.clone(), reuse, keep, trace, sig)).map(|(end, nodes)| {
            running = nodes;
            end
        });
        done.push((i, dir));
        if let Err(e) = write_csv(&base, &points, &done) {
            eprintln!("error: writing sweep.csv: {e:#}");
        }
        match end {
            Ok(RunEnd::Completed) => {}
            Ok(RunEnd::Failed) => code = ExitCode::FAILURE,
            Ok(RunEnd::Interrupted(s)) => {
                if let Some(n) = running.take() {
                    rt.block_on(async move {
                        let mut n = n;
                        n.stop().await;
                    });
                }
                eprintln!("sweep interrupted; continue with --resume {}", base.display());
                return ExitCode::from(s.exit_code());
            }
            Err(e) => {
                eprintln!("error: point {} failed: {e:#}", p.label);
                code = ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = write_csv(&base, &points, &done) {
        eprintln!("error: writing sweep.csv: {e:#}");
    }
    if let Some(n) = running.take() {
        if keep_servers {
            super::keep_running(&n);
            n.detach();
        } else {
            rt.block_on(async move {
                let mut n = n;
                n.stop().await;
            });
        }
    }
    say!("\nsweep: {} points in {}; table: {}", total, base.display(), base.join("sweep.csv").display());
    code
}
