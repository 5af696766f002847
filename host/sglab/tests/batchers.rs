//! Exact decisions of the built-in batching plugins on scripted events,
//! through the real runtime.

#[path = "harness/script.rs"]
mod script;

use script::*;
use sglab::plugin::Kind;
use sglab_core::policy::{BatchPolicy, NodeState};

#[test]
fn token_budget_holds_the_total_in_arrival_order() {
    let mut b = batcher("token-budget", r#"{"budget": 1000}"#, 2);
    for (id, input, out) in [(0, 400, 100), (1, 300, 100), (2, 50, 50), (3, 10, 10)] {
        b.on_arrival(&request(id, 0, input, out)).unwrap();
    }
    // 500 + 400 + 100 = 1000 fits; the fourth (20) would make 1020.
    assert_eq!(poll(&mut b, 0), [0, 1, 2]);
    b.on_nodes(&changed(2, 2, vec![busy(0, 2, 450, 150), busy(1, 1, 300, 100)])).unwrap();
    assert_eq!(poll(&mut b, 1), Vec::<u64>::new());
    // Request 2 finished: node 0 holds 400 + 100, 900 in all, so 20 more fit.
    b.on_nodes(&changed(3, 2, vec![busy(0, 1, 400, 100)])).unwrap();
    assert_eq!(poll(&mut b, 2), [3]);
    // Larger than the budget: it waits until nothing is in flight, then goes alone.
    b.on_arrival(&request(4, 3, 1900, 100)).unwrap();
    b.on_arrival(&request(5, 3, 1, 1)).unwrap();
    b.on_nodes(&changed(4, 2, vec![busy(0, 2, 410, 110)])).unwrap();
    assert_eq!(poll(&mut b, 4), Vec::<u64>::new());
    b.on_nodes(&changed(5, 2, vec![NodeState::idle(0), NodeState::idle(1)])).unwrap();
    assert_eq!(poll(&mut b, 5), [4]);
    b.on_nodes(&changed(6, 2, vec![busy(1, 1, 1900, 100)])).unwrap();
    assert_eq!(poll(&mut b, 6), Vec::<u64>::new(), "2000 + 2 > 1000: request 5 waits");
}

#[test]
fn token_budget_per_node_fills_the_least_loaded_node() {
    let mut b = batcher("token-budget", r#"{"budget": 600, "per_node": true}"#, 2);
    for (id, input) in [(0, 450), (1, 450), (2, 150), (3, 50)] {
        b.on_arrival(&request(id, 0, input, 50)).unwrap();
    }
    // 500 to each node; 200 fits on neither, and 100 must not overtake it.
    assert_eq!(poll(&mut b, 0), [0, 1]);
    b.on_nodes(&changed(2, 2, vec![busy(0, 1, 450, 50), busy(1, 1, 450, 10)])).unwrap();
    assert_eq!(poll(&mut b, 1), Vec::<u64>::new());
    // Node 1 is down and node 0 is free: only node 0 counts.
    let down = NodeState { healthy: false, ..NodeState::idle(1) };
    b.on_nodes(&changed(3, 2, vec![NodeState::idle(0), down])).unwrap();
    assert_eq!(poll(&mut b, 2), [2, 3]);
}

#[test]
fn sjf_releases_shortest_first_and_ages_long_prompts() {
    let mut b = batcher("sjf", r#"{"cap": 2, "max_wait_ms": 1000}"#, 1);
    for (id, input) in [(0, 50), (1, 10), (2, 30), (3, 20)] {
        b.on_arrival(&request(id, 0, input, 8)).unwrap();
    }
    assert_eq!(poll(&mut b, 0), [1, 3]);
    b.on_nodes(&changed(2, 1, vec![busy(0, 2, 30, 16)])).unwrap();
    assert_eq!(poll(&mut b, 100), Vec::<u64>::new(), "the cap holds");
    b.on_nodes(&changed(3, 1, vec![busy(0, 1, 10, 8)])).unwrap();
    assert_eq!(poll(&mut b, 500), [2]);
    // A 5-token prompt arrives, but request 0 has waited 1.1 s > 1 s: it goes first.
    b.on_arrival(&request(4, 600, 5, 8)).unwrap();
    b.on_nodes(&changed(4, 1, vec![busy(0, 1, 30, 8)])).unwrap();
    assert_eq!(poll(&mut b, 1100), [0]);
    b.on_nodes(&changed(5, 1, vec![busy(0, 2, 80, 16)])).unwrap();
    assert_eq!(poll(&mut b, 1100), Vec::<u64>::new());
    b.on_nodes(&changed(6, 1, vec![NodeState::idle(0)])).unwrap();
    assert_eq!(poll(&mut b, 1200), [4]);
}

#[test]
fn priority_releases_most_urgent_first_fifo_within_a_level() {
    let prios = [0, 5, 1, 5, -1];
    let mut b = batcher("priority", r#"{"cap": 2}"#, 1);
    for (id, p) in prios.iter().enumerate() {
        b.on_arrival(&sglab_core::policy::RequestInfo { priority: *p, ..request(id as u64, 0, 10, 10) }).unwrap();
    }
    assert_eq!(poll(&mut b, 0), [1, 3]);
    b.on_nodes(&changed(2, 1, vec![busy(0, 1, 10, 10)])).unwrap();
    assert_eq!(poll(&mut b, 1), [2]);
    b.on_nodes(&changed(3, 1, vec![NodeState::idle(0)])).unwrap();
    assert_eq!(poll(&mut b, 2), [0, 4]);

    let mut b = batcher("priority", "{}", 1);
    for (id, p) in prios.iter().enumerate() {
        b.on_arrival(&sglab_core::policy::RequestInfo { priority: *p, ..request(id as u64, 0, 10, 10) }).unwrap();
    }
    assert_eq!(poll(&mut b, 0), [1, 3, 2, 0, 4], "no cap: all at once, most urgent first");
}

#[test]
fn max_concurrency_per_node_adds_up_free_slots_of_healthy_nodes() {
    let mut b = batcher("max-concurrency", r#"{"cap": 2, "per_node": true}"#, 2);
    for id in 0..6 {
        b.on_arrival(&request(id, 0, 10, 10)).unwrap();
    }
    assert_eq!(poll(&mut b, 0), [0, 1, 2, 3]);
    b.on_nodes(&changed(2, 2, vec![busy(0, 2, 20, 20), busy(1, 1, 10, 10)])).unwrap();
    assert_eq!(poll(&mut b, 1), [4]);
    let down = NodeState { healthy: false, ..NodeState::idle(1) };
    b.on_nodes(&changed(3, 2, vec![down])).unwrap();
    assert_eq!(poll(&mut b, 2), Vec::<u64>::new(), "node 0 is full and node 1 is down");
}

#[test]
fn batcher_configs_are_checked_and_errors_name_the_key() {
    for (name, config, key) in [
        ("token-budget", "{}", "budget"),
        ("token-budget", r#"{"budget": 0}"#, "budget"),
        ("token-budget", r#"{"budget": 10, "per_nod": true}"#, "per_nod"),
        ("sjf", r#"{"cap": 0}"#, "cap"),
        ("sjf", r#"{"cap": 2, "max_wait_ms": 0}"#, "max_wait_ms"),
        ("priority", r#"{"cap": -1}"#, "cap"),
        ("max-concurrency", r#"{"cap": 2, "per_node": "yes"}"#, "per_node"),
    ] {
        let err = config_error(name, Kind::Batching, config);
        assert!(err.contains(key), "{name} {config}: {err}");
    }
}
