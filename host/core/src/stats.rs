//! Level-2 metrics: one run's summary from its request records.
//!
//! Percentiles interpolate linearly between order statistics (numpy's
//! default), so they match what users compute from `requests.csv`.

use serde::Serialize;

use crate::record::{RequestRecord, Status};
use crate::secs;

/// Distribution of one metric, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Linear-interpolation percentile of sorted values, `p` in 0..=100.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty());
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

impl Dist {
    /// The distribution of `values`, or None when empty.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            count: values.len(),
            mean,
            std: var.sqrt(),
            min: values[0],
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
            max: values[values.len() - 1],
        })
    }
}

/// Request counts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Time-average of requests in flight (sent, not finished), all sent requests.
    pub mean_concurrency: f64,
}

impl Summary {
    /// Summarises a run's records.
    pub fn of(records: &[RequestRecord]) -> Self {
        let mut c = Counts { total: records.len() as u64, ..Counts::default() };
        let mut sl = Vec::new();
        let mut tl = Vec::new();
        let mut tt = Vec::new();
        let mut qt = Vec::new();
        let mut tp = Vec::new();
        let (mut inp, mut outp, mut busy) = (0u64, 0u64, 0.0f64);
        let mut end = 0.0f64;
        for r in records {
            if let Some(f) = r.finish {
                end = end.max(secs(f));
            }
            let d = r.derived();
            if let Some(s) = d.server_latency {
                busy += s;
            }
            match r.status {
                Status::Ok => {
                    c.ok += 1;
                    inp += r.input_length as u64;
                    outp += r.decode_length as u64;
                    sl.extend(d.server_latency);
                    tl.extend(d.total_latency);
                    tt.extend(d.ttft);
                    qt.extend(d.queue_time);
                    tp.extend(d.tpot);
                }
                Status::Error => c.error += 1,
                Status::Rejected => c.rejected += 1,
                Status::Cancelled => c.cancelled += 1,
            }
        }
        let per_s = |x: f64| if end > 0.0 { x / end } else { 0.0 };
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
        }
    }

    #[test]
    fn summary_counts_and_throughput() {
        let recs = vec![
            rec(0, 0, 500_000_000, 1_000_000_000, Status::Ok),
            rec(1, 1_000_000_000, 1_500_000_000, 2_000_000_000, Status::Ok),
            rec(2, 0, 0, 1_000_000_000, Status::Error),
            RequestRecord::unsent(3, 10, None, Status::Cancelled, "x".into()),
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
    }
}
