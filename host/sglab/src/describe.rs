//! What a run was, as labelled rows: the stdout header above the table
//! and the "What ran" table of report.html are both these rows, so a
//! pasted table and a report say the same thing.

use sglab_core::config::{Dataset, Experiment, Launch, Process, RoutingMode};
use sglab_core::run_summary::{PluginInfo, RunSummary};

/// The name serde gives a config enum value (`closed-loop`, `sglang`).
pub fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "?".into())
}

/// A TOML table as one line (`{ batch_size = 8 }`), or "" when empty.
fn config_line(c: &serde_json::Map<String, serde_json::Value>) -> String {
    if c.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = c.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!(" {{ {} }}", inner.join(", "))
}

fn plugin(name: &str, config: &serde_json::Map<String, serde_json::Value>, info: Option<&PluginInfo>) -> String {
    let id =
        info.map(|i| format!(" {} (sha256 {})", i.version, &i.sha256[..i.sha256.len().min(12)])).unwrap_or_default();
    format!("{name}{id}{}", config_line(config))
}

/// The arrival process in a few words.
pub fn arrival(exp: &Experiment) -> String {
    let a = &exp.arrival;
    match a.process {
        Process::ClosedLoop => {
            let mut s = format!("closed-loop, {} users", a.concurrency);
            if a.think_time_s > 0.0 {
                s.push_str(&format!(", think {} s", a.think_time_s));
            }
            if a.ramp_up_s > 0.0 {
                s.push_str(&format!(", ramp-up {} s", a.ramp_up_s));
            }
            s
        }
        Process::Burst => "burst (all at t = 0)".into(),
        Process::Trace => format!("trace timestamps x {}", a.time_scale),
        Process::Gamma => format!("gamma {} req/s, burstiness {}", a.rate, a.burstiness),
        _ => format!("{} {} req/s", name_of(&a.process), a.rate),
    }
}

/// The workload in a few words (lengths in tokens).
pub fn workload(exp: &Experiment, requests: u64) -> String {
    let w = &exp.workload;
    let lens = |l: u32| {
        if w.range_ratio >= 1.0 {
            format!("{l}")
        } else {
            format!("{}..{l}", ((l as f64 * w.range_ratio).floor() as u32).max(1))
        }
    };
    let what = match w.dataset {
        Dataset::Random => format!("random, input {} / output {} tokens", lens(w.input_len), lens(w.output_len)),
        Dataset::SharedPrefix => format!(
            "shared-prefix, {} groups x {} prompts, system {} + question {} tokens, output {}",
            w.num_groups, w.prompts_per_group, w.system_prompt_len, w.question_len, w.output_len
        ),
        other => format!("{} {}", name_of(&other), w.path.as_deref().unwrap_or("")),
    };
    let stream = if w.stream { "streaming" } else { "not streaming" };
    format!("{what}; {requests} requests via {} ({stream})", name_of(&w.backend))
}

/// Every node group: kind, replicas and arguments.
pub fn nodes(exp: &Experiment) -> Vec<String> {
    exp.nodes
        .iter()
        .map(|n| {
            let kind = name_of(&n.kind());
            let count = if n.replicas > 1 { format!("{} x ", n.replicas) } else { String::new() };
            let target = match n.kind() {
                Launch::Url => n.url.clone().unwrap_or_default(),
                Launch::Command => n.command.join(" "),
                _ => n.model_path.clone().unwrap_or_default(),
            };
            let args = if n.args.is_empty() { String::new() } else { format!(" {}", n.args.join(" ")) };
            format!("{count}{kind} {target}{args}").trim_end().replace("  ", " ")
        })
        .collect()
}

/// The labelled rows describing a run (`exp` is its resolved config).
pub fn rows(exp: &Experiment, doc: &RunSummary) -> Vec<(&'static str, String)> {
    let info = doc.sglab.as_ref();
    let version = info.map_or("?".to_owned(), |i| i.version.clone());
    let commit = info.and_then(|i| i.commit.as_deref()).map(|c| format!(" (commit {c})")).unwrap_or_default();
    let mut rows = vec![
        ("sglab", format!("{version}{commit}")),
        ("experiment", format!("{} | {} clock | seed {}", doc.experiment, doc.clock.as_str(), doc.seed)),
        ("workload", workload(exp, doc.metrics.requests.total)),
        ("arrival", arrival(exp)),
        ("nodes", nodes(exp).join("; ")),
    ];
    let p = doc.plugins.as_ref();
    let b = &exp.batching;
    rows.push(("batching", plugin(&b.plugin, &b.config, p.map(|p| &p.batching))));
    let r = &exp.routing;
    rows.push((
        "routing",
        match r.mode {
            RoutingMode::Plugin => plugin(&r.plugin, &r.config, p.map(|p| &p.routing)),
            RoutingMode::SglangRouter => format!("sglang-router, policy {} {}", r.policy, r.router_args.join(" ")),
        }
        .trim_end()
        .to_owned(),
    ));
    let slo = &exp.slo;
    if slo.ttft_ms.is_some() || slo.tpot_ms.is_some() || slo.e2e_ms.is_some() {
        let f = |k: &str, v: Option<f64>| v.map(|v| format!("{k} <= {v} ms"));
        let parts: Vec<String> =
            [f("ttft", slo.ttft_ms), f("tpot", slo.tpot_ms), f("e2e", slo.e2e_ms)].into_iter().flatten().collect();
        rows.push(("slo", parts.join(", ")));
    }
    rows.push(("degraded", degraded(doc)));
    rows
}

/// "no", or "YES: " and why.
pub fn degraded(doc: &RunSummary) -> String {
    if !doc.degraded {
        return "no".into();
    }
    if doc.degraded_reasons.is_empty() { "YES".into() } else { format!("YES: {}", doc.degraded_reasons.join("; ")) }
}

/// The rows as aligned text lines (the stdout header).
pub fn text(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
}
