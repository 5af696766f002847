//! The exact timeline of a run, from the level-1 timestamps alone.
//!
//! With a = arrival, s = to_server, f = first token and e = finish time of
//! each request, and N nodes:
//!
//! ```text
//! queued(t)          = #{a <= t < s}
//! running(t)         = #{s <= t < e}      (in flight, per node too)
//! prefill_waiting(t) = #{s <= t < f}      (f = e when no token came)
//! decoding(t)        = #{f <= t < e}
//! ```
//!
//! Each is a step function, exact between its change points. Requests that
//! were never sent contribute only while queued, and only when their queue
//! time ended (it did not for requests cancelled before sending, which are
//! left out). The time-average of running(t) over [0, T] equals
//! Σ server_latency / T (Little's law) — `stats::Summary::mean_concurrency`
//! computes the same quantity from the records directly.

use crate::record::RequestRecord;
use crate::secs;

/// One change point of the timeline: the values hold from `t` until the
/// next row's `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Seconds since the run start.
    pub t: f64,
    /// Requests in the client queue.
    pub queued: u32,
    /// Requests in flight (total).
    pub running: u32,
    /// In flight, waiting for their first token.
    pub prefill_waiting: u32,
    /// In flight, past their first token.
    pub decoding: u32,
    /// Per node: (running, prefill_waiting, decoding).
    pub nodes: Vec<(u32, u32, u32)>,
}

#[derive(Clone, Copy)]
struct Change {
    t: f64,
    node: u32,
    kind: Kind,
    up: bool,
}

/// `Change::node` of a change that belongs to no node.
const NO_NODE: u32 = u32::MAX;

#[derive(Clone, Copy)]
enum Kind {
    Queued,
    Waiting,
    Decoding,
}

/// The exact step functions, one row per distinct change time (ascending).
pub fn exact(records: &[RequestRecord], node_count: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    sweep(records, node_count, |r| rows.push(r.clone()));
    rows
}

/// Calls `row` with each row of [`exact`] in order, without holding them.
pub fn sweep(records: &[RequestRecord], node_count: usize, mut row: impl FnMut(&Row)) {
    // 16 bytes per change point (six per request): at 100,000 requests this
    // is most of the summary phase's memory, so the node and the step are
    // packed and the sort needs no scratch buffer (the order among equal
    // times does not matter: a row is emitted only after all of them).
    let mut ev: Vec<Change> = Vec::with_capacity(records.len() * 6);
    for r in records {
        let (Some(a), Some(s)) = (r.arrival.map(secs), r.to_server.map(secs)) else { continue };
        let node = r.node.unwrap_or(NO_NODE);
        ev.push(Change { t: a, node: NO_NODE, kind: Kind::Queued, up: true });
        ev.push(Change { t: s, node: NO_NODE, kind: Kind::Queued, up: false });
        let Some(e) = r.finish.map(secs) else { continue };
        let f = r.first_token.map(secs).unwrap_or(e);
        ev.push(Change { t: s, node, kind: Kind::Waiting, up: true });
        ev.push(Change { t: f, node, kind: Kind::Waiting, up: false });
        ev.push(Change { t: f, node, kind: Kind::Decoding, up: true });
        ev.push(Change { t: e, node, kind: Kind::Decoding, up: false });
    }
    ev.sort_unstable_by(|x, y| x.t.total_cmp(&y.t));
    let mut cur =
        Row { t: 0.0, queued: 0, running: 0, prefill_waiting: 0, decoding: 0, nodes: vec![(0, 0, 0); node_count] };
    let mut i = 0;
    while i < ev.len() {
        let t = ev[i].t;
        while i < ev.len() && ev[i].t == t {
            let Change { kind, node, up, .. } = ev[i];
            let node = (node != NO_NODE).then_some(node);
            // Wrapping: a decrement may come before its increment at one time.
            let add = |v: &mut u32| *v = if up { v.wrapping_add(1) } else { v.wrapping_sub(1) };
            match kind {
                Kind::Queued => add(&mut cur.queued),
                Kind::Waiting => {
                    add(&mut cur.prefill_waiting);
                    if let Some(n) = node.and_then(|n| cur.nodes.get_mut(n as usize)) {
                        add(&mut n.1);
                    }
                }
                Kind::Decoding => {
                    add(&mut cur.decoding);
                    if let Some(n) = node.and_then(|n| cur.nodes.get_mut(n as usize)) {
                        add(&mut n.2);
                    }
                }
            }
            i += 1;
        }
        cur.running = cur.prefill_waiting + cur.decoding;
        for n in &mut cur.nodes {
            n.0 = n.1 + n.2;
        }
        cur.t = t;
        row(&cur);
    }
}

