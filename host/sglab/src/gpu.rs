//! GPU truth for local nodes: polls `nvidia-smi` at the server-metrics
//! interval into `gpu_metrics.csv` (time, GPU index, utilization, memory),
//! when some node runs on this host and the command exists. A missing
//! command is noted once and never fails the run. `SGLAB_NVIDIA_SMI`
//! names another command (tests use a stand-in that prints the same CSV).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::plugin::RunClock;
use crate::poller::{Poller, csv_file};

/// The CSV header of `gpu_metrics.csv`.
pub const HEADER: &str = "time,gpu,utilization_pct,memory_used_mib,memory_total_mib";

/// The query sglab runs.
pub const QUERY: [&str; 2] =
    ["--query-gpu=index,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"];

/// (GPU index, [utilization %, memory used MiB, memory total MiB]).
pub type GpuRow = (u32, [Option<f64>; 3]);

/// One GPU's row of `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`:
/// (index, utilization %, memory used MiB, memory total MiB). Values nvidia-smi
/// cannot read (`[N/A]`, `[Not Supported]`) are `None`.
pub fn parse(text: &str) -> Result<Vec<GpuRow>, String> {
    let mut gpus = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [index, util, used, total] = f[..] else {
            return Err(format!("expected 4 fields, got {}: {line:?}", f.len()));
        };
        let index = index.parse().map_err(|_| format!("bad GPU index {index:?} in {line:?}"))?;
        let num = |v: &str| v.parse::<f64>().ok();
        gpus.push((index, [num(util), num(used), num(total)]));
    }
    Ok(gpus)
}

/// True when `url` points at this host.
pub fn is_local(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    if rest.starts_with("[::1]") {
        return true;
    }
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host == "0.0.0.0" || host.starts_with("127.")
}

/// Starts polling into `path` every `interval`, or returns `None` (after
/// noting why) when the command is not there.
pub fn start(path: &Path, interval: Duration, clock: RunClock) -> anyhow::Result<Option<Poller>> {
    let cmd = std::env::var("SGLAB_NVIDIA_SMI").unwrap_or_else(|_| "nvidia-smi".into());
    let probe = std::process::Command::new(&cmd).args(QUERY).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            tracing::info!("{cmd} failed ({}); no GPU metrics", o.status);
            return Ok(None);
        }
        Err(e) => {
            tracing::info!("{cmd} not available ({e}); no GPU metrics");
            return Ok(None);
        }
    }
    let mut file = csv_file(path, HEADER)?;
    Ok(Some(Poller::spawn(interval, |mut ticks| async move {
        let mut rows = 0u64;
        while ticks.next().await {
            let run = tokio::process::Command::new(&cmd).args(QUERY).kill_on_drop(true).output();
            let parsed = match tokio::time::timeout(Duration::from_secs(5), run).await {
                Ok(Ok(o)) if o.status.success() => parse(&String::from_utf8_lossy(&o.stdout)),
                Ok(Ok(o)) => Err(format!("exited with {}", o.status)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer in 5 s".into()),
            };
            let t = sglab_core::secs(clock.now_ns());
            match parsed {
                Ok(gpus) => {
                    for (gpu, v) in gpus {
                        let cell = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
                        writeln!(file, "{t},{gpu},{},{},{}", cell(v[0]), cell(v[1]), cell(v[2]))?;
                        rows += 1;
                    }
                    file.flush()?;
                }
                Err(e) => {
                    tracing::info!("{cmd}: {e}; GPU metrics stop here");
                    break;
                }
            }
        }
        file.flush()?;
        Ok(rows)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let text = "0, 87, 61234, 81559\n1, [N/A], 10, 81559\n\n";
        assert_eq!(
            parse(text).unwrap(),
            [(0, [Some(87.0), Some(61234.0), Some(81559.0)]), (1, [None, Some(10.0), Some(81559.0)])]
        );
        assert!(parse("0, 1, 2").unwrap_err().contains("expected 4 fields"));
        assert!(parse("x, 1, 2, 3").unwrap_err().contains("bad GPU index"));
    }

    #[test]
    fn local_urls() {
        for u in ["http://127.0.0.1:30000", "http://localhost:1", "http://127.0.1.1/x", "http://[::1]:80"] {
            assert!(is_local(u), "{u}");
        }
        for u in ["http://10.0.0.2:30000", "http://gpu-node-3:8000"] {
            assert!(!is_local(u), "{u}");
        }
    }
}
