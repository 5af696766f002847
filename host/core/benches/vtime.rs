//! The virtual-time event loop alone: engines, session, dispatcher and
//! records, with two native strategies (release at once, round-robin) in
//! place of WebAssembly plugins and records counted instead of written.
//! `cargo bench -p sglab-core --bench vtime` (see docs/performance.md; the
//! whole run, plugins and writer included, is `scripts/bench-virtual.sh`).

use std::sync::Arc;
use std::time::Instant;

use sglab_core::Nanos;
use sglab_core::arrival::schedule;
use sglab_core::config::{Arrival, Backend, Process, Workload};
use sglab_core::policy::native::{Immediate, RoundRobin};
use sglab_core::session::{Act, Session, SessionConfig};
use sglab_core::sim::{EngineConfig, EngineKind, EngineStats, Faults, SchedulerConfig, cost};
use sglab_core::vtime::{self, Host, HostEvent, Settings, VirtualNode};
use sglab_core::workload::{Approx, generate};

struct Count(u64);

impl Host for Count {
    fn now(&mut self, _: Nanos) {}
    fn act(&mut self, act: Act) {
        if let Act::Record(r) = act {
            self.0 += u64::from(r.decode_length > 0);
        }
    }
    fn sample(&mut self, _: usize, _: Nanos, _: &EngineStats) {}
    fn interrupt(&mut self) -> Option<HostEvent> {
        None
    }
}

fn case(name: &str, nodes: usize, requests: u32, rate: f64) {
    let w = Workload {
        num_requests: Some(requests),
        input_len: 512,
        output_len: 128,
        range_ratio: 1.0,
        ..Workload::default()
    };
    let g = generate(&w, 1, None, &Approx).expect("random workload");
    let (specs, hashes) = (g.specs, g.prefix_hashes);
    let arrival = Arrival { process: Process::Poisson, rate, ..Arrival::default() };
    let sched = schedule(&arrival, &specs, 1).expect("poisson schedule");
    let profile = cost::builtin("llama-3.1-8b-h100").expect("built-in profile");
    let engine = EngineConfig {
        kind: EngineKind::Scheduler { cfg: SchedulerConfig::for_profile(&profile), profile: Box::new(profile) },
        faults: Faults::default(),
        seed: 1,
    };
    let specs: Arc<[_]> = specs.into();
    let cfg = SessionConfig {
        max_duration: None,
        max_errors: None,
        node_known: true,
        node_names: (0..nodes).map(|i| format!("sim-{i}")).collect(),
    };
    let settings = Settings {
        rtt: 0,
        timeout: 600_000_000_000,
        token_times: true,
        stream: true,
        backend: Backend::Sglang,
        sample_every: None,
        warmup: 0,
        quiet_decode: true,
    };
    let mut best: Option<(f64, vtime::LoopStats)> = None;
    for _ in 0..5 {
        let mut session = Session::new(
            specs.clone(),
            hashes.clone(),
            sched.clone(),
            cfg.clone(),
            Immediate::default(),
            RoundRobin::default(),
        );
        let mut engines: Vec<VirtualNode> = (0..nodes).map(|_| VirtualNode::new(&engine)).collect();
        let mut host = Count(0);
        let t = Instant::now();
        let stats = vtime::run(&mut session, &mut engines, &specs, &settings, &mut host).expect("no stall");
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(host.0, u64::from(requests), "every request finished");
        if best.as_ref().is_none_or(|(b, _)| wall < *b) {
            best = Some((wall, stats));
        }
    }
    let (wall, s) = best.expect("five rounds");
    let sim = s.end as f64 / 1e9;
    println!(
        "{name:<44} wall {wall:7.3} s  simulated {sim:8.1} s  speed-up {:7.0}x  {:>8.0} passes/s  {:6.1} M tokens/s",
        sim / wall,
        s.forward_passes as f64 / wall,
        s.tokens as f64 / wall / 1e6
    );
}

fn main() {
    // `cargo bench --bench vtime -- 4` runs only the cases whose name holds "4".
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let cases: [(&str, usize, u32, f64); 3] = [
        ("1 node, 10,000 random requests, 40 req/s", 1, 10_000, 40.0),
        ("1 node, 100,000 random requests, 40 req/s", 1, 100_000, 40.0),
        ("4 nodes, 10,000 random requests, 160 req/s", 4, 10_000, 160.0),
    ];
    for (name, nodes, requests, rate) in cases {
        if only.is_empty() || only.iter().any(|o| name.contains(o.as_str())) {
            case(name, nodes, requests, rate);
        }
    }
}
