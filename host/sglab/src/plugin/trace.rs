//! `--trace-decisions`: one JSON line per plugin decision in
//! `decisions.jsonl` — every batcher poll that released something and every
//! routing decision, with the time, the request(s), the answer, the
//! in-flight counts the router saw, and the lines the plugin logged during
//! the call (its reasons).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde_json::json;
use sglab_core::policy::{NodeUpdate, RequestId, RouteDecision};

/// Most reason lines kept per decision.
const REASONS: usize = 8;

/// The shared decision log of one run.
#[derive(Debug)]
pub struct DecisionTrace {
    out: Mutex<BufWriter<File>>,
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

impl DecisionTrace {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self { out: Mutex::new(BufWriter::new(File::create(path)?)) })
    }

    fn line(&self, v: serde_json::Value) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not stop the run: the trace is best effort and
        // `flush` reports the error at the end.
        let mut line = v.to_string();
        line.push('\n');
        let _ = out.write_all(line.as_bytes());
    }

    /// A batcher poll at `now_ns` released `ids`.
    pub fn release(&self, now_ns: u64, ids: &[RequestId], wake_at: Option<u64>, reasons: Vec<String>) {
        let mut v = json!({"t_ms": ms(now_ns), "plugin": "batching", "released": ids});
        if let Some(w) = wake_at {
            v["wake_at_ms"] = json!(ms(w));
        }
        if !reasons.is_empty() {
            v["reasons"] = json!(reasons);
        }
        self.line(v);
    }

    /// The router answered `decision` for request `id` at `now_ns`, having seen `in_flight`.
    pub fn route(&self, now_ns: u64, id: RequestId, decision: &RouteDecision, in_flight: &[u32], reasons: Vec<String>) {
        let mut v = json!({"t_ms": ms(now_ns), "plugin": "routing", "id": id, "in_flight": in_flight});
        match decision {
            RouteDecision::Dispatch(n) => v["node"] = json!(n),
            RouteDecision::Defer(until) => {
                v["deferred"] = json!(true);
                if let Some(u) = until {
                    v["until_ms"] = json!(ms(*u));
                }
            }
            RouteDecision::Reject(r) => v["rejected"] = json!(r.as_str()),
        }
        if !reasons.is_empty() {
            v["reasons"] = json!(reasons);
        }
        self.line(v);
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> std::io::Result<()> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// What a traced plugin instance keeps: the trace, and (for routers) the
/// in-flight counts from the node deltas it was sent.
#[derive(Debug)]
pub struct Tracer {
    /// The run's trace.
    pub trace: std::sync::Arc<DecisionTrace>,
    /// In-flight requests per node, as the plugin last saw them.
    pub in_flight: Vec<u32>,
}

impl Tracer {
    /// Applies a node delta.
    pub fn nodes(&mut self, update: &NodeUpdate) {
        self.in_flight.resize(update.node_count as usize, 0);
        for s in &update.changed {
            if let Some(slot) = self.in_flight.get_mut(s.index as usize) {
                *slot = s.in_flight;
            }
        }
    }
}

/// Keeps at most [`REASONS`] of the lines a plugin logged during a call.
pub fn take_reasons(buf: &mut Option<Vec<String>>) -> Vec<String> {
    buf.as_mut().map(|b| std::mem::take(b).into_iter().take(REASONS).collect()).unwrap_or_default()
}
