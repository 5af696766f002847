//! Level-2 metrics: one run's summary from its request records.
//!
//! Percentiles interpolate linearly between order statistics (numpy's
//! default), so they match what users compute from `requests.csv`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod itl;
mod pool;
pub mod repeats;
mod tokens;

pub use tokens::TokenStats;

use crate::config::Slo;
use crate::record::{RequestRecord, Status};
use crate::{secs, timeline};

/// Distribution of one metric, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Linear-interpolation percentile of sorted values, `p` in 0..=100.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    percentile_by(sorted, p, |v| *v)
}

/// [`percentile`] of values in any order (reordered in place): the same
/// number, found by selection instead of a sort.
pub fn percentile_unsorted(values: &mut [f64], p: f64) -> f64 {
    assert!(!values.is_empty());
    let rank = rank_of(p, values.len());
    let (lo, hi) = bracket(rank);
    if values.len() - lo <= itl::TOP_SCAN {
        return itl::top_percentile(values, lo, hi, rank);
    }
    let (below, at_hi, _) = values.select_nth_unstable_by(hi, f64::total_cmp);
    let at_hi = *at_hi;
    // Everything below `hi` is at most `at_hi`: its largest is order statistic hi - 1.
    let at_lo = if lo == hi { at_hi } else { below.iter().copied().max_by(f64::total_cmp).unwrap_or(at_hi) };
    at_lo + (at_hi - at_lo) * (rank - lo as f64)
}

/// Where percentile `p` of `len` values lies between order statistics.
fn rank_of(p: f64, len: usize) -> f64 {
    p / 100.0 * (len - 1) as f64
}

/// The order statistics around `rank` (which is at least 0): floor and
/// ceiling without the libm calls `f64::floor` and `f64::ceil` compile to
/// on baseline x86-64 (a measurable share of the record writer).
fn bracket(rank: f64) -> (usize, usize) {
    let lo = rank as usize;
    (lo, if rank > lo as f64 { lo + 1 } else { lo })
}

fn percentile_by<T>(sorted: &[T], p: f64, get: impl Fn(&T) -> f64) -> f64 {
    assert!(!sorted.is_empty());
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = bracket(rank);
    get(&sorted[lo]) + (get(&sorted[hi]) - get(&sorted[lo])) * (rank - lo as f64)
}

impl Dist {
    /// The distribution of `values`, or None when empty.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        values.sort_unstable_by(f64::total_cmp);
        Self::of_sorted(&values, |v| *v)
    }

    /// The same for f32 values (sorted in place; statistics in f64).
    pub fn of_f32(mut values: Vec<f32>) -> Option<Self> {
        values.sort_unstable_by(f32::total_cmp);
        Self::of_sorted(&values, |v| f64::from(*v))
    }

    fn of_sorted<T>(values: &[T], get: impl Fn(&T) -> f64) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().map(&get).sum::<f64>() / n;
        let var = values.iter().map(|v| (get(v) - mean).powi(2)).sum::<f64>() / n;
        let pct = |p: f64| percentile_by(values, p, &get);
        Some(Self {
            count: values.len(),
            mean,
            std: var.sqrt(),
            min: get(&values[0]),
            p50: pct(50.0),
            p90: pct(90.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: get(&values[values.len() - 1]),
        })
    }
}

/// Request counts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// All requests of the workload.
    pub total: u64,
    /// Finished ok.
    pub ok: u64,
    /// Failed after being sent.
    pub error: u64,
    /// Refused by the router.
    pub rejected: u64,
    /// Not sent (or cut off) because the run stopped.
    pub cancelled: u64,
}

