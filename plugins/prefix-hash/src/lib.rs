//! `prefix-hash` routing: consistent hashing with bounded loads on the
//! request's first `prefix_blocks` prefix blocks, so requests that share
//! that prefix meet on one node while no node takes more than
//! `load_factor` times its fair share.
//!
//! The ring and the bound follow "Consistent Hashing with Bounded Loads"
//! (Mirrokni, Thorup, Zadimoghaddam, 2018): a node accepts a request while
//! its in-flight count is below ceil(load_factor × (total in flight + 1) /
//! healthy nodes); an overloaded node passes the request clockwise to the
//! next node on the ring. sglang-router's `prefix_hash` (SMG 0.3.2,
//! `src/policies/prefix_hash.rs`) uses the same key idea and bound (1.25) but
//! falls back to the least-loaded node instead of walking the ring.

use serde::Deserialize;
use sglab_plugin_sdk::{
    Capability, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, option,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_prefix_blocks")]
    prefix_blocks: u32,
    #[serde(default = "default_virtual_nodes")]
    virtual_nodes: u32,
    #[serde(default = "default_load_factor")]
    load_factor: f64,
}

fn default_prefix_blocks() -> u32 {
    16
}
fn default_virtual_nodes() -> u32 {
    160
}
fn default_load_factor() -> f64 {
    1.25
}

/// splitmix64's finalizer: a fixed, well-mixed 64-bit hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub struct PrefixHash {
    prefix_blocks: usize,
    virtual_nodes: u32,
    load_factor: f64,
    /// (point, node), sorted by point.
    ring: Vec<(u64, u32)>,
}

impl PrefixHash {
    fn build_ring(&mut self, nodes: u32) {
        self.ring = (0..nodes)
            .flat_map(|n| (0..self.virtual_nodes).map(move |v| (mix((u64::from(n) << 32) | u64::from(v)), n)))
            .collect();
        self.ring.sort_unstable();
    }

    /// The routing key: the chained hash of the first `prefix_blocks` full
    /// blocks (fewer if the prompt is shorter); a prompt without a full block
    /// is keyed by its request id, i.e. spread evenly.
    pub fn key(&self, request: &RequestInfo) -> u64 {
        let k = self.prefix_blocks.min(request.prefix_hashes.len());
        if k == 0 { mix(request.id ^ 0x5bd1_e995) } else { mix(request.prefix_hashes[k - 1]) }
    }
}

impl Router for PrefixHash {
    const NAME: &'static str = "prefix-hash";
    const DESCRIPTION: &'static str = "Consistent hashing with bounded loads on the first `prefix_blocks` prefix blocks: requests sharing that prefix go to one node until it holds more than `load_factor` times its fair share of in-flight requests; then the ring's next node takes them.";
    /// Reads `request.prefix_hashes`, which the host fills only when asked.
    const CAPABILITIES: &'static [Capability] = &[Capability::PrefixHashes];
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option(
                "prefix_blocks",
                "integer",
                Some("16"),
                "prefix blocks hashed into the key (16 × 16 tokens = sglang-router's 256)",
            ),
            option("virtual_nodes", "integer", Some("160"), "points per node on the hash ring"),
            option(
                "load_factor",
                "float",
                Some("1.25"),
                "a node takes at most ceil(load_factor × (in flight + 1) / healthy nodes)",
            ),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.prefix_blocks == 0 {
            return Err("prefix_blocks: must be at least 1".into());
        }
        if c.virtual_nodes == 0 || c.virtual_nodes > 10_000 {
            return Err(format!("virtual_nodes: {} is not between 1 and 10000", c.virtual_nodes));
        }
        if c.load_factor.is_nan() || c.load_factor < 1.0 {
            return Err(format!("load_factor: {} must be at least 1.0", c.load_factor));
        }
        Ok(Self {
            prefix_blocks: c.prefix_blocks as usize,
            virtual_nodes: c.virtual_nodes,
            load_factor: c.load_factor,
            ring: Vec::new(),
        })
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        if self.ring.len() != nodes.len() * self.virtual_nodes as usize {
            self.build_ring(nodes.len() as u32);
        }
        let healthy = nodes.healthy().count() as f64;
        if healthy == 0.0 {
            return RouteDecision::Reject(RejectReason::NoHealthyNode);
        }
        let total: u64 = nodes.healthy().map(|n| u64::from(n.in_flight)).sum();
        let bound = (self.load_factor * (total + 1) as f64 / healthy).ceil() as u64;
        let start = self.ring.partition_point(|&(p, _)| p < self.key(request));
        let accepts = |n: u32| nodes.get(n).is_some_and(|s| s.healthy && u64::from(s.in_flight) < bound);
        (0..self.ring.len())
            .map(|i| self.ring[(start + i) % self.ring.len()].1)
            .find(|&n| accepts(n))
            .map_or(RouteDecision::Reject(RejectReason::OverCapacity), RouteDecision::Dispatch)
    }
}

export_router!(PrefixHash);
