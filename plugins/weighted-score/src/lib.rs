//! `weighted-score` routing: the default scheduling profile of the llm-d
//! endpoint picker (llm-d-inference-scheduler, `pkg/epp/config/loader/
//! defaults.go`, as documented in `shared/reference/routing.md` §2.1):
//! queue-scorer (weight 2) + kv-cache-utilization-scorer (2) +
//! prefix-cache-scorer (3), max-score picker with a random tie-break.
//!
//! - queue: (max q − q) / (max q − min q) over healthy nodes, all 1 when
//!   equal; q is the server's waiting queue when the host scrapes it, else
//!   the client's count of requests still waiting for their first token.
//! - kv: 1 − the server's KV usage; 1 when the server reports none.
//! - prefix: leading prefix blocks found in the node's index / the request's
//!   blocks (0 for a request without a full block). Like llm-d's
//!   approximate prefix producer, the index records the blocks of every
//!   request the plugin sent to a node, in a per-node LRU of
//!   `lru_capacity_blocks` blocks.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;
use sglab_plugin_sdk::{
    Capability, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host, option,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "two")]
    queue_weight: f64,
    #[serde(default = "two")]
    kv_weight: f64,
    #[serde(default = "three")]
    prefix_weight: f64,
    #[serde(default = "default_lru")]
    lru_capacity_blocks: u32,
}

fn two() -> f64 {
    2.0
}
fn three() -> f64 {
    3.0
}
fn default_lru() -> u32 {
    31_250
}

/// One node's recently routed prefix blocks, least recently used first.
#[derive(Default)]
struct BlockLru {
    stamp: HashMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
    clock: u64,
}

impl BlockLru {
    fn contains(&self, h: u64) -> bool {
        self.stamp.contains_key(&h)
    }

    fn add(&mut self, h: u64, cap: usize) {
        self.clock += 1;
        self.stamp.insert(h, self.clock);
        self.order.push_back((h, self.clock));
        while self.stamp.len() > cap {
            let Some((old, at)) = self.order.pop_front() else { break };
            if self.stamp.get(&old) == Some(&at) {
                self.stamp.remove(&old);
            }
        }
        // Drop stale order entries so the queue stays near the map's size.
        if self.order.len() > 2 * cap.max(16) {
            let stamp = &self.stamp;
            self.order.retain(|(h, at)| stamp.get(h) == Some(at));
        }
    }
}

pub struct WeightedScore {
    weights: [f64; 3],
    lru_capacity: usize,
    index: Vec<BlockLru>,
    scratch: Vec<(u32, f64)>,
}

impl Router for WeightedScore {
    const NAME: &'static str = "weighted-score";
    const DESCRIPTION: &'static str = "llm-d's default scorer profile: queue (weight 2) + KV-cache free share (2) + prefix-cache match (3); the highest total wins, ties at random.";
    /// Reads `request.prefix_hashes`, which the host fills only when asked.
    const CAPABILITIES: &'static [Capability] = &[Capability::PrefixHashes];
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option(
                "queue_weight",
                "float",
                Some("2.0"),
                "weight of the queue score (shorter waiting queue scores higher)",
            ),
            option("kv_weight", "float", Some("2.0"), "weight of 1 - server KV usage"),
            option(
                "prefix_weight",
                "float",
                Some("3.0"),
                "weight of the share of leading prefix blocks the node has seen",
            ),
            option("lru_capacity_blocks", "integer", Some("31250"), "prefix blocks remembered per node"),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        for (key, w) in
            [("queue_weight", c.queue_weight), ("kv_weight", c.kv_weight), ("prefix_weight", c.prefix_weight)]
        {
            if !w.is_finite() || w < 0.0 {
                return Err(format!("{key}: {w} must be a finite number >= 0"));
            }
        }
        if c.lru_capacity_blocks == 0 {
            return Err("lru_capacity_blocks: must be at least 1".into());
        }
        Ok(Self {
            weights: [c.queue_weight, c.kv_weight, c.prefix_weight],
            lru_capacity: c.lru_capacity_blocks as usize,
            index: Vec::new(),
            scratch: Vec::new(),
        })
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        self.index.resize_with(nodes.len(), BlockLru::default);
        let queue = |n: &sglab_plugin_sdk::NodeState| n.server.map_or(n.waiting_first_token, |s| s.queued);
        let (mut min_q, mut max_q) = (u32::MAX, 0);
        for n in nodes.healthy() {
            min_q = min_q.min(queue(n));
            max_q = max_q.max(queue(n));
        }
        if min_q == u32::MAX {
            return RouteDecision::Reject(RejectReason::NoHealthyNode);
        }
        let blocks = &request.prefix_hashes;
        self.scratch.clear();
        for n in nodes.healthy() {
            let q = if max_q == min_q { 1.0 } else { f64::from(max_q - queue(n)) / f64::from(max_q - min_q) };
            let kv = n.server.map_or(1.0, |s| 1.0 - f64::from(s.kv_usage).clamp(0.0, 1.0));
            let lru = &self.index[n.index as usize];
            let hit = blocks.iter().take_while(|&&h| lru.contains(h)).count();
            let prefix = if blocks.is_empty() { 0.0 } else { hit as f64 / blocks.len() as f64 };
            let score = self.weights[0] * q + self.weights[1] * kv + self.weights[2] * prefix;
            self.scratch.push((n.index, score));
        }
        let best = self.scratch.iter().map(|&(_, s)| s).fold(f64::MIN, f64::max);
        let ties: Vec<u32> = self.scratch.iter().filter(|&&(_, s)| s == best).map(|&(i, _)| i).collect();
        let chosen = if ties.len() == 1 { ties[0] } else { ties[(host::random_u64() % ties.len() as u64) as usize] };
        let cap = self.lru_capacity;
        let lru = &mut self.index[chosen as usize];
        for &h in blocks {
            lru.add(h, cap);
        }
        RouteDecision::Dispatch(chosen)
    }
}

export_router!(WeightedScore);
