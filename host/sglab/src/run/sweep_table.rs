//! `sweep.csv` and the plots against the request rate, rebuilt from the
//! point directories of a sweep (whatever points are there: a sweep run
//! here, in parallel, or point by point on a cluster with `--point K`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sglab_core::record::csv_field;
use sglab_core::run_summary::{Metric, RunSummary, stat};
use sglab_core::stats::repeats::{MeanCi, mean_ci95};

use crate::experiment::REPEAT_KEY;

/// Headline columns of `sweep.csv` after `point,dir,status` and the swept
/// keys: (column, metric, scale).
const COLUMNS: &[(&str, Metric, f64)] = &[
    ("requests_ok", |m| Some(m.requests.ok as f64), 1.0),
    ("request_throughput", |m| Some(m.request_throughput), 1.0),
    ("output_token_throughput", |m| Some(m.output_token_throughput), 1.0),
    ("mean_concurrency", |m| Some(m.mean_concurrency), 1.0),
    ("prefix_cache_hit_rate", |m| m.prefix_cache_hit_rate, 1.0),
    ("ttft_mean_ms", |m| stat(&m.ttft, |d| d.mean), 1e3),
    ("ttft_p99_ms", |m| stat(&m.ttft, |d| d.p99), 1e3),
    ("tpot_mean_ms", |m| stat(&m.tpot, |d| d.mean), 1e3),
    ("itl_p99_ms", |m| stat(&m.itl, |d| d.p99), 1e3),
    ("total_latency_p99_ms", |m| stat(&m.total_latency, |d| d.p99), 1e3),
    // Added later, so at the end (existing columns keep their order): TTFT
    // from arrival, which counts the client queue (`ttft_*` above start at
    // sending).
    ("ttft_total_mean_ms", |m| stat(&m.ttft_total, |d| d.mean), 1e3),
    ("ttft_total_p99_ms", |m| stat(&m.ttft_total, |d| d.p99), 1e3),
];

/// A point's summary, if it has a readable one (a point still running, or
/// one that crashed, has none: its row says `missing`).
pub fn point_summary(dir: &Path) -> Option<RunSummary> {
    RunSummary::parse(&std::fs::read_to_string(dir.join("summary.json")).ok()?).ok()
}

/// Rewrites `sweep.csv` (and the plots against the rate) from every point
/// directory under `base` that has a `point.json`, in point order: the
/// points of a sequential or parallel sweep, or of `--point K` runs spread
/// over a cluster. Returns how many points it found.
pub fn rebuild(base: &Path, y_scale: crate::plots::Scale) -> anyhow::Result<usize> {
    let found = points(base)?;
    write_csv(base, &found, y_scale)?;
    Ok(found.len())
}

/// Every point directory under `base` with its `point.json`, in point order.
pub fn points(base: &Path) -> anyhow::Result<Vec<(PointMeta, PathBuf)>> {
    let mut found: Vec<(PointMeta, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(base).with_context(|| format!("reading {}", base.display()))? {
        let dir = entry?.path();
        let Ok(text) = std::fs::read_to_string(dir.join(POINT_FILE)) else { continue };
        let meta: PointMeta =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid", dir.join(POINT_FILE).display()))?;
        found.push((meta, dir));
    }
    found.sort_by_key(|(m, _)| m.point);
    Ok(found)
}

/// A swept value as a reader writes it: a server flag list
/// `["--max-running-requests", "8"]` reads `max-running-requests=8`, a key
/// `routing.plugin = "x"` reads `plugin=x`.
pub fn readable(key: &str, v: &toml::Value) -> String {
    let short = key.rsplit('.').next().unwrap_or(key);
    match v {
        toml::Value::Array(items) if items.iter().all(|i| i.is_str()) && !items.is_empty() => {
            let words: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
            let mut parts = Vec::new();
            let mut i = 0;
            while i < words.len() {
                let flag = words[i].trim_start_matches('-');
                match words.get(i + 1) {
                    Some(val) if words[i].starts_with("--") && !val.starts_with("--") => {
                        parts.push(format!("{flag}={val}"));
                        i += 2;
                    }
                    _ => {
                        parts.push(flag.to_owned());
                        i += 1;
                    }
                }
            }
            parts.join(" ")
        }
        toml::Value::String(s) => format!("{short}={s}"),
        other => format!("{short}={other}"),
    }
}

/// A point's label from its swept values, leaving out the `skip` keys
/// (the x axis, the repeat seed).
pub fn point_label(p: &PointMeta, skip: &[&str]) -> String {
    let parts: Vec<String> =
        p.values.iter().filter(|(k, _)| !skip.contains(&k.as_str())).map(|(k, v)| readable(k, v)).collect();
    if parts.is_empty() { "run".to_owned() } else { parts.join(", ") }
}

/// What `point.json` in a point's directory says about the point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointMeta {
    /// Index in the sweep (0-based).
    pub point: usize,
    /// `key=value,...`.
    pub label: String,
    /// The swept keys and their values, in order.
    pub values: Vec<(String, toml::Value)>,
}

/// The file name of a point's [`PointMeta`].
pub const POINT_FILE: &str = "point.json";

