//! A Python router next to its Rust built-in, through the real runtime:
//! component size, compile, cached load, instantiate + create, first call,
//! and the per-decision cost (one changed node's delta, which goes with
//! `route`) at 8 and 64 nodes. `scripts/bench-python.sh` builds the Python
//! example and runs this with `SGLAB_BENCH_PY_ROUTER` set to it.

use std::path::Path;
use std::time::{Duration, Instant};

use sglab::plugin::{Kind, Limits, Loaded, RunClock, Runtime, WasmRouter};
use sglab_core::policy::{NodeState, NodeUpdate, RequestInfo, RoutePolicy};

const CALLS: u32 = 20_000;
const ROUNDS: usize = 5;

fn limits() -> Limits {
    Limits { seed: 1, ..Limits::default() }
}

fn request(id: u64) -> RequestInfo {
    RequestInfo {
        id,
        arrival_ns: id,
        input_tokens: 512,
        max_new_tokens: 128,
        prefix_hashes: (0..hashes()).map(|i| i * 7919 + id).collect(),
        prefix_block_tokens: 16,
        priority: 0,
        session: None,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Best batch, in ns per decision: `delta` and `route` say which calls
/// each step makes (both: one changed node's delta, then route).
fn per_decision(loaded: &Loaded, nodes: u32) -> f64 {
    cost(loaded, nodes, true, true)
}

fn cost(loaded: &Loaded, nodes: u32, delta: bool, route: bool) -> f64 {
    let mut r = WasmRouter::new(loaded, "{}", limits(), RunClock::new()).expect("create");
    r.on_nodes(&NodeUpdate { generation: 1, node_count: nodes, changed: (0..nodes).map(NodeState::idle).collect() })
        .expect("on-nodes");
    let mut generation = 1;
    let mut step = |i: u32| {
        if delta {
            generation += 1;
            let mut s = NodeState::idle(i % nodes);
            s.in_flight = i % 7;
            r.on_nodes(&NodeUpdate { generation, node_count: nodes, changed: vec![s] }).expect("on-nodes");
        }
        if route {
            r.route(&request(u64::from(i))).expect("route");
        }
    };
    (0..CALLS / 10).for_each(&mut step);
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        (0..CALLS).for_each(&mut step);
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    let Some(py) = std::env::var_os("SGLAB_BENCH_PY_ROUTER") else {
        eprintln!("set SGLAB_BENCH_PY_ROUTER to a built Python router (scripts/bench-python.sh does)");
        return;
    };
    let py = py.to_string_lossy().into_owned();
    // A fresh cache: the first load compiles.
    let cache = std::env::temp_dir().join(format!("sglab-bench-python-{}", std::process::id()));
    // SAFETY: set before any thread reads the environment (the runtime is made below).
    unsafe { std::env::set_var("SGLAB_CACHE_DIR", &cache) };
    let rt = Runtime::get();
    let size = std::fs::metadata(&py).expect("the Python router").len();
    let t = Instant::now();
    let loaded = rt.load(&py, Path::new("."), Kind::Routing).expect("load (compile)");
    let compile = t.elapsed();
    let t = Instant::now();
    let loaded2 = rt.load(&py, Path::new("."), Kind::Routing).expect("load (cached)");
    let cached = t.elapsed();
    drop(loaded2);
    let t = Instant::now();
    let mut r = WasmRouter::new(&loaded, "{}", limits(), RunClock::new()).expect("create");
    let create = t.elapsed();
    r.on_nodes(&NodeUpdate { generation: 1, node_count: 8, changed: (0..8).map(NodeState::idle).collect() })
        .expect("on-nodes");
    let t = Instant::now();
    r.route(&request(0)).expect("first route");
    let first = t.elapsed();
    println!("Python router {} ({}): {:.1} MB", loaded.meta.name, py, size as f64 / 1e6);
    println!("  compile (first load)       {}", ms(compile));
    println!("  load from the cache        {}", ms(cached));
    println!("  instantiate + create       {}", ms(create));
    println!("  first route (8 nodes)      {}", ms(first));
    let rust = rt.load("least-inflight", Path::new("."), Kind::Routing).expect("built-in");
    for nodes in [8, 64] {
        let (p, r) = (per_decision(&loaded, nodes), per_decision(&rust, nodes));
        println!(
            "  delta + route, {nodes:>2} nodes: Python {:>7.2} us, Rust {:>5.2} us ({:.0}x)",
            p / 1e3,
            r / 1e3,
            p / r
        );
    }
    // Contract 0.2: a delta is held by the host and goes with the next
    // `route`, so "delta alone" is the host's bookkeeping, and the
    // difference to "no change" is the delta's cost inside the call.
    println!(
        "  of which, 8 nodes: delta alone (host side) {:.2} us, route with no node change {:.2} us",
        cost(&loaded, 8, true, false) / 1e3,
        cost(&loaded, 8, false, true) / 1e3
    );
    let _ = std::fs::remove_dir_all(&cache);
}

/// Prefix hashes per request: 32, as a 512-token prompt has
/// (`SGLAB_BENCH_HASHES` overrides, to see what the list costs).
fn hashes() -> u64 {
    std::env::var("SGLAB_BENCH_HASHES").ok().and_then(|v| v.parse().ok()).unwrap_or(32)
}
