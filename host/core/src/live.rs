//! Live figures of a running benchmark: counts since the start and rolling
//! rates and percentiles over the last [`Rolling::window_ns`] (sans-IO:
//! records and times come in, a [`LiveStats`] comes out). The live view of
//! `sglab run` draws these; the definitions are the summary's: TTFT from
//! sending, ITL per token, output tokens by request finish.

use std::collections::VecDeque;

use crate::Nanos;
use crate::record::{RequestRecord, Status};

#[derive(Debug, Clone, Copy)]
struct Finished {
    at: Nanos,
    node: Option<u32>,
    out_tokens: u32,
    ttft_ms: Option<f64>,
    /// Range of this record's ITL samples in `Rolling::itl`.
    itl: usize,
}

/// Rolling figures of the requests that finished in the last window.
#[derive(Debug, Clone)]
pub struct Rolling {
    window_ns: Nanos,
    recent: VecDeque<Finished>,
    itl: VecDeque<f64>,
    done: u64,
    errors: u64,
    per_node: Vec<(u64, u64)>,
}

/// One node's line of the live view.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLive {
    /// Finished since the start (ok or not).
    pub done: u64,
    /// Failed since the start.
    pub errors: u64,
    /// Sent and not finished (the caller's count).
    pub in_flight: u32,
    /// TTFT p50 in the window, ms.
    pub ttft_p50_ms: Option<f64>,
}

/// What the live view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStats {
    pub done: u64,
    pub errors: u64,
    /// Requests finished per second in the window.
    pub req_s: f64,
    /// Output tokens per second in the window (by request finish).
    pub tok_s: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub itl_p50_ms: Option<f64>,
    pub itl_p99_ms: Option<f64>,
    pub nodes: Vec<NodeLive>,
}

/// The nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[k - 1])
}

impl Rolling {
    /// A window of `window_ns` over `nodes` nodes.
    pub fn new(window_ns: Nanos, nodes: usize) -> Self {
        Self {
            window_ns: window_ns.max(1),
            recent: VecDeque::new(),
            itl: VecDeque::new(),
            done: 0,
            errors: 0,
            per_node: vec![(0, 0); nodes],
        }
    }

    /// The window length.
    pub fn window_ns(&self) -> Nanos {
        self.window_ns
    }

    /// Counts a finished record (its `token_times` give the ITL samples).
    pub fn record(&mut self, rec: &RequestRecord) {
        let ok = rec.status == Status::Ok;
        self.done += 1;
        self.errors += u64::from(rec.status == Status::Error);
        if let Some(n) = rec.node.and_then(|n| self.per_node.get_mut(n as usize)) {
            n.0 += 1;
            n.1 += u64::from(rec.status == Status::Error);
        }
        if !ok {
            return;
        }
        let mut samples = 0;
        for w in rec.token_times.windows(2) {
            let ((t0, n0), (t1, n1)) = (w[0], w[1]);
            if n1 > n0 && t1 >= t0 {
                let gap = (t1 - t0) as f64 / 1e6 / f64::from(n1 - n0);
                for _ in n0..n1 {
                    self.itl.push_back(gap);
                    samples += 1;
                }
            }
        }
        let ttft_ms = match (rec.to_server, rec.first_token) {
            (Some(sent), Some(first)) if first >= sent => Some((first - sent) as f64 / 1e6),
            _ => None,
        };
        self.recent.push_back(Finished {
            at: rec.finish.unwrap_or(0),
            node: rec.node,
            out_tokens: rec.decode_length,
            ttft_ms,
            itl: samples,
        });
    }

    /// Drops what finished before `now - window`.
    fn expire(&mut self, now: Nanos) {
        let from = now.saturating_sub(self.window_ns);
        while self.recent.front().is_some_and(|f| f.at < from) {
            let f = self.recent.pop_front().expect("checked non-empty");
            self.itl.drain(..f.itl.min(self.itl.len()));
        }
    }

