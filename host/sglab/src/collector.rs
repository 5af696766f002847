//! Server-side truth: polls every node's `/v1/loads` (SGLang's load
//! snapshot, no scheduler round-trip) at a fixed interval during the run and
//! writes `server_metrics.csv`. A node without the endpoint is noted once
//! and skipped; it never fails the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::plugin::RunClock;

/// The CSV header of `server_metrics.csv`.
pub const HEADER: &str = "node,time,num_running_reqs,num_queue_reqs,token_usage,cache_hit_rate,gen_throughput,num_used_tokens,max_total_num_tokens";

const FIELDS: [&str; 7] = [
    "num_running_reqs",
    "num_waiting_reqs",
    "token_usage",
    "cache_hit_rate",
    "gen_throughput",
    "num_used_tokens",
    "max_total_num_tokens",
];

/// A running collector; stop it to flush the file.
pub struct Collector {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<u64>>,
}

impl Collector {
    /// Starts polling `nodes` every `interval` into `path`.
    pub fn start(path: &Path, nodes: Vec<String>, interval: Duration, clock: RunClock) -> anyhow::Result<Self> {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(file, "{HEADER}")?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            let mut missing = vec![false; nodes.len()];
            let mut rows = 0u64;
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                for (i, base) in nodes.iter().enumerate() {
                    if missing[i] {
                        continue;
                    }
                    let url = format!("{base}/v1/loads");
                    let got = async {
                        let resp = tokio::time::timeout(Duration::from_secs(2), client.get(url.parse()?)).await??;
                        anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
                        let body = resp.into_body().collect().await?.to_bytes();
                        Ok(serde_json::from_slice::<Value>(&body)?)
                    }
                    .await;
                    let t = sglab_core::secs(clock.now_ns());
                    match got {
                        Ok(v) => {
                            let load = v.pointer("/loads/0").cloned().unwrap_or(Value::Null);
                            let mut line = format!("{i},{t}");
                            for f in FIELDS {
                                let _ = write!(line, ",{}", load.get(f).map(|x| x.to_string()).unwrap_or_default());
                            }
                            writeln!(file, "{line}")?;
                            rows += 1;
                        }
                        Err(e) => {
                            tracing::warn!(
                                "node {i} ({url}) gives no load snapshot ({e:#}); not collecting its server metrics"
                            );
                            missing[i] = true;
                        }
                    }
                }
                file.flush()?;
            }
            file.flush()?;
            Ok(rows)
        });
        Ok(Self { stop, task })
    }

    /// Stops polling; returns the rows written.
    pub async fn finish(self) -> anyhow::Result<u64> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}
