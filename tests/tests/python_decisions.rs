//! The Python examples (examples/python/) against their Rust built-in
//! counterparts: the same scripted events through the real runtime give
//! exactly the same decisions, and the same bad configs the same errors.

use std::path::Path;
use std::time::Duration;

use sglab::plugin::{Kind, Limits, RunClock, Runtime, WasmBatcher, WasmRouter};
use sglab_core::policy::{
    BatchPolicy, Completion, NodeState, NodeUpdate, Outcome, RequestInfo, RouteDecision, RoutePolicy,
};
use sglab_tests::python_plugin;

fn limits() -> Limits {
    // Generous time: the point is the decisions, not the deadline.
    Limits { deadline: Duration::from_secs(1), backstop: Duration::from_secs(5), seed: 11, ..Limits::default() }
}

/// SplitMix64: the script's own generator.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn request(id: u64, arrival_ns: u64, input_tokens: u32) -> RequestInfo {
    RequestInfo {
        id,
        arrival_ns,
        input_tokens,
        max_new_tokens: 16,
        prefix_hashes: vec![id, id / 3],
        prefix_block_tokens: 16,
        priority: 0,
        session: None,
    }
}

fn completion(id: u64, node: u32) -> Completion {
    Completion {
        id,
        node,
        outcome: Outcome::Ok,
        ttft_ns: Some(1_000_000),
        latency_ns: 5_000_000,
        input_tokens: 64,
        output_tokens: 16,
    }
}

fn routers(config: &str) -> (WasmRouter, WasmRouter) {
    let rt = Runtime::get();
    let py = python_plugin("examples/python/least-inflight");
    let py = rt.load(&py.display().to_string(), Path::new("."), Kind::Routing).expect("Python least-inflight");
    let rs = rt.load("least-inflight", Path::new("."), Kind::Routing).expect("built-in least-inflight");
    let make = |l| WasmRouter::new(l, config, limits(), RunClock::new()).expect("create");
    (make(&py), make(&rs))
}

fn batchers(config: &str) -> (WasmBatcher, WasmBatcher) {
    let rt = Runtime::get();
    let py = python_plugin("examples/python/sjf");
    let py = rt.load(&py.display().to_string(), Path::new("."), Kind::Batching).expect("Python sjf");
    let rs = rt.load("sjf", Path::new("."), Kind::Batching).expect("built-in sjf");
    let make = |l| WasmBatcher::new(l, config, limits(), RunClock::new()).expect("create");
    (make(&py), make(&rs))
}

#[test]
fn python_least_inflight_decides_exactly_as_the_builtin() {
    const NODES: u32 = 6;
    for config in [r#"{"max_in_flight": 3}"#, "{}"] {
        let (mut py, mut rs) = routers(config);
        let mut rng = Mix(1);
        let mut states: Vec<NodeState> = (0..NODES).map(NodeState::idle).collect();
        let mut generation = 1;
        let all = NodeUpdate { generation, node_count: NODES, changed: states.clone() };
        py.on_nodes(&all).unwrap();
        rs.on_nodes(&all).unwrap();
        let (mut events, mut ties, mut defers, mut rejects) = (0, 0, 0, 0);
        let mut sent: Vec<(u64, u32)> = Vec::new();
        for id in 0..1_500u64 {
            match rng.below(10) {
                0..=2 => {
                    // One or two nodes change: small in-flight counts make
                    // ties common; about one in six is down.
                    let mut changed = Vec::new();
                    for _ in 0..1 + rng.below(2) {
                        let n = rng.below(u64::from(NODES)) as usize;
                        states[n].in_flight = rng.below(5) as u32;
                        states[n].healthy = rng.below(6) != 0;
                        changed.push(states[n]);
                    }
                    if rng.below(40) == 0 {
                        for s in &mut states {
                            s.healthy = false;
                        }
                        changed = states.clone();
                    }
                    generation += 1;
                    let u = NodeUpdate { generation, node_count: NODES, changed };
                    py.on_nodes(&u).unwrap();
                    rs.on_nodes(&u).unwrap();
                }
                3 if !sent.is_empty() => {
                    let (done, node) = sent.swap_remove(rng.below(sent.len() as u64) as usize);
                    py.on_first_token(done, node, id * 1000).unwrap();
                    rs.on_first_token(done, node, id * 1000).unwrap();
                    py.on_complete(&completion(done, node)).unwrap();
                    rs.on_complete(&completion(done, node)).unwrap();
                    events += 2;
                }
                _ => {
                    let healthy: Vec<&NodeState> = states.iter().filter(|s| s.healthy).collect();
                    let least = healthy.iter().map(|s| s.in_flight).min();
                    ties += usize::from(healthy.iter().filter(|s| Some(s.in_flight) == least).count() > 1);
                    let q = request(id, id * 1000, 64);
                    let (a, b) = (py.route(&q).unwrap(), rs.route(&q).unwrap());
                    assert_eq!(a, b, "config {config}, request {id}, nodes {states:?}");
                    match a {
                        RouteDecision::Dispatch(n) => {
                            py.on_dispatched(id, n, id * 1000).unwrap();
                            rs.on_dispatched(id, n, id * 1000).unwrap();
                            sent.push((id, n));
                            events += 1;
                        }
                        RouteDecision::Defer(_) => defers += 1,
                        RouteDecision::Reject(_) => rejects += 1,
                    }
                }
            }
            events += 1;
        }
        assert!(events >= 1_000, "{events} events");
        assert!(ties >= 100 && rejects >= 5, "ties {ties}, rejects {rejects}: the script must exercise them");
        if config != "{}" {
            assert!(defers >= 5, "max_in_flight defers: {defers}");
        }
    }
}