fn write_csv(base: &Path, done: &[(PointMeta, PathBuf)], y_scale: crate::plots::Scale) -> anyhow::Result<()> {
    // Every swept key, in order of first appearance (explicit points may differ).
    let mut keys: Vec<&str> = Vec::new();
    for (p, _) in done {
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
    for (p, dir) in done {
        let i = p.point;
        let s = point_summary(dir);
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let status = s.as_ref().map_or("missing", |s| s.status.as_str());
        out.push_str(&format!("{i},{},{status}", csv_field(name)));
        for k in &keys {
            let v = match p.values.iter().find(|(key, _)| key == k).map(|(_, v)| v) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            out.push(',');
            out.push_str(&csv_field(&v));
        }
        for (_, metric, scale) in COLUMNS {
            out.push(',');
            if let Some(v) = s.as_ref().and_then(|s| metric(&s.metrics)) {
                out.push_str(&format!("{}", v * scale));
            }
        }
        out.push('\n');
    }
    // Several `--point K` tasks may finish at once: each writes whole.
    crate::results::write_atomic(&base.join("sweep.csv"), out.as_bytes())?;
    write_repeats(base, done)?;
    plot_vs_rate(base, done, &keys, y_scale)
}

/// With `arrival.rate` among the swept keys: p50/p99 TTFT and p99 total
/// latency against the request rate, one line per combination of the other
/// swept keys (e.g. per routing strategy).
fn plot_vs_rate(
    base: &Path,
    done: &[(PointMeta, PathBuf)],
    keys: &[&str],
    y_scale: crate::plots::Scale,
) -> anyhow::Result<()> {
    if !keys.contains(&"arrival.rate") {
        return Ok(());
    }
    // Repeats of a point average into one marker.
    let label = |p: &PointMeta| point_label(p, &["arrival.rate", REPEAT_KEY]);
    let mut plots: Vec<(&str, &str, Metric, crate::plots::Series)> = vec![
        ("ttft_total_p50_vs_rate.svg", "ttft_total p50 (from arrival)", |m| stat(&m.ttft_total, |d| d.p50), Vec::new()),
        ("ttft_p50_vs_rate.svg", "ttft p50", |m| stat(&m.ttft, |d| d.p50), Vec::new()),
        ("ttft_p99_vs_rate.svg", "ttft p99", |m| stat(&m.ttft, |d| d.p99), Vec::new()),
        ("total_latency_p99_vs_rate.svg", "total_latency p99", |m| stat(&m.total_latency, |d| d.p99), Vec::new()),
    ];
    for (p, dir) in done {
        let Some(rate) = p
            .values
            .iter()
            .find(|(k, _)| k == "arrival.rate")
            .and_then(|(_, v)| v.as_float().or(v.as_integer().map(|x| x as f64)))
        else {
            continue;
        };
        let Some(s) = point_summary(dir) else { continue };
        for (_, _, metric, series) in &mut plots {
            let Some(v) = metric(&s.metrics) else { continue };
            let name = label(p);
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, pts)) => pts.push((rate, v * 1e3)),
                None => series.push((name, vec![(rate, v * 1e3)])),
            }
        }
    }
    for (file, what, _, mut series) in plots {
        for (_, pts) in &mut series {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut merged: Vec<(f64, f64, f64)> = Vec::new();
            for &(x, y) in pts.iter() {
                match merged.last_mut() {
                    Some(m) if m.0 == x => {
                        m.1 += y;
                        m.2 += 1.0;
                    }
                    _ => merged.push((x, y, 1.0)),
                }
            }
            *pts = merged.into_iter().map(|(x, sum, n)| (x, sum / n)).collect();
        }
        crate::plots::Chart {
            title: &format!("{what} vs request rate"),
            x_label: "request rate (req/s)",
            y_label: "ms",
            series: &series,
            style: crate::plots::Style::Markers,
            x_scale: crate::plots::Scale::Linear,
            y_scale,
            x_fit: true,
            y_integer: false,
            y_max: None,
        }
        .save(&base.join(file))?;
    }
    Ok(())
}

/// The points grouped by their swept values other than the repeat seed,
/// in point order: (label, members).
pub fn repeat_groups(done: &[(PointMeta, PathBuf)]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, (p, _)) in done.iter().enumerate() {
        let label = point_label(p, &[REPEAT_KEY]);
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, m)) => m.push(i),
            None => groups.push((label, vec![i])),
        }
    }
    groups
}

/// Mean and 95 % CI of `metric` (times `scale`) over `runs`: a point's
/// repeats in `repeats.csv`, the sweep report and `sglab compare`.
pub fn metric_ci<'a>(runs: impl IntoIterator<Item = &'a RunSummary>, metric: Metric, scale: f64) -> Option<MeanCi> {
    let v: Vec<f64> = runs.into_iter().filter_map(|s| metric(&s.metrics)).map(|v| v * scale).collect();
    mean_ci95(&v)
}

/// With repeats (`--repeats N`): `repeats.csv`, one row per point with
/// the mean and 95 % CI half-width of each headline column over its repeats.
fn write_repeats(base: &Path, done: &[(PointMeta, PathBuf)]) -> anyhow::Result<()> {
    if !done.iter().any(|(p, _)| p.values.iter().any(|(k, _)| k == REPEAT_KEY)) {
        return Ok(());
    }
    let summaries: Vec<Option<RunSummary>> = done.iter().map(|(_, d)| point_summary(d)).collect();
    let mut out = String::from("point,repeats");
    for (c, _, _) in COLUMNS {
        out.push_str(&format!(",{c}_mean,{c}_ci95"));
    }
    out.push('\n');
    for (label, members) in repeat_groups(done) {
        let have: Vec<&RunSummary> = members.iter().filter_map(|&i| summaries[i].as_ref()).collect();
        out.push_str(&format!("{},{}", csv_field(&label), have.len()));
        for (_, metric, scale) in COLUMNS {
            match metric_ci(have.iter().copied(), *metric, *scale) {
                Some(r) => out.push_str(&format!(",{},{}", r.mean, r.ci95)),
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    crate::results::write_atomic(&base.join("repeats.csv"), out.as_bytes())
}
