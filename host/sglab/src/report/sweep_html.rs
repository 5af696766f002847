//! `report.html` of a sweep: what the sweep varied, one row per point with
//! the headline metrics and a link to the point's own report, and plots
//! over whatever was varied: latency against the rate when the rate is
//! swept (drawn with sweep.csv), bars per point and overlaid CDFs
//! otherwise (strategies, server flags).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sglab_core::record::Status;
use sglab_core::run_summary::{Metric, stat};

use super::run_html::{STYLE, esc, experiment, what_table};
use crate::plots;
use crate::run::sweep_table::{metric_ci, point_label, point_summary, points, repeat_groups};

/// (column, metric, scale, decimals).
const COLUMNS: &[(&str, Metric, f64, usize)] = &[
    ("ok", |m| Some(m.requests.ok as f64), 1.0, 0),
    ("req/s", |m| Some(m.request_throughput), 1.0, 2),
    ("output tok/s", |m| Some(m.output_token_throughput), 1.0, 1),
    ("ttft_total p50 (ms)", |m| stat(&m.ttft_total, |d| d.p50), 1e3, 2),
    ("ttft_total p99 (ms)", |m| stat(&m.ttft_total, |d| d.p99), 1e3, 2),
    ("ttft p50 (ms)", |m| stat(&m.ttft, |d| d.p50), 1e3, 2),
    ("itl p99 (ms)", |m| stat(&m.itl, |d| d.p99), 1e3, 2),
    ("total latency p99 (ms)", |m| stat(&m.total_latency, |d| d.p99), 1e3, 2),
    ("hit rate (%)", |m| m.prefix_cache_hit_rate, 100.0, 1),
];

/// Bars drawn when the rate is not swept: (file, title, axis, column).
const BARS: &[(&str, &str, &str, usize)] = &[
    ("ttft_total_p50_by_point.svg", "ttft_total p50 (from arrival) by point", "ms", 3),
    ("ttft_total_p99_by_point.svg", "ttft_total p99 (from arrival) by point", "ms", 4),
    ("total_latency_p99_by_point.svg", "total latency p99 by point", "ms", 7),
    ("output_throughput_by_point.svg", "output tokens per second by point", "tok/s", 2),
];