#[test]
fn python_sjf_releases_exactly_as_the_builtin() {
    let (mut py, mut rs) = batchers(r#"{"cap": 4, "max_wait_ms": 5}"#);
    let mut rng = Mix(2);
    let mut now = 0u64;
    let mut in_flight = 0u32;
    let mut queued: Vec<(u64, u32, u64)> = Vec::new(); // (id, tokens, arrival)
    let mut flying: Vec<u64> = Vec::new();
    let (mut events, mut aged, mut next_id) = (0, 0, 0u64);
    let node = |in_flight| NodeUpdate {
        generation: 0,
        node_count: 1,
        changed: vec![NodeState { in_flight, ..NodeState::idle(0) }],
    };
    for step in 0..1_200u64 {
        now += rng.below(3) * 1_000_000;
        match rng.below(4) {
            0 | 1 => {
                // Lengths in steps of 16: ties in length are common.
                let tokens = 16 * (1 + rng.below(6) as u32);
                let q = request(next_id, now, tokens);
                py.on_arrival(&q).unwrap();
                rs.on_arrival(&q).unwrap();
                queued.push((next_id, tokens, now));
                next_id += 1;
            }
            2 if !flying.is_empty() => {
                let id = flying.swap_remove(rng.below(flying.len() as u64) as usize);
                in_flight -= 1;
                let u = NodeUpdate { generation: step + 2, ..node(in_flight) };
                py.on_nodes(&u).unwrap();
                rs.on_nodes(&u).unwrap();
                py.on_complete(&completion(id, 0)).unwrap();
                rs.on_complete(&completion(id, 0)).unwrap();
                events += 1;
            }
            _ => {
                let (a, b) = (py.poll(now).unwrap(), rs.poll(now).unwrap());
                assert_eq!(a, b, "poll at step {step}, now {now}");
                for id in &a.release {
                    let i = queued.iter().position(|q| q.0 == *id).expect("released a queued request");
                    let (_, tokens, _) = queued.remove(i);
                    aged += usize::from(queued.iter().any(|q| q.1 < tokens));
                    flying.push(*id);
                    in_flight += 1;
                }
                if !a.release.is_empty() {
                    let u = NodeUpdate { generation: step + 2, ..node(in_flight) };
                    py.on_nodes(&u).unwrap();
                    rs.on_nodes(&u).unwrap();
                }
            }
        }
        events += 1;
    }
    assert!(events >= 1_000, "{events} events");
    assert!(aged >= 10, "ageing must release some longer prompt before a shorter one: {aged}");
}

#[test]
fn python_examples_take_the_same_config_keys_and_give_the_same_errors() {
    let rt = Runtime::get();
    let cases: [(&str, &str, Kind, &[&str]); 2] = [
        (
            "examples/python/least-inflight",
            "least-inflight",
            Kind::Routing,
            &[r#"{"max_in_flight": 0}"#, r#"{"max_in_flight": "x"}"#, r#"{"max_in_flight": -1}"#, r#"{"cap": 1}"#],
        ),
        (
            "examples/python/sjf",
            "sjf",
            Kind::Batching,
            &[
                "{}",
                r#"{"cap": 0}"#,
                r#"{"cap": 2, "max_wait_ms": 0}"#,
                r#"{"cap": 1.5}"#,
                r#"{"cap": 2, "max_wait": 3}"#,
                r#"{"cap": true}"#,
            ],
        ),
    ];
    for (dir, builtin, kind, configs) in cases {
        let py = rt.load(&python_plugin(dir).display().to_string(), Path::new("."), kind).unwrap();
        let rs = rt.load(builtin, Path::new("."), kind).unwrap();
        for config in configs {
            let cause = |l| {
                let e = match kind {
                    Kind::Routing => WasmRouter::new(l, config, limits(), RunClock::new()).err(),
                    Kind::Batching => WasmBatcher::new(l, config, limits(), RunClock::new()).err(),
                };
                match e.unwrap_or_else(|| panic!("{dir} accepted {config}")) {
                    sglab::plugin::LoadError::Config(msg) => msg,
                    other => panic!("{dir} with {config}: not a config error: {other}"),
                }
            };
            assert_eq!(cause(&py), cause(&rs), "{dir} with {config}");
        }
    }
}
