//! What the simulator reports about itself: Prometheus `/metrics` with
//! SGLang's metric names, `/v1/loads`, and the per-request latency
//! histograms (shapes from SGLang 0.5.23 `observability/metrics_collector.py`
//! and `entrypoints/v1_loads.py`; see shared/reference/sglang.md §2.7–2.8).

use std::fmt::Write as _;
use std::sync::Mutex;

use serde_json::{Value, json};
use sglab_core::Nanos;
use sglab_core::sim::TokenEvent;

use super::engine_task::Published;

const TTFT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const ITL_BUCKETS: &[f64] = &[
    0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
];
const E2E_BUCKETS: &[f64] =
    &[0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64, n: u64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += n;
            }
        }
        self.sum += v * n as f64;
        self.count += n;
    }

    fn write(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {}", self.sum, self.count);
    }
}

/// Per-request timing, in simulated ns, as the server sees it.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// When the request was received.
    pub received: Nanos,
    /// First token.
    pub first: Option<Nanos>,
    /// Last event.
    pub last: Nanos,
    /// Tokens so far.
    pub tokens: u32,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    itl: Vec<(f64, u64)>,
}

impl Tracker {
    /// A request received at `at` with `prompt_tokens`.
    pub fn new(at: Nanos, prompt_tokens: u32) -> Self {
        Self { received: at, last: at, prompt_tokens, ..Self::default() }
    }

    /// Records an event at `at`.
    pub fn event(&mut self, ev: &TokenEvent, at: Nanos) {
        let delta = ev.completion_tokens.saturating_sub(self.tokens);
        if delta > 0 {
            if self.first.is_none() {
                self.first = Some(at);
            } else {
                self.itl.push(((at - self.last) as f64 / 1e9 / delta as f64, delta as u64));
            }
            self.last = at;
            self.tokens = ev.completion_tokens;
        }
    }

    /// Seconds from receipt to the last event.
    pub fn e2e_s(&self) -> f64 {
        (self.last - self.received) as f64 / 1e9
    }
}

#[derive(Debug)]
struct Hists {
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    requests: u64,
    aborted: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
    cached_tokens: u64,
}

/// Request-level metrics (the "tokenizer side" of SGLang).
#[derive(Debug)]
pub struct Observer {
    inner: Mutex<Hists>,
}

impl Default for Observer {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Hists {
                ttft: Histogram::new(TTFT_BUCKETS),
                itl: Histogram::new(ITL_BUCKETS),
                e2e: Histogram::new(E2E_BUCKETS),
                requests: 0,
                aborted: 0,
                prompt_tokens: 0,
                generation_tokens: 0,
                cached_tokens: 0,
            }),
        }
    }
}

impl Observer {
    /// A request finished normally.
    pub fn finished(&self, t: &Tracker, ev: &TokenEvent) {
        let mut h = self.inner.lock().expect("observer lock");
        if let Some(f) = t.first {
            h.ttft.observe((f - t.received) as f64 / 1e9, 1);
        }
        for &(v, n) in &t.itl {
            h.itl.observe(v, n);
        }
        h.e2e.observe(t.e2e_s(), 1);
        h.requests += 1;
        h.prompt_tokens += t.prompt_tokens as u64;
        h.generation_tokens += ev.completion_tokens as u64;
        h.cached_tokens += ev.cached_tokens as u64;
    }

    /// A request was aborted.
    pub fn aborted(&self) {
        self.inner.lock().expect("observer lock").aborted += 1;
    }

