//! Server-side truth: polls every node's `/v1/loads` (SGLang's load
//! snapshot, no scheduler round-trip) and `/metrics` (Prometheus text;
//! SGLang serves it with `--enable-metrics`; vLLM's and llama.cpp's names
//! are read too) at a fixed interval during the run and writes
//! `server_metrics.csv`, one row per node, time and source. An endpoint a
//! node lacks is noted once and skipped; it never fails the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use http::Method;
use serde_json::Value;

use sglab_core::policy::ServerSnapshot;

use crate::client::{self, Endpoint};
use crate::plugin::RunClock;
use crate::poller::{Poller, csv_file};

/// The CSV header of `server_metrics.csv`.
pub const HEADER: &str = "node,time,source,num_running_reqs,num_queue_reqs,token_usage,cache_hit_rate,gen_throughput,num_used_tokens,max_total_num_tokens";

/// `/v1/loads` field names, in HEADER order.
const LOAD_FIELDS: [&str; 7] = [
    "num_running_reqs",
    "num_waiting_reqs",
    "token_usage",
    "cache_hit_rate",
    "gen_throughput",
    "num_used_tokens",
    "max_total_num_tokens",
];
/// `/metrics` gauge names, in HEADER order: SGLang's, then vLLM's and
/// llama.cpp server's for the same quantity (the first one present counts).
const METRIC_FIELDS: [&[&str]; 7] = [
    &["sglang:num_running_reqs", "vllm:num_requests_running", "llamacpp:requests_processing"],
    &["sglang:num_queue_reqs", "vllm:num_requests_waiting", "llamacpp:requests_deferred"],
    &["sglang:token_usage", "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"],
    &["sglang:cache_hit_rate"],
    &["sglang:gen_throughput"],
    &["sglang:num_used_tokens", "llamacpp:kv_cache_tokens"],
    &["sglang:max_total_num_tokens"],
];

/// The value of the first sample of `metric` in a Prometheus text
/// exposition. (`prometheus-parse` 0.2.5 was tried and rejects the colons
/// that SGLang's names carry, which the format allows; the text format is
/// simple enough to read directly: `name{labels} value [timestamp]`.)
fn sample(text: &str, metric: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(metric)?;
        let rest = match rest.as_bytes().first() {
            Some(b'{') => &rest[rest.find('}')? + 1..],
            Some(b' ') | Some(b'\t') => rest,
            _ => return None,
        };
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The HEADER columns from a Prometheus text exposition.
pub fn from_prometheus(text: &str) -> Result<Vec<Option<f64>>, String> {
    let values: Vec<Option<f64>> =
        METRIC_FIELDS.iter().map(|names| names.iter().find_map(|m| sample(text, m))).collect();
    if values.iter().all(Option::is_none) {
        return Err("no sglang:, vllm: or llamacpp: gauges in the exposition".into());
    }
    Ok(values)
}

/// What a plugin sees of a node's report, from the HEADER columns.
pub fn snapshot(vals: &[Option<f64>], age_ns: u64) -> ServerSnapshot {
    let v = |i: usize| vals.get(i).copied().flatten().unwrap_or(0.0);
    ServerSnapshot {
        running: v(0) as u32,
        queued: v(1) as u32,
        kv_usage: v(2) as f32,
        cache_hit_rate: v(3) as f32,
        age_ns,
    }
}

/// Starts polling `nodes` every `interval` into `path`. Each node's report
/// also goes to `feed` (node index, snapshot), for the routing plugins:
/// `/v1/loads` where the node has it, else `/metrics`.
pub fn start(
    path: &Path,
    nodes: Vec<Endpoint>,
    interval: Duration,
    clock: RunClock,
    feed: impl Fn(usize, ServerSnapshot) + Send + 'static,
) -> anyhow::Result<Poller> {
    let mut file = csv_file(path, HEADER)?;
    Ok(Poller::spawn(interval, |mut ticks| async move {
        let http = client::http(nodes.len());
        let mut missing = vec![[false; 2]; nodes.len()];
        let mut rows = 0u64;
        while ticks.next().await {
            for (i, ep) in nodes.iter().enumerate() {
                for (k, path) in ["/v1/loads", "/metrics"].into_iter().enumerate() {
                    if missing[i][k] {
                        continue;
                    }
                    let url = format!("{}{path}", ep.base);
                    let asked = clock.now_ns();
                    let got = async {
                        let (status, body) = client::call(&http, ep, Method::GET, path, Duration::from_secs(2)).await?;
                        anyhow::ensure!(status.is_success(), "HTTP {status}");
                        Ok(body)
                    }
                    .await;
                    let t = sglab_core::secs(clock.now_ns());
                    let values: anyhow::Result<Vec<Option<f64>>> = got.and_then(|body| {
                        if k == 0 {
                            let v: Value = serde_json::from_slice(&body)?;
                            let load = v.pointer("/loads/0").cloned().unwrap_or(Value::Null);
                            Ok(LOAD_FIELDS.iter().map(|f| load.get(*f).and_then(Value::as_f64)).collect())
                        } else {
                            from_prometheus(&String::from_utf8_lossy(&body)).map_err(anyhow::Error::msg)
                        }
                    });
                    match values {
                        Ok(vals) => {
                            if k == 0 || missing[i][0] {
                                feed(i, snapshot(&vals, clock.now_ns().saturating_sub(asked)));
                            }
                            let mut line = format!("{i},{t},{}", ["loads", "metrics"][k]);
                            for v in vals {
                                line.push(',');
                                if let Some(v) = v {
                                    let _ = write!(line, "{v}");
                                }
                            }
                            writeln!(file, "{line}")?;
                            rows += 1;
                        }
                        Err(e) => {
                            tracing::info!("node {i}: no usable {url} ({e:#}); not collecting it");
                            missing[i][k] = true;
                        }
                    }
                }
            }
            file.flush()?;
        }
        file.flush()?;
        Ok(rows)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_come_from_prometheus_text() {
        let text = "# HELP sglang:num_running_reqs The number of running requests.\n# TYPE sglang:num_running_reqs gauge\n\
                    sglang:num_running_reqs{model_name=\"m\",engine_type=\"unified\"} 7\n\
                    # TYPE sglang:token_usage gauge\nsglang:token_usage{model_name=\"m\"} 0.25\n";
        let v = from_prometheus(text).unwrap();
        assert_eq!(v[0], Some(7.0));
        assert_eq!(v[2], Some(0.25));
        assert_eq!(v[1], None);
        // A longer name with the same prefix is a different metric.
        assert_eq!(
            sample("sglang:num_running_reqs_total 3\nsglang:num_running_reqs 4\n", "sglang:num_running_reqs"),
            Some(4.0)
        );
        assert!(from_prometheus("up 1\n").is_err());
        // vLLM and llama.cpp server name the same quantities their own way.
        let vllm = "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\nvllm:num_requests_waiting{model_name=\"m\"} 2.0\n\
                    vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n";
        assert_eq!(&from_prometheus(vllm).unwrap()[..3], [Some(3.0), Some(2.0), Some(0.5)]);
        let llama = "llamacpp:requests_processing 1\nllamacpp:requests_deferred 4\nllamacpp:kv_cache_tokens 96\n";
        let v = from_prometheus(llama).unwrap();
        assert_eq!((v[0], v[1], v[5]), (Some(1.0), Some(4.0), Some(96.0)));
    }
}
