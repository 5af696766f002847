//! Quiet decode against per-token events: the same records.

use std::sync::Arc;

use super::*;
use crate::arrival::schedule;
use crate::config::{Arrival, Process, Workload};
use crate::policy::native::{Immediate, RoundRobin};
use crate::record::RequestRecord;
use crate::session::SessionConfig;
use crate::sim::{EngineConfig, EngineKind, Faults, SchedulerConfig, cost};
use crate::workload::{Approx, generate};

#[derive(Default)]
struct Keep(Vec<RequestRecord>, Vec<(usize, Nanos, EngineStats)>);

impl Host for Keep {
    fn now(&mut self, _: Nanos) {}
    fn act(&mut self, act: Act) {
        if let Act::Record(r) = act {
            self.0.push(r);
        }
    }
    fn sample(&mut self, node: usize, t: Nanos, s: &EngineStats) {
        self.1.push((node, t, s.clone()));
    }
    fn interrupt(&mut self) -> Option<HostEvent> {
        None
    }
}

/// Two nodes, 300 requests at `rate`, `kv` tokens of KV each.
fn run_case(s: &Settings, rate: f64, kv: u64, max_duration: Option<Nanos>) -> (Vec<RequestRecord>, Keep, LoopStats) {
    let w =
        Workload { num_requests: Some(300), input_len: 600, output_len: 160, range_ratio: 0.3, ..Workload::default() };
    let g = generate(&w, 5, None, &Approx).expect("random workload");
    let arrival = Arrival { process: Process::Poisson, rate, ..Arrival::default() };
    let sched = schedule(&arrival, &g.specs, 5).expect("poisson schedule");
    let profile = cost::builtin("llama-3.1-8b-h100").expect("built-in profile");
    let cfg = SchedulerConfig { max_total_tokens: kv, ..SchedulerConfig::for_profile(&profile) };
    let engine = EngineConfig {
        kind: EngineKind::Scheduler { cfg, profile: Box::new(profile) },
        faults: Faults::default(),
        seed: 1,
    };
    let specs: Arc<[RequestSpec]> = g.specs.into();
    let names = vec!["a".to_owned(), "b".to_owned()];
    let cfg = SessionConfig { max_duration, max_errors: None, node_known: true, node_names: names };
    let mut session =
        Session::new(specs.clone(), g.prefix_hashes, sched, cfg, Immediate::default(), RoundRobin::default());
    let mut nodes: Vec<VirtualNode> = (0..2).map(|_| VirtualNode::new(&engine)).collect();
    let mut host = Keep::default();
    let stats = run(&mut session, &mut nodes, &specs, s, &mut host).expect("no stall");
    let mut recs = std::mem::take(&mut host.0);
    recs.sort_by_key(|r| r.id);
    (recs, host, stats)
}

fn settings() -> Settings {
    Settings {
        rtt: 0,
        timeout: 600_000_000_000,
        token_times: true,
        stream: true,
        backend: Backend::Sglang,
        sample_every: Some(250_000_000),
        warmup: 2,
        quiet_decode: true,
    }
}

/// Runs a case quietly and loudly; asserts the same outcome and returns
/// the records.
fn same_both_ways(s: Settings, rate: f64, kv: u64, max_duration: Option<Nanos>) -> Vec<RequestRecord> {
    let (quiet, qh, qs) = run_case(&s, rate, kv, max_duration);
    let (loud, lh, ls) = run_case(&Settings { quiet_decode: false, ..s }, rate, kv, max_duration);
    assert_eq!(quiet.len(), loud.len());
    for (q, l) in quiet.iter().zip(&loud) {
        assert_eq!(q, l, "request {}", q.id);
    }
    assert_eq!(qh.1, lh.1, "server samples");
    assert_eq!(qs, ls, "loop counters");
    quiet
}

#[test]
fn quiet_decode_gives_the_same_records_under_timeouts() {
    // 1.5 s timeouts under heavy load: many requests end mid-stream.
    let s = Settings { timeout: 1_500_000_000, ..settings() };
    let recs = same_both_ways(s, 90.0, 60_000, None);
    let cut = recs.iter().filter(|r| !r.error.is_empty() && r.decode_length > 0).count();
    assert!(cut > 20, "{cut} requests timed out mid-stream");
    assert!(recs.iter().any(|r| r.error.is_empty()));
}

#[test]
fn quiet_decode_gives_the_same_records_when_the_run_is_stopped() {
    // max_duration cancels whatever is in flight at 3 s.
    let recs = same_both_ways(settings(), 60.0, 60_000, Some(3_000_000_000));
    assert!(recs.iter().filter(|r| r.decode_length > 0 && !r.error.is_empty()).count() > 5);
}

#[test]
fn quiet_decode_gives_the_same_records_unstreamed_and_without_token_times() {
    let s = Settings { stream: false, timeout: 2_000_000_000, ..settings() };
    same_both_ways(s, 80.0, 60_000, None);
    let s = Settings { token_times: false, timeout: 2_000_000_000, ..settings() };
    same_both_ways(s, 80.0, 60_000, None);
}