    /// Prometheus text for `/metrics`.
    pub fn prometheus(&self, p: &Published, model: &str) -> String {
        let s = &p.stats;
        let labels = format!("model_name=\"{model}\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\"");
        let mut out = String::new();
        let cap = s.max_total_num_tokens.max(1) as f64;
        let gauges: [(&str, &str, f64); 11] = [
            ("num_running_reqs", "The number of running requests.", s.num_running_reqs as f64),
            ("num_queue_reqs", "The number of requests in the waiting queue.", s.num_queue_reqs as f64),
            ("token_usage", "The token usage.", ((s.num_used_tokens as f64 / cap) * 100.0).round() / 100.0),
            ("num_used_tokens", "The number of used tokens.", s.num_used_tokens as f64),
            ("kv_evictable_tokens", "Cached KV tokens that can be evicted.", s.evictable_tokens as f64),
            ("cache_hit_rate", "The prefix cache hit rate.", s.cache_hit_rate),
            ("gen_throughput", "The generation throughput (token/s).", s.gen_throughput),
            ("new_token_ratio", "The new token ratio.", s.new_token_ratio),
            (
                "max_total_num_tokens",
                "Maximum total number of tokens in the KV cache pool.",
                s.max_total_num_tokens as f64,
            ),
            ("max_running_requests", "Effective maximum running requests.", s.max_running_requests as f64),
            ("utilization", "Whether the scheduler is busy.", (s.num_running_reqs + s.num_queue_reqs > 0) as u8 as f64),
        ];
        for (name, help, v) in gauges {
            let _ =
                writeln!(out, "# HELP sglang:{name} {help}\n# TYPE sglang:{name} gauge\nsglang:{name}{{{labels}}} {v}");
        }
        let h = self.inner.lock().expect("observer lock");
        let counters: [(&str, &str, u64); 6] = [
            ("num_retracted_requests_total", "Retracted requests.", s.retracted_total),
            ("num_requests_total", "Finished requests.", h.requests),
            ("num_aborted_requests_total", "Aborted requests.", h.aborted),
            ("prompt_tokens_total", "Prompt tokens.", h.prompt_tokens),
            ("generation_tokens_total", "Generated tokens.", h.generation_tokens),
            ("cached_tokens_total", "Prefix-cache hit tokens.", h.cached_tokens),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP sglang:{name} {help}\n# TYPE sglang:{name} counter\nsglang:{name}{{{labels}}} {v}"
            );
        }
        let tl = format!("model_name=\"{model}\",engine_type=\"unified\"");
        h.ttft.write(&mut out, "sglang:time_to_first_token_seconds", "Time to first token in seconds.", &tl);
        h.itl.write(&mut out, "sglang:inter_token_latency_seconds", "Inter-token latency in seconds.", &tl);
        h.e2e.write(&mut out, "sglang:e2e_request_latency_seconds", "End-to-end request latency in seconds.", &tl);
        let lag = &p.lag;
        let _ = writeln!(
            out,
            "# HELP sglab:sim_step_lag_seconds_max Largest lateness of the simulator's wake-ups (wall seconds).\n\
             # TYPE sglab:sim_step_lag_seconds_max gauge\nsglab:sim_step_lag_seconds_max {}\n\
             # HELP sglab:sim_step_lag_seconds Lateness of the simulator's wake-ups (wall seconds).\n\
             # TYPE sglab:sim_step_lag_seconds summary\nsglab:sim_step_lag_seconds_sum {}\nsglab:sim_step_lag_seconds_count {}\n\
             # HELP sglab:sim_step_lag_over_1ms_total Wake-ups more than 1 ms late.\n\
             # TYPE sglab:sim_step_lag_over_1ms_total counter\nsglab:sim_step_lag_over_1ms_total {}",
            lag.max, lag.sum, lag.count, lag.over_1ms
        );
        out
    }
}

/// `/v1/loads` JSON.
pub fn loads(p: &Published, now_unix: f64, rfc3339: &str) -> Value {
    let s = &p.stats;
    let cap = s.max_total_num_tokens.max(1) as f64;
    json!({
        "timestamp": rfc3339,
        "version": "0.5.23",
        "accelerator": "sglab-sim",
        "num_accelerators": 1,
        "loads": [{
            "timestamp": now_unix,
            "dp_rank": 0,
            "num_running_reqs": s.num_running_reqs,
            "num_waiting_reqs": s.num_queue_reqs,
            "num_waiting_uncached_tokens": s.waiting_uncached_tokens,
            "num_used_tokens": s.num_used_tokens,
            "num_total_tokens": s.num_used_tokens + s.waiting_uncached_tokens,
            "max_total_num_tokens": s.max_total_num_tokens,
            "max_running_requests": s.max_running_requests,
            "token_usage": s.num_used_tokens as f64 / cap,
            "gen_throughput": s.gen_throughput,
            "cache_hit_rate": s.cache_hit_rate,
            "utilization": if s.num_running_reqs + s.num_queue_reqs > 0 { 1.0 } else { 0.0 },
            "memory": {"token_capacity": s.max_total_num_tokens},
            "queues": {"waiting": s.num_queue_reqs, "retracted": s.retracted_total},
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05, 1);
        h.observe(0.5, 2);
        h.observe(5.0, 1);
        let mut s = String::new();
        h.write(&mut s, "x", "help", "a=\"b\"");
        assert!(s.contains("x_bucket{a=\"b\",le=\"0.1\"} 1\n"));
        assert!(s.contains("x_bucket{a=\"b\",le=\"1\"} 3\n"));
        assert!(s.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"));
        assert!(s.contains("x_count{a=\"b\"} 4"));
    }
}
