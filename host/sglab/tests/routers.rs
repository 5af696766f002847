//! Exact decisions of the built-in routing plugins on scripted events,
//! through the real runtime.

#[path = "harness/script.rs"]
mod script;

use std::sync::Arc;

use script::*;
use sglab::plugin::Kind;
use sglab_core::policy::{NodeState, RequestInfo, RouteDecision, RoutePolicy, ServerSnapshot};

fn dispatch(r: &mut impl RoutePolicy, req: &RequestInfo) -> u32 {
    match r.route(req).expect("route") {
        RouteDecision::Dispatch(n) => n,
        other => panic!("request {} not dispatched: {other:?}", req.id),
    }
}

fn loads(generation: u64, l: &[(u32, bool)]) -> sglab_core::policy::NodeUpdate {
    let states = l
        .iter()
        .enumerate()
        .map(|(i, &(in_flight, healthy))| NodeState { in_flight, healthy, ..NodeState::idle(i as u32) })
        .collect();
    changed(generation, l.len() as u32, states)
}

#[test]
fn cache_aware_follows_sglang_router_thresholds() {
    let texts = [
        "the quick brown fox jumps over",               // 0: no match, equal loads -> node 0
        "completely different text",                    // 1: no match -> least loaded, node 1
        "the quick brown fox jumps over the lazy dog",  // 2: 30/43 matched > 0.3 -> node 0
        "the quick brown fox and more",                 // 3: loads 5/1: diff 4 is not > 4 -> cache, node 0
        "the quick brown fox zzz",                      // 4: loads 6/1: diff 5 > 4, 6 > 1.5 -> node 1
        "the quick brown fox again",                    // 5: loads 16/11: 16 <= 16.5, balanced -> cache, node 0
        "the quick brown fox again and again",          // 6: loads 17/11: 17 > 16.5 -> node 1
        "the zebra crossing is somewhere else",         // 7: 4/36 matched <= 0.3 -> least loaded, node 1
        "the quick brown fox jumps over the lazy dog!", // 8: node 0 down -> its tree is wiped, first healthy: 1
        "the quick brown fox jumps over the lazy dog!", // 9: node 0 back, equal loads: affinity moved -> 1
    ];
    let config = r#"{"balance_abs_threshold": 4, "balance_rel_threshold": 1.5}"#;
    let mut r = router("cache-aware", config, 2);
    r.grant_prompts(Arc::new(texts.iter().map(|t| sglab_core::workload::Prompt::Text(t.to_string())).collect()));
    let script: [(&[(u32, bool)], u32); 10] = [
        (&[(0, true), (0, true)], 0),
        (&[(1, true), (0, true)], 1),
        (&[(1, true), (1, true)], 0),
        (&[(5, true), (1, true)], 0),
        (&[(6, true), (1, true)], 1),
        (&[(16, true), (11, true)], 0),
        (&[(17, true), (11, true)], 1),
        (&[(3, true), (2, true)], 1),
        (&[(0, false), (2, true)], 1),
        (&[(1, true), (1, true)], 1),
    ];
    for (id, (state, want)) in script.iter().enumerate() {
        r.on_nodes(&loads(id as u64 + 2, state)).unwrap();
        assert_eq!(dispatch(&mut r, &request(id as u64, 0, 8, 8)), *want, "request {id}: {}", texts[id]);
    }
}

#[test]
fn cache_aware_without_prompt_text_routes_by_load() {
    // The host grants text only to plugins that ask; with none, every match
    // rate is 0 and the least-loaded node (lowest index on ties) is chosen.
    let mut r = router("cache-aware", "{}", 3);
    r.on_nodes(&loads(2, &[(2, true), (1, true), (1, true)])).unwrap();
    assert_eq!(dispatch(&mut r, &request(0, 0, 8, 8)), 1);
}

fn blocks(id: u64, hashes: &[u64]) -> RequestInfo {
    RequestInfo { prefix_hashes: hashes.to_vec(), ..request(id, 0, 16 * hashes.len() as u32, 8) }
}

