//! `token-budget` batching: releases queued requests in arrival order while
//! the tokens in flight stay under a budget. A request costs its prompt plus
//! its `max_new_tokens`; a node's load is its in-flight prompt tokens plus
//! the output tokens its in-flight requests may still produce, so the budget
//! frees up as decoding progresses.

use std::collections::VecDeque;

use serde::Deserialize;
use sglab_plugin_sdk::{Batcher, NodeTable, PollResult, RequestId, RequestInfo, TimeNs, export_batcher, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tokens in flight at most (all nodes, or each node with `per_node`).
    budget: u64,
    /// Apply the budget to every healthy node instead of to the total.
    #[serde(default)]
    per_node: bool,
}

pub struct TokenBudget {
    budget: u64,
    per_node: bool,
    /// (request id, cost in tokens), oldest first.
    queue: VecDeque<(RequestId, u64)>,
    /// Scratch: the load of each healthy node during one poll.
    loads: Vec<u64>,
}

impl Batcher for TokenBudget {
    const NAME: &'static str = "token-budget";
    const DESCRIPTION: &'static str = "Releases requests in arrival order while in-flight prompt tokens plus expected output tokens stay within `budget` (in total, or per node with `per_node`). A request larger than the budget goes alone, when nothing is in flight.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option(
                "budget",
                "integer",
                None,
                "tokens in flight at most: prompt + max_new_tokens of each request (required)",
            ),
            option(
                "per_node",
                "bool",
                Some("false"),
                "apply the budget to each healthy node instead of to all together",
            ),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.budget == 0 {
            return Err("budget: must be at least 1".into());
        }
        Ok(Self { budget: c.budget, per_node: c.per_node, queue: VecDeque::new(), loads: Vec::new() })
    }

    fn on_arrival(&mut self, request: &RequestInfo, _: &NodeTable) {
        self.queue.push_back((request.id, u64::from(request.input_tokens) + u64::from(request.max_new_tokens)));
    }

    /// Strict arrival order: the head waits for room, and nothing overtakes it.
    fn poll(&mut self, _now: TimeNs, nodes: &NodeTable) -> PollResult {
        let load = |n: &sglab_plugin_sdk::NodeState| n.in_flight_input_tokens + n.remaining_output_tokens;
        self.loads.clear();
        if self.per_node {
            self.loads.extend(nodes.healthy().map(load));
        } else {
            self.loads.push(nodes.iter().map(load).sum());
        }
        let mut release = Vec::new();
        while let Some(&(id, cost)) = self.queue.front() {
            // The least-loaded slot takes the request; ties go to the lowest index.
            let Some((slot, &least)) = self.loads.iter().enumerate().min_by_key(|&(i, l)| (*l, i)) else { break };
            if least > 0 && least + cost > self.budget {
                break;
            }
            self.loads[slot] = least + cost;
            release.push(id);
            self.queue.pop_front();
        }
        PollResult { release, wake_at: None }
    }
}

export_batcher!(TokenBudget);
