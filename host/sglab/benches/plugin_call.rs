//! Cost of plugin calls through the real runtime (engine, sandbox, deadline,
//! WIT conversions): `cargo bench -p sglab --bench plugin_call`.
//!
//! Prints the best of several batches per case, in nanoseconds per call.
//! Compare ratios within one run; absolute numbers on shared VMs are noisy.

use std::path::Path;
use std::time::{Duration, Instant};

use sglab::plugin::{Kind, Limits, RunClock, Runtime, WasmBatcher, WasmRouter};
use sglab_core::dispatch::Dispatcher;
use sglab_core::policy::{BatchPolicy, NodeState, NodeUpdate, RequestInfo, RoutePolicy};

const BATCH: u32 = 100_000;
const ROUNDS: usize = 5;

fn best(name: &str, mut f: impl FnMut(u32)) {
    for i in 0..BATCH / 10 {
        f(i);
    }
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..BATCH {
            f(i);
        }
        best = best.min(t.elapsed());
    }
    println!("{name:<60} {:>8.0} ns/call", best.as_nanos() as f64 / BATCH as f64);
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_millis(10),
        backstop: Duration::from_secs(1),
        output_bytes: 4096,
        seed: 1,
    }
}

fn request(id: u64) -> RequestInfo {
    RequestInfo {
        id,
        arrival_ns: id,
        input_tokens: 512,
        max_new_tokens: 128,
        prefix_hashes: (0..32).map(|i| i * 7919 + id).collect(),
        prefix_block_tokens: 16,
        priority: 0,
        session: None,
    }
}

fn all_nodes(n: u32) -> NodeUpdate {
    NodeUpdate { generation: 1, node_count: n, changed: (0..n).map(NodeState::idle).collect() }
}

fn router_with(name: &str, config: &str, nodes: u32) -> WasmRouter {
    let rt = Runtime::get();
    let loaded = rt.load(name, Path::new("."), Kind::Routing).expect("built-in router");
    let mut r = WasmRouter::new(&loaded, config, limits(), RunClock::new()).expect("create");
    if loaded.meta.capabilities.contains(&"prompt-text") {
        r.grant_prompts(prompts());
    }
    r.on_nodes(&all_nodes(nodes)).expect("on-nodes");
    r
}

fn router(nodes: u32) -> WasmRouter {
    router_with("round-robin", "{}", nodes)
}

/// 1,024 prompts of about 2,000 characters in 64 groups sharing a
/// 1,500-character prefix (what cache-aware's tree sees).
fn prompts() -> std::sync::Arc<Vec<sglab_core::workload::Prompt>> {
    let text = |i: usize| {
        let prefix: String = (0..300).map(|w| format!("g{}w{w} ", i % 64)).collect();
        let own: String = (0..100).map(|w| format!("q{i}w{w} ")).collect();
        prefix + &own
    };
    std::sync::Arc::new((0..1024).map(|i| sglab_core::workload::Prompt::Text(text(i))).collect())
}

const ROUTERS: &[(&str, &str)] = &[
    ("round-robin", "{}"),
    ("random", "{}"),
    ("least-inflight", "{}"),
    ("power-of-two", "{}"),
    ("least-tokens", "{}"),
    ("sticky", "{}"),
    ("cache-aware", "{}"),
    ("prefix-hash", "{}"),
    ("weighted-score", "{}"),
];

const BATCHERS: &[(&str, &str)] = &[
    ("immediate", "{}"),
    ("max-concurrency", r#"{"cap": 1000000}"#),
    ("static-batch", r#"{"size": 1}"#),
    ("token-budget", r#"{"budget": 1000000000000}"#),
    ("sjf", r#"{"cap": 1000000}"#),
    ("priority", "{}"),
];

fn main() {
    println!("sglab plugin call costs (built-ins, wasmtime 48, concurrency off, epoch deadline on)");
    println!("route = one decision with no node change; +delta = on-nodes(1 changed) + route, as in a run");
    for &(name, config) in ROUTERS {
        for n in [8u32, 64] {
            let mut r = router_with(name, config, n);
            // Requests cycle over 1,024 ids (the prompts) and 64 prefixes.
            let req = |i: u32| {
                let mut q = request(u64::from(i % 1024));
                q.prefix_hashes = (0..32).map(|b| u64::from(i % 64) * 1000 + b).collect();
                q.session = Some(u64::from(i % 256));
                q
            };
            best(&format!("{name}: route, {n} nodes"), |i| {
                r.route(&req(i)).expect("route");
            });
            let mut r = router_with(name, config, n);
            let mut generation = 1;
            best(&format!("{name}: +delta, {n} nodes"), |i| {
                generation += 1;
                let mut s = NodeState::idle(i % n);
                s.in_flight = i % 7;
                r.on_nodes(&NodeUpdate { generation, node_count: n, changed: vec![s] }).expect("on-nodes");
                r.route(&req(i)).expect("route");
            });
        }
    }
    let rt = Runtime::get();
    for &(name, config) in BATCHERS {
        let loaded = rt.load(name, Path::new("."), Kind::Batching).expect("built-in batcher");
        let mut b = WasmBatcher::new(&loaded, config, limits(), RunClock::new()).expect("create");
        b.on_nodes(&all_nodes(8)).expect("on-nodes");
        best(&format!("{name}: on-arrival + poll (releases 1), 8 nodes"), |i| {
            b.on_arrival(&request(i as u64)).expect("on-arrival");
            b.poll(i as u64).expect("poll");
        });
    }
    let loaded = rt.load("immediate", Path::new("."), Kind::Batching).expect("built-in immediate");

    // The dispatcher's full per-request path (arrive, poll, deltas, route,
    // on-dispatched), finish excluded, over 8 nodes.
    let n = 8;
    let mut r = router(n);
    let mut b = WasmBatcher::new(&loaded, "{}", limits(), RunClock::new()).expect("create");
    let total = BATCH as usize * (ROUNDS + 1) + BATCH as usize / 10;
    let mut d = Dispatcher::new(n as usize, total);
    let mut actions = Vec::new();
    let mut next = 0u64;
    best("dispatcher arrive + step (1 request, 8 nodes)", |_| {
        d.arrive(request(next), &mut b).expect("arrive");
        d.step(next, &mut b, &mut r, &mut actions).expect("step");
        actions.clear();
        next += 1;
    });
}
