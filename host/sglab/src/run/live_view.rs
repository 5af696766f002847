//! The live view of a real-time run, on stderr (stdout stays for reports).
//! On a terminal: an indicatif progress bar with the run's figures under
//! it (done, in flight, queued, errors; rolling req/s, tok/s, TTFT and ITL
//! p50/p99) and one line per node. Not on a terminal (a log file, CI): a
//! plain line every [`PLAIN_EVERY_NS`], with no escape codes. `--quiet`:
//! nothing. The figures come from [`sglab_core::live::Rolling`].

use std::io::IsTerminal as _;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sglab_core::Nanos;
use sglab_core::live::{LiveStats, Rolling};
use sglab_core::record::RequestRecord;

/// The rolling window of the figures.
const WINDOW_NS: Nanos = 10_000_000_000;
/// How often the terminal view redraws.
const DRAW_EVERY_NS: Nanos = 250_000_000;
/// How often a plain line is written when stderr is not a terminal.
pub const PLAIN_EVERY_NS: Nanos = 5_000_000_000;
/// Most nodes that get a line of their own.
const MAX_NODE_LINES: usize = 8;

enum Out {
    Hidden,
    Terminal { bar: ProgressBar, figures: ProgressBar, nodes: Vec<ProgressBar>, _multi: MultiProgress },
    Plain,
}

/// The live view of one run.
pub struct LiveView {
    rolling: Rolling,
    out: Out,
    total: usize,
    names: Vec<String>,
    next_draw: Nanos,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") })
}

impl LiveView {
    /// A view of `total` requests over the named nodes.
    pub fn new(quiet: bool, total: usize, names: Vec<String>) -> Self {
        let out = if quiet {
            Out::Hidden
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = multi.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {pos}/{len} requests [{elapsed_precise}] {wide_bar} eta {eta}")
                    .expect("valid template"),
            );
            // `wide_msg` cuts a line at the terminal's width rather than wrapping it.
            let line = || ProgressStyle::with_template("  {wide_msg}").expect("valid template");
            let figures = multi.add(ProgressBar::new(1).with_style(line()));
            let nodes = (0..names.len().min(MAX_NODE_LINES))
                .map(|_| multi.add(ProgressBar::new(1).with_style(line())))
                .collect();
            Out::Terminal { bar, figures, nodes, _multi: multi }
        } else {
            Out::Plain
        };
        let nodes = names.len();
        // Plain lines start one interval in: a short run prints none.
        let next_draw = if matches!(out, Out::Plain) { PLAIN_EVERY_NS } else { 0 };
        Self { rolling: Rolling::new(WINDOW_NS, nodes), out, total, names, next_draw }
    }

    /// Counts a finished request.
    pub fn record(&mut self, rec: &RequestRecord) {
        self.rolling.record(rec);
        if let Out::Terminal { bar, .. } = &self.out {
            bar.inc(1);
        }
    }

    /// When the view next wants to draw (the driver wakes for it).
    pub fn next_draw(&self) -> Option<Nanos> {
        (!matches!(self.out, Out::Hidden)).then_some(self.next_draw)
    }

    /// Redraws if it is time (`now` since the run start).
    pub fn refresh(&mut self, now: Nanos, queued: usize, in_flight: &[u32]) {
        if matches!(self.out, Out::Hidden) || now < self.next_draw {
            return;
        }
        let s = self.rolling.stats(now, 0, in_flight);
        let flying: u32 = in_flight.iter().sum();
        let line = figures(&s, flying, queued);
        match &self.out {
            Out::Terminal { figures, nodes, .. } => {
                figures.set_message(line);
                for (i, (bar, n)) in nodes.iter().zip(&s.nodes).enumerate() {
                    bar.set_message(format!(
                        "{:<12} {} done, {} in flight, {} errors, ttft p50 {} ms",
                        self.names[i],
                        n.done,
                        n.in_flight,
                        n.errors,
                        ms(n.ttft_p50_ms)
                    ));
                }
                self.next_draw = now + DRAW_EVERY_NS;
            }
            Out::Plain => {
                eprintln!("[{:>7.1} s] {}/{} done, {line}", now as f64 / 1e9, s.done, self.total);
                self.next_draw = now + PLAIN_EVERY_NS;
            }
            Out::Hidden => {}
        }
    }

    /// Clears the terminal view.
    pub fn finish(&self) {
        if let Out::Terminal { bar, figures, nodes, .. } = &self.out {
            for b in nodes {
                b.finish_and_clear();
            }
            figures.finish_and_clear();
            bar.finish_and_clear();
        }
    }
}

/// The figures line: counts, then the window's rates and percentiles.
fn figures(s: &LiveStats, in_flight: u32, queued: usize) -> String {
    format!(
        "{in_flight} in flight, {queued} queued, {} errors | last 10 s: {:.1} req/s, {:.0} tok/s, ttft p50 {} / p99 {} ms, itl p50 {} / p99 {} ms",
        s.errors,
        s.req_s,
        s.tok_s,
        ms(s.ttft_p50_ms),
        ms(s.ttft_p99_ms),
        ms(s.itl_p50_ms),
        ms(s.itl_p99_ms)
    )
}
