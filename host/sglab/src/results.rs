//! The results directory of a run: `config.toml`, `requests.csv` (streamed
//! as requests finish), `summary.json`, `logs/`, and the stdout table.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use sglab_core::record::{CSV_HEADER, RequestRecord, Status};
use sglab_core::stats::{Dist, Summary, TokenStats};

/// Creates `<parent>/<stamp>/` (with a `-2`, `-3`... suffix if taken) and
/// its `logs/`, where `parent` is `<output_dir>/<experiment name>`.
pub fn create_dir(parent: &Path, stamp: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
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

/// Writes `bytes` to `path` whole or not at all: to a temporary name in the
/// same directory, then renamed over `path` (a full disk or a crash never
/// leaves half a file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Writes records to `requests.csv` on its own thread, and hands all
/// records back at the end — without their token events, which are folded
/// into [`TokenStats`] as each record is written (so a run holds about 200
/// bytes per request plus 8 per token, not 16 per token event).
///
/// Rows are written whole: the rows that are waiting go out in one write
/// whenever the writer has caught up. When a write fails (a full disk), the
/// file is cut back to its last whole row, `on_error` is told at once (the
/// run stops), and nothing more is written.
pub struct RecordWriter {
    tx: mpsc::Sender<Vec<RequestRecord>>,
    thread: JoinHandle<anyhow::Result<(Vec<RequestRecord>, TokenStats)>>,
}

impl RecordWriter {
    /// Opens `path` and writes the header; with `tokens`, also writes every
    /// token event to that file (`req_id,time,tokens`). `expected` is the
    /// number of records the run will make.
    pub fn create(
        path: &Path,
        tokens: Option<&Path>,
        expected: usize,
        on_error: Box<dyn Fn(String) + Send>,
    ) -> anyhow::Result<Self> {
        let mut out = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let header = format!("{CSV_HEADER}\n");
        out.write_all(header.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        let mut good = header.len() as u64;
        let mut tok_out = match tokens {
            Some(p) => {
                let mut w = BufWriter::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?);
                writeln!(w, "req_id,time,tokens")?;
                Some(w)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Vec<RequestRecord>>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new().name("sglab-records".into()).spawn(move || {
            // Reserved once: grown by doubling, the records (208 bytes
            // each) were copied at every step and the freed blocks kept
            // the process's peak memory well above what it holds.
            let mut all = Vec::with_capacity(expected);
            let mut stats = TokenStats::default();
            let mut batch: Vec<u8> = Vec::new();
            let mut failed: Option<anyhow::Error> = None;
            let mut told = false;
            let mut itl = Vec::new();
            // Records come in bursts: one wake-up of this thread per burst.
            let mut next = rx.recv().ok();
            while let Some(burst) = next {
                for mut rec in burst {
                    // One pass over the token events serves the row and the pool.
                    let row = stats.add_with_row(&rec, &mut itl);
                    if failed.is_none() {
                        rec.write_csv_row(&mut batch, row);
                        if let Some(w) = &mut tok_out {
                            let mut t = Ok(());
                            for &(at, n) in &rec.token_times {
                                t = t.and(writeln!(w, "{},{},{n}", rec.id, sglab_core::secs(at)));
                            }
                            if let Err(e) = t {
                                failed = Some(anyhow::Error::new(e).context("writing tokens.csv"));
                            }
                        }
                    }
                    rec.token_times = Vec::new();
                    all.push(rec);
                }
                next = match rx.try_recv() {
                    Ok(b) if batch.len() < 1 << 20 => Some(b),
                    got => {
                        // The writer has caught up (or a megabyte piled
                        // up): the rows waiting go out in one write.
                        if failed.is_none() && !batch.is_empty() {
                            match out.write_all(&batch) {
                                Ok(()) => good += batch.len() as u64,
                                Err(e) => {
                                    // No torn row: back to the last whole one.
                                    let _ = out.set_len(good);
                                    failed = Some(anyhow::Error::new(e).context(format!("writing {shown}")));
                                }
                            }
                            batch.clear();
                        }
                        if let Some(e) = failed.as_ref().filter(|_| !told) {
                            told = true;
                            on_error(format!("{e:#}"));
                        }
                        match got {
                            Ok(b) => Some(b),
                            Err(_) => rx.recv().ok(),
                        }
                    }
                };
            }
            if let Some(w) = tok_out.as_mut().filter(|_| failed.is_none())
                && let Err(e) = w.flush()
            {
                failed = Some(anyhow::Error::new(e).context("writing tokens.csv"));
            }
            match failed {
                Some(e) => Err(e),
                None => Ok((all, stats)),
            }
        })?;
        Ok(Self { tx, thread })
    }

    /// A sender for records, sent in bursts (one or more at a time).
    pub fn sender(&self) -> mpsc::Sender<Vec<RequestRecord>> {
        self.tx.clone()
    }

    /// Waits for every sent record to be written; returns them in write
    /// order (token events dropped) and their token statistics.
    pub fn finish(self) -> anyhow::Result<(Vec<RequestRecord>, TokenStats)> {
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
         throughput {:.2} req/s, {:.1} input tok/s, {:.1} output tok/s (peak {:.0} tok/s over 1 s)\n\
         concurrency {:.2} mean in flight, {} max; client queue {:.2} mean, {} max\n",
        c.total,
        c.ok,
        c.error,
        c.rejected,
        c.cancelled,
        s.duration_s,
        s.request_throughput,
        s.input_token_throughput,
        s.output_token_throughput,
        s.peak_output_token_throughput,
        s.mean_concurrency,
        s.max_concurrency,
        s.mean_queue_depth,
        s.max_queue_depth
    );
    if let Some(h) = s.prefix_cache_hit_rate {
        out.push_str(&format!("prefix cache {:.1} % of prompt tokens were cached (server-reported)\n", h * 100.0));
    }
    let t = &s.tokens;
    if t.output_length_mismatch > 0 {
        out.push_str(&format!(
            "warning    {} of {} ok requests got a different output length than requested \
             (mean ratio {:.3}; see finish_reason in requests.csv)\n",
            t.output_length_mismatch,
            c.ok,
            t.output_length_ratio_mean.unwrap_or(0.0)
        ));
    }
    if let Some(n) = t.input_count_disagree.filter(|n| *n > 0) {
        out.push_str(&format!(
            "note       {n} of {} ok requests: the server counted a different prompt length than the client\n",
            c.ok
        ));
    }
    if let Some(slo) = &s.slo {
        out.push_str(&format!(
            "slo        {} of {} sent met it ({:.1} %), goodput {:.2} req/s\n",
            slo.met,
            c.total - c.cancelled - c.rejected,
            slo.attainment * 100.0,
            slo.goodput
        ));
    }
    out.push('\n');
    out.push_str(&format!("{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "(ms)", "mean", "p50", "p90", "p99", "max"));
    let rows: [(&str, &Option<Dist>); 7] = [
        ("ttft", &s.ttft),
        ("ttft_total", &s.ttft_total),
        ("tpot", &s.tpot),
        ("itl", &s.itl),
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

/// A file written under a temporary name and renamed into place by
/// [`Staged::commit`]: dropped uncommitted (an error), it leaves nothing.
struct Staged {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self { out: BufWriter::new(file), tmp, path: path.to_owned() })
    }

    fn commit(mut self) -> anyhow::Result<()> {
        self.out.flush().with_context(|| format!("writing {}", self.path.display()))?;
        std::fs::rename(&self.tmp, &self.path).with_context(|| format!("writing {}", self.path.display()))
    }
}

impl std::io::Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes `throughput_1s.csv`: per 1-second bin from the run start, the
/// output tokens that arrived in it (the bins whose largest is the
/// summary's `peak_output_token_throughput`) and the requests that
/// finished ok in it. The report's throughput plots read it, so the plot
/// and the summary define the peak alike.
pub fn write_throughput(dir: &Path, tokens_per_second: &[u64], records: &[RequestRecord]) -> anyhow::Result<()> {
    let mut finished: Vec<u64> = Vec::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        if let Some(f) = r.finish {
            let bin = (f / 1_000_000_000) as usize;
            if finished.len() <= bin {
                finished.resize(bin + 1, 0);
            }
            finished[bin] += 1;
        }
    }
    let mut out = String::from("second,output_tokens,finished_requests\n");
    for b in 0..tokens_per_second.len().max(finished.len()) {
        let (t, f) = (tokens_per_second.get(b).copied().unwrap_or(0), finished.get(b).copied().unwrap_or(0));
        out.push_str(&format!("{b},{t},{f}\n"));
    }
    write_atomic(&dir.join("throughput_1s.csv"), out.as_bytes())
}

/// Writes `timeline.csv` (exact, one row per change) and
/// `timeline_<interval>s.csv` (time-averages per window).
pub fn write_timeline(
    dir: &Path,
    records: &[RequestRecord],
    nodes: usize,
    end: f64,
    interval: f64,
) -> anyhow::Result<()> {
    use sglab_core::timeline;
    let mut head = String::from("time,queued,running,prefill_waiting,decoding");
    for n in 0..nodes {
        head.push_str(&format!(",running_{n},prefill_waiting_{n},decoding_{n}"));
    }
    let mut out = Staged::create(&dir.join("timeline.csv"))?;
    writeln!(out, "{head}")?;
    // Rows are written as the sweep makes them, and folded into the windows.
    let mut windows = timeline::Resampler::new(nodes, end, interval);
    let mut written = Ok(());
    timeline::sweep(records, nodes, |r| {
        windows.push(r);
        if written.is_ok() {
            written = (|| {
                write!(out, "{},{},{},{},{}", r.t, r.queued, r.running, r.prefill_waiting, r.decoding)?;
                for n in &r.nodes {
                    write!(out, ",{},{},{}", n.0, n.1, n.2)?;
                }
                writeln!(out)
            })();
        }
    });
    written.context("writing timeline.csv")?;
    out.commit()?;
    let name = format!("timeline_{interval}s.csv");
    let mut out = Staged::create(&dir.join(&name))?;
    let mut head = String::from("time,queued,running,prefill_waiting,decoding");
    for n in 0..nodes {
        head.push_str(&format!(",running_{n}"));
    }
    writeln!(out, "{head}")?;
    for (t, v, per_node) in windows.finish() {
        write!(out, "{t},{},{},{},{}", v[0], v[1], v[2], v[3])?;
        for n in per_node {
            write!(out, ",{n}")?;
        }
        writeln!(out)?;
    }
    out.commit()
}
