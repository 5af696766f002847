//! `report.html` of one run: what ran (the same rows as the stdout
//! header), every headline metric, latency percentiles, the nodes, the
//! plots and the resolved config, in one self-contained file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sglab_core::config::Experiment;
use sglab_core::run_summary::RunSummary;
use sglab_core::stats::Dist;

/// The page's style, shared with the sweep report.
pub const STYLE: &str = "body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}\
    table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
    th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}table.what td{text-align:left}\
    .plot{margin:12px 0}.plot svg{max-width:100%;height:auto}.bad{color:#b00;font-weight:bold}\
    pre{background:#f7f7f7;padding:8px;overflow:auto}td.label{text-align:left;min-width:16em}";

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}", x * 1e3)).unwrap_or_else(|| "-".into())
}

/// The run's resolved experiment (`config.toml`), if it reads.
pub fn experiment(dir: &Path) -> Option<Experiment> {
    toml::from_str(&std::fs::read_to_string(dir.join("config.toml")).ok()?).ok()
}

/// A two-column table of labelled rows.
pub fn what_table(rows: &[(&str, String)]) -> String {
    let mut h = String::from("<table class=\"what\">");
    for (k, v) in rows {
        let class = if *k == "degraded" && v != "no" { " class=\"bad\"" } else { "" };
        let _ = write!(h, "<tr><th>{}</th><td{class}>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>");
    h
}

/// The headline metrics as (label, value) cells.
pub fn headline(s: &RunSummary) -> Vec<(&'static str, String)> {
    let m = &s.metrics;
    let r = &m.requests;
    let mut out = vec![
        ("requests", r.total.to_string()),
        ("ok", r.ok.to_string()),
        ("error", r.error.to_string()),
        ("rejected", r.rejected.to_string()),
        ("cancelled", r.cancelled.to_string()),
        ("duration (s)", format!("{:.3}", m.duration_s)),
        ("req/s", format!("{:.2}", m.request_throughput)),
        ("input tok/s", format!("{:.1}", m.input_token_throughput)),
        ("output tok/s", format!("{:.1}", m.output_token_throughput)),
        ("peak output tok/s (1-s bin)", format!("{:.0}", m.peak_output_token_throughput)),
        ("mean in flight", format!("{:.2}", m.mean_concurrency)),
        ("max in flight", m.max_concurrency.to_string()),
        ("prefix cache hit rate", m.prefix_cache_hit_rate.map_or("-".into(), |h| format!("{:.1} %", h * 100.0))),
    ];
    match &m.slo {
        Some(slo) => {
            out.push(("SLO attainment", format!("{:.1} % ({} met)", slo.attainment * 100.0, slo.met)));
            out.push(("goodput (req/s)", format!("{:.2}", slo.goodput)));
        }
        None => out.push(("SLO attainment", "no [slo] set".into())),
    }
    out
}

pub fn write(dir: &Path, s: &RunSummary, plots: &[PathBuf]) -> anyhow::Result<()> {
    let m = &s.metrics;
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sglab report: {}</title><style>{STYLE}</style></head><body>",
        esc(&s.experiment)
    );
    let _ = write!(
        h,
        "<h1>sglab: {}</h1><p>started {} · status <b>{}</b>{} · {}</p>",
        esc(&s.experiment),
        esc(s.host.started_at.as_deref().unwrap_or("")),
        s.status.as_str(),
        s.stop_reason.as_deref().map(|r| format!(" ({})", esc(r))).unwrap_or_default(),
        esc(&dir.display().to_string()),
    );
    let rows = match experiment(dir) {
        Some(exp) => crate::describe::rows(&exp, s),
        None => vec![("config.toml", "missing or unreadable".to_owned()), ("degraded", crate::describe::degraded(s))],
    };
    let _ = write!(h, "<h2>What ran</h2>{}", what_table(&rows));
    h.push_str("<h2>Summary</h2><table><tr>");
    let cells = headline(s);
    for (k, _) in &cells {
        let _ = write!(h, "<th>{}</th>", esc(k));
    }
    h.push_str("</tr><tr>");
    for (_, v) in &cells {
        let _ = write!(h, "<td>{}</td>", esc(v));
    }
    h.push_str("</tr></table>");
    if !m.errors_by_kind.is_empty() {
        h.push_str("<p>errors by kind: ");
        let kinds: Vec<String> = m.errors_by_kind.iter().map(|(k, n)| format!("{} {n}", esc(k))).collect();
        h.push_str(&kinds.join(", "));
        h.push_str("</p>");
    }
    h.push_str("<h2>Latency (ms)</h2><table><tr><th>metric</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th></tr>");
    let dists = [
        ("ttft_total (from arrival)", &m.ttft_total),
        ("ttft (from sending)", &m.ttft),
        ("tpot (per request)", &m.tpot),
        ("itl (per token)", &m.itl),
        ("server_latency", &m.server_latency),
        ("total_latency", &m.total_latency),
        ("queue_time (client)", &m.queue_time),
    ];
    for (k, d) in dists {
        let f = |pick: fn(&Dist) -> f64| ms(d.as_ref().map(pick));
        let _ = write!(
            h,
            "<tr><td>{k}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f(|d| d.mean),
            f(|d| d.p50),
            f(|d| d.p90),
            f(|d| d.p95),
            f(|d| d.p99),
            f(|d| d.max)
        );
    }
    h.push_str("</table><h2>Nodes</h2><table><tr><th>node</th><th>kind</th><th>engine</th><th>url</th><th>startup (s)</th><th>requests</th><th>ok</th><th>error</th><th>output tokens</th><th>mean ttft (ms)</th><th>mean server latency (ms)</th></tr>");
    for n in &m.nodes {
        let info = s.nodes.get(n.node as usize);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&info.map_or_else(|| n.node.to_string(), |i| i.name.clone())),
            esc(&info.map_or_else(String::new, |i| match &i.profile {
                Some(p) => format!("{} ({p})", i.kind),
                None => i.kind.clone(),
            })),
            esc(info.and_then(|i| i.engine_version.as_deref()).unwrap_or("-")),
            esc(info.and_then(|i| i.url.as_deref()).unwrap_or("")),
            info.and_then(|i| i.startup_s).map_or("-".into(), |t| format!("{t:.2}")),
            n.requests,
            n.ok,
            n.error,
            n.output_tokens,
            ms(n.mean_ttft),
            ms(n.mean_server_latency)
        );
    }
    h.push_str("</table><h2>Plots</h2><p>Each plot is also in plots/ as SVG and as PNG (2x).</p>");
    for p in plots {
        let svg = std::fs::read_to_string(p)?;
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let _ = write!(h, "<div class=\"plot\" id=\"{name}\">{svg}</div>");
    }
    if let Ok(cfg) = std::fs::read_to_string(dir.join("config.toml")) {
        let _ = write!(h, "<details><summary>config.toml (resolved)</summary><pre>{}</pre></details>", esc(&cfg));
    }
    h.push_str("</body></html>\n");
    crate::results::write_atomic(&dir.join("report.html"), h.as_bytes())
}