/// The run's level-2 metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests by status.
    pub requests: Counts,
    /// Run start to the last finish, seconds.
    pub duration_s: f64,
    /// Finish - to_server, ok requests.
    pub server_latency: Option<Dist>,
    /// Finish - arrival, ok requests.
    pub total_latency: Option<Dist>,
    /// First token - to_server, ok requests.
    pub ttft: Option<Dist>,
    /// To_server - arrival, ok requests.
    pub queue_time: Option<Dist>,
    /// (Finish - first token)/(decode_length - 1), ok requests with > 1 token.
    pub tpot: Option<Dist>,
    /// Ok requests per second.
    pub request_throughput: f64,
    /// Prompt tokens of ok requests per second.
    pub input_token_throughput: f64,
    /// Output tokens of ok requests per second.
    pub output_token_throughput: f64,
    /// Time-average of requests in flight (sent, not finished), all sent
    /// requests: Σ server_latency / duration (Little's law).
    pub mean_concurrency: f64,
    /// Most requests in flight at once.
    pub max_concurrency: u32,
    /// Time-average of the client queue depth (arrived, not yet sent).
    pub mean_queue_depth: f64,
    /// Deepest client queue.
    pub max_queue_depth: u32,
    /// First token - arrival, ok requests.
    pub ttft_total: Option<Dist>,
    /// Inter-token latency, pooled over every token after the first of every ok request.
    pub itl: Option<Dist>,
    /// Most output tokens in any 1-second window (tokens/s).
    pub peak_output_token_throughput: f64,
    /// Most requests finished ok in any 1-second window (requests/s).
    pub peak_request_throughput: f64,
    /// SLO results, when `[slo]` sets limits.
    pub slo: Option<SloResult>,
    /// Failed requests by the first part of their error.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Per node.
    pub nodes: Vec<NodeSummary>,
    /// Σ cached_tokens / Σ input_length over ok requests whose server
    /// reported `cached_tokens` (the prefix-cache hit rate the server saw);
    /// absent when no server reported it.
    pub prefix_cache_hit_rate: Option<f64>,
    /// Token totals of ok requests, and how far the servers' output lengths
    /// and prompt counts differ from what the client asked for and counted.
    pub tokens: TokenTotals,
}

/// Token totals over ok requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenTotals {
    /// Prompt tokens (the server's counts where reported).
    pub input: u64,
    /// Output tokens received.
    pub output: u64,
    /// Output tokens asked for.
    pub output_requested: u64,
    /// Requests whose output length differs from the length asked for (a
    /// server that stops at EOS, ignores `ignore_eos` or reads another
    /// length field).
    pub output_length_mismatch: u64,
    /// Mean of output length / length asked for.
    pub output_length_ratio_mean: Option<f64>,
    /// Requests whose server-reported prompt length differs from the
    /// client's count; absent where the client cannot count exactly (no
    /// tokenizer for text prompts).
    pub input_count_disagree: Option<u64>,
}

/// Goodput and attainment for the configured limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The limits.
    pub limits: Slo,
    /// Requests that finished ok within every limit.
    pub met: u64,
    /// met / requests sent.
    pub attainment: f64,
    /// met / duration (requests/s).
    pub goodput: f64,
}

/// One node's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// Node index.
    pub node: u32,
    /// Requests sent to it.
    pub requests: u64,
    /// Finished ok.
    pub ok: u64,
    /// Failed.
    pub error: u64,
    /// Output tokens of ok requests.
    pub output_tokens: u64,
    /// Mean TTFT of ok requests, s.
    pub mean_ttft: Option<f64>,
    /// Mean server latency of ok requests, s.
    pub mean_server_latency: Option<f64>,
}

fn error_kind(e: &str) -> String {
    let head = e.split(": ").next().unwrap_or(e);
    // "timed out after 600.0 s" and "HTTP 500 Internal Server Error" keep their words.
    head.chars().take(80).collect()
}

fn peak_per_second(times: impl Iterator<Item = (f64, u64)>, end: f64) -> f64 {
    let mut bins = vec![0u64; end.ceil().max(1.0) as usize + 1];
    for (t, n) in times {
        let b = (t.max(0.0) as usize).min(bins.len() - 1);
        bins[b] += n;
    }
    bins.into_iter().max().unwrap_or(0) as f64
}

impl Summary {
    /// Summarises a run's records against the SLO limits.
    pub fn of(records: &[RequestRecord]) -> Self {
        Self::with_slo(records, &Slo::default())
    }

    /// Summarises a run's records (with their token events) against the SLO limits.
    pub fn with_slo(records: &[RequestRecord], slo: &Slo) -> Self {
        Self::from_parts(records, slo, TokenStats::of(records))
    }