    /// The figures at `now` (`started_ns` ago the run began: a window not
    /// yet full divides by the time so far). `in_flight` is per node.
    pub fn stats(&mut self, now: Nanos, started_ns: Nanos, in_flight: &[u32]) -> LiveStats {
        self.expire(now);
        let span = (now.saturating_sub(started_ns)).clamp(1, self.window_ns) as f64 / 1e9;
        let mut ttft: Vec<f64> = self.recent.iter().filter_map(|f| f.ttft_ms).collect();
        ttft.sort_by(f64::total_cmp);
        let mut itl: Vec<f64> = self.itl.iter().copied().collect();
        itl.sort_by(f64::total_cmp);
        let nodes = self
            .per_node
            .iter()
            .enumerate()
            .map(|(i, &(done, errors))| {
                let mut t: Vec<f64> =
                    self.recent.iter().filter(|f| f.node == Some(i as u32)).filter_map(|f| f.ttft_ms).collect();
                t.sort_by(f64::total_cmp);
                NodeLive { done, errors, in_flight: in_flight.get(i).copied().unwrap_or(0), ttft_p50_ms: pct(&t, 0.5) }
            })
            .collect();
        LiveStats {
            done: self.done,
            errors: self.errors,
            req_s: self.recent.len() as f64 / span,
            // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0".
            tok_s: (self.recent.iter().map(|f| f64::from(f.out_tokens)).sum::<f64>() + 0.0) / span,
            ttft_p50_ms: pct(&ttft, 0.5),
            ttft_p99_ms: pct(&ttft, 0.99),
            itl_p50_ms: pct(&itl, 0.5),
            itl_p99_ms: pct(&itl, 0.99),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, node: u32, sent_ms: u64, first_ms: u64, finish_ms: u64, tokens: u32) -> RequestRecord {
        let ms = |v: u64| v * 1_000_000;
        let mut r = RequestRecord::unsent(id, (10, tokens), None, Status::Ok, String::new());
        r.node = Some(node);
        r.scheduled = Some(ms(sent_ms));
        r.arrival = Some(ms(sent_ms));
        r.to_server = Some(ms(sent_ms));
        r.first_token = Some(ms(first_ms));
        r.finish = Some(ms(finish_ms));
        r.decode_length = tokens;
        // One token at first_ms, then the rest evenly until finish.
        let step = (finish_ms - first_ms) / u64::from(tokens - 1);
        r.token_times = (0..tokens).map(|k| (ms(first_ms + step * u64::from(k)), k + 1)).collect();
        r
    }

    #[test]
    fn rolling_figures_follow_the_window() {
        let mut r = Rolling::new(10_000_000_000, 2);
        // 0-9 s: one request a second, TTFT 20 ms, 11 tokens 10 ms apart.
        for i in 0..10u64 {
            r.record(&rec(i, (i % 2) as u32, i * 1000, i * 1000 + 20, i * 1000 + 120, 11));
        }
        let mut failed = RequestRecord::unsent(10, (10, 5), None, Status::Error, "boom".into());
        failed.node = Some(1);
        failed.finish = Some(9_500_000_000);
        r.record(&failed);
        let s = r.stats(10_000_000_000, 0, &[3, 1]);
        assert_eq!((s.done, s.errors), (11, 1));
        assert_eq!(s.req_s, 1.0, "10 ok in 10 s");
        assert_eq!(s.tok_s, 11.0);
        assert_eq!((s.ttft_p50_ms, s.ttft_p99_ms), (Some(20.0), Some(20.0)));
        assert_eq!((s.itl_p50_ms, s.itl_p99_ms), (Some(10.0), Some(10.0)));
        assert_eq!(s.nodes[1], NodeLive { done: 6, errors: 1, in_flight: 1, ttft_p50_ms: Some(20.0) });
        // A window not yet full divides by the time so far: 2 s in, 2 done.
        let mut early = Rolling::new(10_000_000_000, 1);
        early.record(&rec(0, 0, 0, 20, 120, 11));
        early.record(&rec(1, 0, 1000, 1020, 1120, 11));
        assert_eq!(early.stats(2_000_000_000, 0, &[0]).req_s, 1.0);
        // 15 s: requests 0-4 (finished before 5 s) left the window, with their ITLs.
        r.record(&rec(20, 0, 14_000, 14_100, 14_190, 10));
        let s = r.stats(15_000_000_000, 0, &[0, 0]);
        assert_eq!(s.req_s, 0.6, "5 of the old + 1 new in 10 s");
        assert_eq!(s.ttft_p99_ms, Some(100.0));
        assert_eq!(r.itl.len(), 5 * 10 + 9, "only the window's ITL samples are kept");
        assert_eq!(s.done, 12, "counts since the start stay");
    }
}