/// Writes `base/report.html` (and its plots under `base/plots/`); returns its path.
pub fn generate(base: &Path, scale: plots::Scale) -> anyhow::Result<PathBuf> {
    let found = points(base)?;
    anyhow::ensure!(!found.is_empty(), "{}: no point.json under it: not a sweep directory", base.display());
    let mut keys: Vec<&str> = Vec::new();
    for (p, _) in &found {
        for (k, _) in &p.values {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let by_rate = keys.contains(&"arrival.rate");
    let summaries: Vec<_> = found.iter().map(|(_, d)| point_summary(d)).collect();
    let labels: Vec<String> = found.iter().map(|(p, _)| point_label(p, &[])).collect();
    // Repeats of a point (`--repeats`) are one group: one bar (their
    // mean), one pooled CDF, one row of means and confidence intervals.
    let groups = repeat_groups(&found);
    let repeated = groups.iter().any(|(_, m)| m.len() > 1);
    let plots_dir = base.join("plots");
    let mut made: Vec<PathBuf> = Vec::new();
    if by_rate {
        // sweep.csv's rebuild drew these beside it.
        for f in [
            "ttft_total_p50_vs_rate.svg",
            "ttft_p50_vs_rate.svg",
            "ttft_p99_vs_rate.svg",
            "total_latency_p99_vs_rate.svg",
        ] {
            if base.join(f).is_file() {
                made.push(base.join(f));
            }
        }
    } else {
        std::fs::create_dir_all(&plots_dir)?;
        for &(file, title, axis, col) in BARS {
            let (_, metric, scale, _) = COLUMNS[col];
            let items: Vec<(String, f64)> = groups
                .iter()
                .filter_map(|(l, members)| {
                    let m = metric_ci(members.iter().filter_map(|&i| summaries[i].as_ref()), metric, scale)?;
                    let label = if members.len() > 1 { format!("{l} (mean of {})", m.n) } else { l.clone() };
                    Some((label, m.mean))
                })
                .collect();
            if !items.is_empty() {
                let p = plots_dir.join(file);
                plots::bars(&p, title, axis, &items)?;
                made.push(p);
            }
        }
        // Overlaid CDFs, one line per point, in the bars' colours.
        let (mut ttft, mut total) = (Vec::new(), Vec::new());
        for (label, members) in &groups {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for &i in members {
                let Ok(recs) = super::load_records(&found[i].1) else { continue };
                let ok = recs.iter().filter(|r| r.status == Status::Ok);
                a.extend(ok.clone().filter_map(|r| r.derived().ttft_total).map(|v| v * 1e3));
                b.extend(ok.filter_map(|r| r.derived().total_latency).map(|v| v * 1e3));
            }
            ttft.push((label.clone(), a));
            total.push((label.clone(), b));
        }
        let p = plots_dir.join("ttft_total_cdf.svg");
        plots::cdf(&p, "Time to first token from arrival (ttft_total)", "milliseconds", &ttft, scale)?;
        made.push(p);
        let p = plots_dir.join("total_latency_cdf.svg");
        plots::cdf(&p, "Total latency (arrival to finish)", "milliseconds", &total, scale)?;
        made.push(p);
    }

    let stamp = base.file_name().and_then(|n| n.to_str()).unwrap_or("sweep");
    let experiment_name = summaries.iter().flatten().next().map(|s| s.experiment.clone());
    let name = match &experiment_name {
        Some(e) => format!("{e} ({stamp})"),
        None => stamp.to_owned(),
    };
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sglab sweep: {}</title><style>{STYLE}</style></head><body>",
        esc(&name)
    );
    let _ = write!(
        h,
        "<h1>sglab sweep: {}</h1><p>{} points · {}</p>",
        esc(&name),
        found.len(),
        esc(&base.display().to_string())
    );
    // What the points share: the first point's description, with the swept keys named.
    if let (Some((_, dir)), Some(Some(s))) = (found.first(), summaries.first())
        && let Some(exp) = experiment(dir)
    {
        let mut rows = crate::describe::rows(&exp, s);
        rows.retain(|(k, _)| *k != "degraded");
        rows.insert(0, ("varies", keys.join(", ")));
        let _ = write!(h, "<h2>What ran (point 0; the varied keys differ per point)</h2>{}", what_table(&rows));
    }
    h.push_str("<h2>Points</h2><table><tr><th>point</th><th>varied</th><th>status</th>");
    for (c, ..) in COLUMNS {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("<th>degraded</th><th>report</th></tr>");
    for (((p, dir), label), s) in found.iter().zip(&labels).zip(&summaries) {
        let status = s.as_ref().map_or("missing", |s| s.status.as_str());
        let _ = write!(h, "<tr><td>{}</td><td class=\"label\">{}</td><td>{status}</td>", p.point, esc(label));
        for (_, metric, scale, decimals) in COLUMNS {
            let v = s.as_ref().and_then(|s| metric(&s.metrics));
            let _ = write!(h, "<td>{}</td>", v.map_or("-".into(), |v| format!("{:.*}", *decimals, v * scale)));
        }
        let degraded = s.as_ref().map_or("-".to_owned(), crate::describe::degraded);
        let class = if degraded.starts_with("YES") { " class=\"bad\"" } else { "" };
        let rel = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let link = if dir.join("report.html").is_file() {
            format!("<a href=\"{}/report.html\">report</a>", esc(rel))
        } else {
            "-".into()
        };
        let _ = write!(h, "<td{class}>{}</td><td>{link}</td></tr>", esc(&degraded));
    }
    h.push_str("</table>");
    if repeated {
        h.push_str("<h2>Repeats: mean ± 95 % confidence interval</h2><p>Student's t interval over each point's repeats (seeds seed, seed+1, ...); also in repeats.csv.</p><table><tr><th>point</th><th>repeats</th>");
        for (c, ..) in COLUMNS {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr>");
        for (label, members) in &groups {
            let have: Vec<_> = members.iter().filter_map(|&i| summaries[i].as_ref()).collect();
            let _ = write!(h, "<tr><td class=\"label\">{}</td><td>{}</td>", esc(label), have.len());
            for (_, metric, scale, decimals) in COLUMNS {
                let cell = metric_ci(have.iter().copied(), *metric, *scale)
                    .map_or("-".into(), |r| format!("{:.*} ± {:.*}", *decimals, r.mean, *decimals, r.ci95));
                let _ = write!(h, "<td>{cell}</td>");
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Plots</h2><p>Each plot is also written as PNG (2x) beside its SVG.</p>");
    for p in &made {
        let svg = std::fs::read_to_string(p)?;
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let _ = write!(h, "<div class=\"plot\" id=\"{name}\">{svg}</div>");
    }
    h.push_str("</body></html>\n");
    let out = base.join("report.html");
    crate::results::write_atomic(&out, h.as_bytes())?;
    Ok(out)
}