#[test]
fn prefix_hash_keeps_a_prefix_on_one_node_within_the_load_bound() {
    let mut r = router("prefix-hash", r#"{"prefix_blocks": 2}"#, 4);
    // The key is the hash of the first two blocks: later blocks do not matter.
    let homes: Vec<u32> = (0..40u64).map(|k| dispatch(&mut r, &blocks(k, &[k, 1000 + k, 7]))).collect();
    for k in 0..40u64 {
        assert_eq!(dispatch(&mut r, &blocks(100 + k, &[k, 1000 + k, 99, 98])), homes[k as usize], "key {k}");
    }
    let per_node: Vec<usize> = (0..4).map(|n| homes.iter().filter(|&&h| h == n).count()).collect();
    assert!(per_node.iter().all(|&c| c >= 4), "40 keys spread over 4 nodes: {per_node:?}");
    // Bound with 2 in flight in all: ceil(1.25 × 3 / 4) = 1, so the home node
    // (holding 2) passes the request on, always to the same next node.
    let home = homes[0];
    let mut state = [(0, true); 4];
    state[home as usize].0 = 2;
    r.on_nodes(&loads(2, &state)).unwrap();
    let moved = dispatch(&mut r, &blocks(200, &[0, 1000, 7]));
    assert_ne!(moved, home);
    assert_eq!(dispatch(&mut r, &blocks(201, &[0, 1000, 5])), moved);
    // One in flight everywhere: the bound is ceil(1.25 × 5 / 4) = 2, and the
    // home node takes the prefix back.
    r.on_nodes(&loads(3, &[(1, true); 4])).unwrap();
    assert_eq!(dispatch(&mut r, &blocks(202, &[0, 1000])), home);
}

#[test]
fn prefix_hash_moves_only_the_keys_of_a_node_that_goes_down() {
    let mut r = router("prefix-hash", "{}", 4);
    let homes: Vec<u32> = (0..60u64).map(|k| dispatch(&mut r, &blocks(k, &[k]))).collect();
    r.on_nodes(&loads(2, &[(0, true), (0, true), (0, false), (0, true)])).unwrap();
    for k in 0..60u64 {
        let now = dispatch(&mut r, &blocks(100 + k, &[k]));
        if homes[k as usize] == 2 {
            assert_ne!(now, 2, "key {k} left the down node");
        } else {
            assert_eq!(now, homes[k as usize], "key {k} stays where it was");
        }
    }
}

fn with_server(index: u32, queued: u32, kv_usage: f32) -> NodeState {
    let server = ServerSnapshot { running: 0, queued, kv_usage, cache_hit_rate: 0.0, age_ns: 0 };
    NodeState { server: Some(server), ..NodeState::idle(index) }
}

#[test]
fn weighted_score_adds_queue_kv_and_prefix_scores() {
    let mut r = router("weighted-score", "{}", 2);
    // Node 0: queue score 0, kv 2 × 0.5 = 1.0; node 1: queue 2 × 1, kv 2 × 0.1 = 2.2.
    r.on_nodes(&changed(2, 2, vec![with_server(0, 4, 0.5), with_server(1, 0, 0.9)])).unwrap();
    assert_eq!(dispatch(&mut r, &blocks(0, &[1, 2, 3, 4])), 1);
    // Node 0 now scores 2 + 1.6 = 3.6; node 1 2 + 1.0 + 3 × 4/4 (prefix) = 6.0.
    r.on_nodes(&changed(3, 2, vec![with_server(0, 0, 0.2), with_server(1, 0, 0.5)])).unwrap();
    assert_eq!(dispatch(&mut r, &blocks(1, &[1, 2, 3, 4])), 1);
    // Half the blocks match: node 1 scores 2 + 0.2 + 1.5 = 3.7 > 3.6.
    r.on_nodes(&changed(4, 2, vec![with_server(1, 0, 0.9)])).unwrap();
    assert_eq!(dispatch(&mut r, &blocks(2, &[1, 2, 30, 40])), 1);
    // A quarter matches: 2 + 0.2 + 0.75 = 2.95 < 3.6.
    assert_eq!(dispatch(&mut r, &blocks(3, &[1, 20, 30, 40])), 0);
    // Without server reports the queue is the requests waiting for a first token.
    let mut r = router("weighted-score", r#"{"prefix_weight": 0}"#, 3);
    let waiting = |i, w| NodeState { waiting_first_token: w, in_flight: w, ..NodeState::idle(i) };
    r.on_nodes(&changed(2, 3, vec![waiting(0, 3), waiting(1, 1), waiting(2, 2)])).unwrap();
    assert_eq!(dispatch(&mut r, &blocks(0, &[5])), 1);
}

#[test]
fn router_configs_are_checked_and_errors_name_the_key() {
    for (name, config, key) in [
        ("cache-aware", r#"{"cache_threshold": 1.5}"#, "cache_threshold"),
        ("cache-aware", r#"{"balance_rel_threshold": 0.5}"#, "balance_rel_threshold"),
        ("cache-aware", r#"{"max_tree_sise": 10}"#, "max_tree_sise"),
        ("prefix-hash", r#"{"prefix_blocks": 0}"#, "prefix_blocks"),
        ("prefix-hash", r#"{"load_factor": 0.9}"#, "load_factor"),
        ("weighted-score", r#"{"kv_weight": -1}"#, "kv_weight"),
        ("weighted-score", r#"{"lru_capacity_blocks": 0}"#, "lru_capacity_blocks"),
    ] {
        let err = config_error(name, Kind::Routing, config);
        assert!(err.contains(key), "{name} {config}: {err}");
    }
}
