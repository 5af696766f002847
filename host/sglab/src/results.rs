//! The results directory of a run: `config.toml`, `requests.csv` (streamed
//! as requests finish), `summary.json`, `logs/`, and the stdout table.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use sglab_core::record::{CSV_HEADER, RequestRecord};
use sglab_core::stats::{Dist, Summary};

/// Creates `<root>/<name>/<stamp>/` (with a `-2`, `-3`... suffix if taken)
/// and its `logs/`.
pub fn create_dir(root: &Path, name: &str, stamp: &str) -> anyhow::Result<PathBuf> {
    let parent = root.join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    for n in 1.. {
        let dir = if n == 1 { parent.join(stamp) } else { parent.join(format!("{stamp}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::create_dir(dir.join("logs"))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    unreachable!("the loop returns")
}

/// Writes records to `requests.csv` on its own thread, flushing whenever it
/// has caught up, and hands all records back at the end.
pub struct RecordWriter {
    tx: mpsc::Sender<RequestRecord>,
    thread: JoinHandle<anyhow::Result<Vec<RequestRecord>>>,
}

impl RecordWriter {
    /// Opens `path` and writes the header.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{CSV_HEADER}")?;
        out.flush()?;
        let (tx, rx) = mpsc::channel::<RequestRecord>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new().name("sglab-records".into()).spawn(move || {
            let mut all = Vec::new();
            let mut line = String::new();
            let mut next = rx.recv().ok();
            while let Some(rec) = next {
                line.clear();
                rec.write_csv(&mut line);
                out.write_all(line.as_bytes()).with_context(|| format!("writing {shown}"))?;
                all.push(rec);
                next = match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(_) => {
                        out.flush().with_context(|| format!("writing {shown}"))?;
                        rx.recv().ok()
                    }
                };
            }
            out.flush()?;
            Ok(all)
        })?;
        Ok(Self { tx, thread })
    }

    /// A sender for records.
    pub fn sender(&self) -> mpsc::Sender<RequestRecord> {
        self.tx.clone()
    }

    /// Waits for every sent record to be written; returns them in write order.
    pub fn finish(self) -> anyhow::Result<Vec<RequestRecord>> {
        drop(self.tx);
        self.thread.join().map_err(|_| anyhow::anyhow!("record writer panicked"))?
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v * 1e3)).unwrap_or_else(|| "-".into())
}

/// The short summary table printed to stdout.
pub fn table(s: &Summary) -> String {
    let c = &s.requests;
    let mut out = format!(
        "requests   {} total: {} ok, {} error, {} rejected, {} cancelled\n\
         duration   {:.3} s\n\
         throughput {:.2} req/s, {:.1} input tok/s, {:.1} output tok/s\n\
         concurrency {:.2} mean in flight\n\n",
        c.total,
        c.ok,
        c.error,
        c.rejected,
        c.cancelled,
        s.duration_s,
        s.request_throughput,
        s.input_token_throughput,
        s.output_token_throughput,
        s.mean_concurrency
    );
    out.push_str(&format!("{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "(ms)", "mean", "p50", "p90", "p99", "max"));
    let rows: [(&str, &Option<Dist>); 5] = [
        ("ttft", &s.ttft),
        ("tpot", &s.tpot),
        ("server_latency", &s.server_latency),
        ("total_latency", &s.total_latency),
        ("queue_time", &s.queue_time),
    ];
    for (name, d) in rows {
        let d = d.as_ref();
        out.push_str(&format!(
            "{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            name,
            ms(d.map(|d| d.mean)),
            ms(d.map(|d| d.p50)),
            ms(d.map(|d| d.p90)),
            ms(d.map(|d| d.p99)),
            ms(d.map(|d| d.max)),
        ));
    }
    out
}
