//! `cache-aware` routing: an exact re-implementation of sglang-router 0.3.2's
//! default policy (`src/policies/cache_aware.rs` and `tree.rs` of the
//! sglang-router / SMG 0.3.2 sources, as documented in
//! `shared/reference/routing.md` §1.3.3).
//!
//! On each request, over the healthy nodes with the host's in-flight counts
//! as loads (what the router's load guard counts):
//! 1. If `max - min > balance_abs_threshold` and `max > min *
//!    balance_rel_threshold`, the least-loaded node takes it (lowest index on
//!    ties), and its text is inserted for that node anyway.
//! 2. Otherwise the text is matched against the character radix tree; if
//!    more than `cache_threshold` of its characters match, the node that
//!    created the deepest matched tree node takes it (if that node is down,
//!    its whole subtree is forgotten and the first healthy node takes it);
//!    else the least-loaded node does.
//! 3. The text is inserted for the chosen node. Every
//!    `eviction_interval_secs`, nodes holding more than `max_tree_size`
//!    characters lose their least recently used leaves.
//!
//! The routing text is what sglang-router extracts: the prompt text, or for
//! `/generate` with token ids, the ids as space-separated decimals (the host's
//! `prompt-text` gives exactly that).

mod tree;

use serde::Deserialize;
use sglab_plugin_sdk::{
    Capability, NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host, option,
};

pub use tree::{Tree, Walk};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_cache_threshold")]
    cache_threshold: f64,
    #[serde(default = "default_balance_abs")]
    balance_abs_threshold: u64,
    #[serde(default = "default_balance_rel")]
    balance_rel_threshold: f64,
    #[serde(default = "default_max_tree_size")]
    max_tree_size: u64,
    #[serde(default = "default_eviction_interval")]
    eviction_interval_secs: u64,
}

fn default_cache_threshold() -> f64 {
    0.3
}
fn default_balance_abs() -> u64 {
    64
}
fn default_balance_rel() -> f64 {
    1.5
}
fn default_max_tree_size() -> u64 {
    1 << 26
}
fn default_eviction_interval() -> u64 {
    60
}

pub struct CacheAware {
    cache_threshold: f64,
    balance_abs: u64,
    balance_rel: f64,
    max_tree_size: u64,
    eviction_interval_ns: u64,
    next_eviction_ns: Option<u64>,
    tree: Tree,
    /// The last match's walk, reused by the insert that follows it.
    walk: Walk,
}

impl CacheAware {
    fn maybe_evict(&mut self, now: u64) {
        let due = *self.next_eviction_ns.get_or_insert(now.saturating_add(self.eviction_interval_ns));
        if now >= due {
            self.tree.evict(self.max_tree_size);
            self.next_eviction_ns = Some(now.saturating_add(self.eviction_interval_ns));
        }
    }

    /// The decision for `text` over `healthy` (index, load) pairs, in index order.
    pub fn choose(&mut self, text: &str, healthy: &[(u32, u64)]) -> u32 {
        let min_node = |h: &[(u32, u64)]| h.iter().min_by_key(|&&(i, l)| (l, i)).map(|&(i, _)| i).unwrap_or(0);
        let min_load = healthy.iter().map(|&(_, l)| l).min().unwrap_or(0);
        let max_load = healthy.iter().map(|&(_, l)| l).max().unwrap_or(0);
        let imbalanced =
            max_load - min_load > self.balance_abs && (max_load as f32) > (min_load as f32) * self.balance_rel as f32;
        let chosen = if imbalanced {
            min_node(healthy)
        } else {
            let (matched, bytes, tenant) = self.tree.prefix_match_walk(text, &mut self.walk);
            // The matched part's characters are counted by the match.
            let total = matched + tree::char_count(&text[bytes..]);
            let rate = if total == 0 { 0.0 } else { matched as f32 / total as f32 };
            match tenant {
                Some(t) if rate > self.cache_threshold as f32 => {
                    if healthy.iter().any(|&(i, _)| i == t) {
                        t
                    } else {
                        self.tree.remove_tenant(t);
                        healthy[0].0
                    }
                }
                _ => min_node(healthy),
            }
        };
        // Without a match in this call (imbalanced loads), or after a
        // tenant was removed above, the walk is stale (every insert and
        // removal moves the tree's change count) and the insert starts
        // from the root.
        self.tree.insert_walked(text, chosen, &self.walk);
        chosen
    }
}

impl Router for CacheAware {
    const NAME: &'static str = "cache-aware";
    const DESCRIPTION: &'static str = "sglang-router 0.3.2's `cache_aware`, exactly: a character radix tree per node over the prompt text; a request goes to the node that cached more than `cache_threshold` of its text, else to the least-loaded node, unless loads are imbalanced (both thresholds), when the least-loaded node takes it.";
    const CAPABILITIES: &'static [Capability] = &[Capability::PromptText];
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option(
                "cache_threshold",
                "float",
                Some("0.3"),
                "route by cache when more than this share of the text matches",
            ),
            option(
                "balance_abs_threshold",
                "integer",
                Some("64"),
                "imbalanced when max - min in-flight exceeds this ...",
            ),
            option("balance_rel_threshold", "float", Some("1.5"), "... and max exceeds min times this"),
            option("max_tree_size", "integer", Some("67108864"), "characters remembered per node before LRU eviction"),
            option("eviction_interval_secs", "integer", Some("60"), "how often over-full nodes are evicted"),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&c.cache_threshold) {
            return Err(format!("cache_threshold: {} is not between 0 and 1", c.cache_threshold));
        }
        if c.balance_rel_threshold.is_nan() || c.balance_rel_threshold < 1.0 {
            return Err(format!("balance_rel_threshold: {} must be at least 1.0", c.balance_rel_threshold));
        }
        if c.eviction_interval_secs == 0 {
            return Err("eviction_interval_secs: must be at least 1".into());
        }
        Ok(Self {
            cache_threshold: c.cache_threshold,
            balance_abs: c.balance_abs_threshold,
            balance_rel: c.balance_rel_threshold,
            max_tree_size: c.max_tree_size,
            eviction_interval_ns: c.eviction_interval_secs.saturating_mul(1_000_000_000),
            next_eviction_ns: None,
            tree: Tree::new(),
            walk: Walk::default(),
        })
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let healthy: Vec<(u32, u64)> = nodes.healthy().map(|n| (n.index, u64::from(n.in_flight))).collect();
        if healthy.is_empty() {
            return RouteDecision::Reject(RejectReason::NoHealthyNode);
        }
        self.maybe_evict(host::now_ns());
        let text = host::prompt_text(request.id).unwrap_or_default();
        RouteDecision::Dispatch(self.choose(&text, &healthy))
    }
}

export_router!(CacheAware);

#[cfg(test)]
mod tests {
    use super::*;

    fn router(abs: u64, rel: f64) -> CacheAware {
        CacheAware::new(Config {
            cache_threshold: 0.3,
            balance_abs_threshold: abs,
            balance_rel_threshold: rel,
            max_tree_size: 1 << 26,
            eviction_interval_secs: 60,
        })
        .unwrap()
    }

    #[test]
    fn sequential_unique_prompts_all_go_to_the_lowest_index() {
        // sglang issue #32983: with equal loads, min-load ties pick index 0.
        let mut r = router(64, 1.5);
        let idle = [(0, 0), (1, 0), (2, 0)];
        let got: Vec<u32> = (0..9).map(|i| r.choose(&format!("unique prompt {i}{i}{i}"), &idle)).collect();
        assert_eq!(got, [0; 9]);
    }
}