    /// Summarises records whose token events were already folded into
    /// `tokens` (the records' own `token_times` are not read).
    pub fn from_parts(records: &[RequestRecord], slo: &Slo, tokens: TokenStats) -> Self {
        let mut c = Counts { total: records.len() as u64, ..Counts::default() };
        let (mut sl, mut tl, mut tt, mut qt, mut tp, mut ttt) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut inp, mut outp, mut busy) = (0u64, 0u64, 0.0f64);
        let (mut cached, mut cached_of) = (0u64, 0u64);
        let mut end = 0.0f64;
        let mut errors = BTreeMap::new();
        let mut per_node: BTreeMap<u32, (NodeSummary, f64, f64)> = BTreeMap::new();
        let (mut sent, mut met) = (0u64, 0u64);
        let mut tok = TokenTotals::default();
        let mut ratio_sum = 0.0f64;
        let any_limit = slo.ttft_ms.is_some() || slo.tpot_ms.is_some() || slo.e2e_ms.is_some();
        for r in records {
            if let Some(f) = r.finish {
                end = end.max(secs(f));
            }
            let d = r.derived();
            if let Some(s) = d.server_latency {
                busy += s;
                sent += 1;
            }
            if let Some(n) = r.node {
                let e = per_node.entry(n).or_insert_with(|| {
                    (
                        NodeSummary {
                            node: n,
                            requests: 0,
                            ok: 0,
                            error: 0,
                            output_tokens: 0,
                            mean_ttft: None,
                            mean_server_latency: None,
                        },
                        0.0,
                        0.0,
                    )
                });
                e.0.requests += 1;
                match r.status {
                    Status::Ok => {
                        e.0.ok += 1;
                        e.0.output_tokens += r.decode_length as u64;
                        e.1 += d.ttft.unwrap_or(0.0);
                        e.2 += d.server_latency.unwrap_or(0.0);
                    }
                    Status::Error => e.0.error += 1,
                    _ => {}
                }
            }
            match r.status {
                Status::Ok => {
                    c.ok += 1;
                    inp += r.input_length as u64;
                    tok.output_requested += u64::from(r.requested_output_length);
                    if r.decode_length != r.requested_output_length {
                        tok.output_length_mismatch += 1;
                    }
                    if r.requested_output_length > 0 {
                        ratio_sum += f64::from(r.decode_length) / f64::from(r.requested_output_length);
                    }
                    if r.input_length != r.client_input_length {
                        *tok.input_count_disagree.get_or_insert(0) += 1;
                    }
                    if let Some(k) = r.cached_tokens {
                        cached += u64::from(k);
                        cached_of += r.input_length as u64;
                    }
                    outp += r.decode_length as u64;
                    sl.extend(d.server_latency);
                    tl.extend(d.total_latency);
                    tt.extend(d.ttft);
                    qt.extend(d.queue_time);
                    tp.extend(d.tpot);
                    ttt.extend(d.ttft_total);
                    let within =
                        |v: Option<f64>, limit: Option<f64>| limit.is_none_or(|l| v.is_some_and(|v| v * 1e3 <= l));
                    if within(d.ttft, slo.ttft_ms) && within(d.tpot, slo.tpot_ms) && within(d.total_latency, slo.e2e_ms)
                    {
                        met += 1;
                    }
                }
                Status::Error => {
                    c.error += 1;
                    *errors.entry(error_kind(&r.error)).or_insert(0) += 1;
                }
                Status::Rejected => c.rejected += 1,
                Status::Cancelled => c.cancelled += 1,
            }
        }
        let per_s = |x: f64| if end > 0.0 { x / end } else { 0.0 };
        // One pass over the exact timeline: the queue's time-average and
        // maximum, and the most in flight.
        let (mut queue, mut running) = (timeline::StepAverage::default(), timeline::StepAverage::default());
        timeline::sweep(records, 0, |r| {
            queue.push(r.t, r.queued, end);
            running.push(r.t, r.running, end);
        });
        let (mean_queue_depth, max_queue_depth) = queue.finish(end);
        let (_, max_concurrency) = running.finish(end);
        let peak_output_token_throughput = tokens.per_second().iter().copied().max().unwrap_or(0) as f64;
        let finishes = records.iter().filter(|r| r.status == Status::Ok).filter_map(|r| Some((secs(r.finish?), 1)));
        let peak_request_throughput = peak_per_second(finishes, end);
        let nodes = per_node
            .into_values()
            .map(|(mut n, ttft, lat)| {
                if n.ok > 0 {
                    n.mean_ttft = Some(ttft / n.ok as f64);
                    n.mean_server_latency = Some(lat / n.ok as f64);
                }
                n
            })
            .collect();
        Self {
            requests: c,
            duration_s: end,
            server_latency: Dist::of(sl),
            total_latency: Dist::of(tl),
            ttft: Dist::of(tt),
            queue_time: Dist::of(qt),
            tpot: Dist::of(tp),
            request_throughput: per_s(c.ok as f64),
            input_token_throughput: per_s(inp as f64),
            output_token_throughput: per_s(outp as f64),
            mean_concurrency: per_s(busy),
            max_concurrency,
            mean_queue_depth,
            max_queue_depth,
            ttft_total: Dist::of(ttt),
            itl: tokens.into_itl().dist(),
            peak_output_token_throughput,
            peak_request_throughput,
            slo: any_limit.then(|| SloResult {
                limits: slo.clone(),
                met,
                attainment: if sent > 0 { met as f64 / sent as f64 } else { 0.0 },
                goodput: per_s(met as f64),
            }),
            errors_by_kind: errors,
            nodes,
            prefix_cache_hit_rate: (cached_of > 0).then(|| cached as f64 / cached_of as f64),
            tokens: TokenTotals {
                input: inp,
                output: outp,
                output_length_ratio_mean: (c.ok > 0).then(|| ratio_sum / c.ok as f64),
                input_count_disagree: Some(tok.input_count_disagree.unwrap_or(0)),
                ..tok
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 90.0), 3.7);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        let d = Dist::of(vec![4.0, 2.0, 1.0, 3.0]).unwrap();
        assert_eq!((d.mean, d.min, d.max), (2.5, 1.0, 4.0));
        assert!((d.std - 1.118_033_988_749_895).abs() < 1e-12);
    }

    fn rec(id: u64, sent: u64, first: u64, fin: u64, status: Status) -> RequestRecord {
        RequestRecord {
            id,
            input_length: 10,
            decode_length: 5,
            scheduled: Some(0),
            arrival: Some(0),
            to_server: Some(sent),
            first_token: Some(first),
            finish: Some(fin),
            node: Some(0),
            status,
            error: String::new(),
            cached_tokens: None,
            token_events: 5,
            retractions: None,
            token_times: Vec::new(),
            requested_output_length: 5,
            finish_reason: String::new(),
            client_input_length: 10,
            error_kind: None,
        }
    }

    #[test]
    fn summary_counts_and_throughput() {
        let recs = vec![
            rec(0, 0, 500_000_000, 1_000_000_000, Status::Ok),
            rec(1, 1_000_000_000, 1_500_000_000, 2_000_000_000, Status::Ok),
            rec(2, 0, 0, 1_000_000_000, Status::Error),
            RequestRecord::unsent(3, (10, 5), None, Status::Cancelled, "x".into()),
        ];
        let s = Summary::of(&recs);
        assert_eq!(s.requests, Counts { total: 4, ok: 2, error: 1, rejected: 0, cancelled: 1 });
        assert_eq!(s.duration_s, 2.0);
        assert_eq!(s.request_throughput, 1.0);
        assert_eq!(s.output_token_throughput, 5.0);
        assert_eq!(s.ttft.as_ref().unwrap().mean, 0.5);
        assert_eq!(s.tpot.as_ref().unwrap().mean, 0.125);
        // 3 s of in-flight time over 2 s.
        assert_eq!(s.mean_concurrency, 1.5);
        assert_eq!(s.max_concurrency, 2);
        assert_eq!(s.errors_by_kind.get("x"), None, "cancelled requests are not errors");
        assert_eq!(s.nodes.len(), 1);
        assert_eq!((s.nodes[0].requests, s.nodes[0].ok, s.nodes[0].error), (3, 2, 1));
        assert_eq!(s.nodes[0].mean_ttft, Some(0.5));
        // Each asked for 5 and got 5; the server's prompt counts match.
        assert_eq!(
            s.tokens,
            TokenTotals {
                input: 20,
                output: 10,
                output_requested: 10,
                output_length_mismatch: 0,
                output_length_ratio_mean: Some(1.0),
                input_count_disagree: Some(0),
            }
        );
        let mut short = recs.clone();
        short[1].decode_length = 2;
        short[1].input_length = 12;
        let t = Summary::of(&short).tokens;
        assert_eq!((t.output, t.output_length_mismatch, t.input_count_disagree), (7, 1, Some(1)));
        assert_eq!(t.output_length_ratio_mean, Some(0.7));
        let slo = Slo { ttft_ms: Some(500.0), tpot_ms: None, e2e_ms: Some(1500.0) };
        let s = Summary::with_slo(&recs, &slo);
        // Request 0: ttft 0.5 s, e2e 1 s -> met; request 1: e2e 2 s -> missed.
        let r = s.slo.unwrap();
        assert_eq!((r.met, r.goodput), (1, 0.5));
        assert!((r.attainment - 1.0 / 3.0).abs() < 1e-12);
    }
}