/// Time-average and maximum of one series of the step function over
/// `[0, end]`.
pub fn average_and_max(rows: &[Row], end: f64, value: impl Fn(&Row) -> u32) -> (f64, u32) {
    let mut acc = StepAverage::default();
    for r in rows {
        acc.push(r.t, value(r), end);
    }
    acc.finish(end)
}

/// [`average_and_max`] fed one step at a time (each value holds until the
/// next step's time), for use inside a [`sweep`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StepAverage {
    area: f64,
    max: u32,
    last: Option<(f64, u32)>,
}

impl StepAverage {
    /// The series takes `value` from time `t` on (clipped at `end`).
    pub fn push(&mut self, t: f64, value: u32, end: f64) {
        self.close(t.min(end));
        self.last = Some((t, value));
        self.max = self.max.max(value);
    }

    fn close(&mut self, next: f64) {
        if let Some((t0, v)) = self.last
            && next > t0
        {
            self.area += v as f64 * (next - t0);
        }
    }

    /// (time-average over `[0, end]`, maximum).
    pub fn finish(mut self, end: f64) -> (f64, u32) {
        self.close(end);
        (if end > 0.0 { self.area / end } else { 0.0 }, self.max)
    }
}

/// One window of [`resample`]: its start, the averages of (queued,
/// running, prefill_waiting, decoding), and of running per node.
pub type Window = (f64, [f64; 4], Vec<f64>);

/// Time-averages over windows of `interval` seconds: one row per window
/// [kΔ, (k+1)Δ), with `t` the window start and values averaged (rounded
/// values would hide short spikes, so averages are kept as f64).
pub fn resample(rows: &[Row], end: f64, interval: f64) -> Vec<Window> {
    let mut r = Resampler::new(rows.first().map_or(0, |r| r.nodes.len()), end, interval);
    for row in rows {
        r.push(row);
    }
    r.finish()
}

/// [`resample`] fed one row at a time (holds the windows and the last row).
#[derive(Debug)]
pub struct Resampler {
    end: f64,
    interval: f64,
    out: Vec<Window>,
    last: Option<Row>,
}

impl Resampler {
    /// Windows of `interval` seconds over `[0, end]` for `nodes` nodes.
    pub fn new(nodes: usize, end: f64, interval: f64) -> Self {
        let windows = (end / interval).ceil().max(1.0) as usize;
        let out = (0..windows).map(|k| (k as f64 * interval, [0.0; 4], vec![0.0; nodes])).collect();
        Self { end, interval, out, last: None }
    }

    /// The next row (rows come in time order).
    pub fn push(&mut self, row: &Row) {
        if let Some(prev) = self.last.take() {
            self.add(&prev, row.t);
        }
        self.last = Some(row.clone());
    }

    /// Adds `r`, held until `stop`.
    fn add(&mut self, r: &Row, stop: f64) {
        let (interval, windows) = (self.interval, self.out.len());
        let stop = stop.min(self.end);
        let mut t = r.t;
        while t < stop {
            let w = ((t / interval) as usize).min(windows - 1);
            let w_end = ((w + 1) as f64 * interval).min(stop);
            let span = (w_end - t) / interval;
            let o = &mut self.out[w];
            for (slot, v) in o.1.iter_mut().zip([r.queued, r.running, r.prefill_waiting, r.decoding]) {
                *slot += v as f64 * span;
            }
            for (slot, n) in o.2.iter_mut().zip(&r.nodes) {
                *slot += n.0 as f64 * span;
            }
            if w_end <= t {
                break;
            }
            t = w_end;
        }
    }

    /// The windows.
    pub fn finish(mut self) -> Vec<Window> {
        if let Some(prev) = self.last.take() {
            self.add(&prev, self.end);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Status;
    use crate::rng::Rng;
    use crate::stats::Summary;

    fn rec(id: u64, a: u64, s: u64, f: u64, e: u64, node: u32) -> RequestRecord {
        RequestRecord {
            id,
            input_length: 1,
            decode_length: 2,
            scheduled: Some(a),
            arrival: Some(a),
            to_server: Some(s),
            first_token: Some(f),
            finish: Some(e),
            node: Some(node),
            status: Status::Ok,
            error: String::new(),
            cached_tokens: None,
            token_events: 2,
            retractions: None,
            token_times: Vec::new(),
            requested_output_length: 5,
            finish_reason: String::new(),
            client_input_length: 10,
            error_kind: None,
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn step_functions_are_exact() {
        let recs = vec![rec(0, 0, S, 2 * S, 4 * S, 0), rec(1, S, 3 * S, 3 * S, 5 * S, 1)];
        let rows = exact(&recs, 2);
        let at = |t: f64| rows.iter().rev().find(|r| r.t <= t).unwrap().clone();
        assert_eq!((at(0.5).queued, at(0.5).running), (1, 0));
        assert_eq!((at(1.5).queued, at(1.5).running, at(1.5).prefill_waiting), (1, 1, 1));
        assert_eq!((at(2.5).decoding, at(2.5).nodes[0]), (1, (1, 0, 1)));
        // t = 3: request 1 is sent and gets its first token at once.
        assert_eq!((at(3.5).queued, at(3.5).running, at(3.5).decoding, at(3.5).nodes[1]), (0, 2, 2, (1, 0, 1)));
        assert_eq!(at(4.5).running, 1);
        assert_eq!(rows.last().unwrap().running, 0);
        let (avg, max) = average_and_max(&rows, 5.0, |r| r.running);
        assert_eq!((avg, max), (5.0 / 5.0, 2)); // 3 s + 2 s of in-flight time over 5 s
    }

    #[test]
    fn littles_law_holds_to_floating_point_precision() {
        let mut rng = Rng::new(3, 0);
        let recs: Vec<RequestRecord> = (0..2000)
            .map(|i| {
                let a = rng.range_inclusive(0, 60 * S);
                let s = a + rng.range_inclusive(0, S / 10);
                let f = s + rng.range_inclusive(1, S / 5);
                let e = f + rng.range_inclusive(0, 3 * S);
                rec(i, a, s, f, e, (i % 3) as u32)
            })
            .collect();
        let summary = Summary::of(&recs);
        let rows = exact(&recs, 3);
        let (avg, _) = average_and_max(&rows, summary.duration_s, |r| r.running);
        let rel = (avg - summary.mean_concurrency).abs() / summary.mean_concurrency;
        assert!(rel < 1e-12, "time-average {avg} vs Σ latency / T {}", summary.mean_concurrency);
        // Per-node running sums to the total at every change point.
        assert!(rows.iter().all(|r| r.nodes.iter().map(|n| n.0).sum::<u32>() == r.running));
    }

    #[test]
    fn resampling_averages_each_window() {
        let recs = vec![rec(0, 0, 0, S / 2, S + S / 2, 0)];
        let rows = exact(&recs, 1);
        let w = resample(&rows, 2.0, 1.0);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].1[1], 1.0); // running the whole first second
        assert_eq!(w[1].1[1], 0.5); // half of the second
        assert_eq!(w[0].1[2], 0.5); // waiting for the first token for 0.5 s
    }
}
