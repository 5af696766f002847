//! `sticky` routing: requests of one session (conversation or user) go to
//! the node that served the session last, so its prefix cache is reused.
//! A new session, an expired one, or one whose node is down goes to the
//! healthy node with the fewest requests in flight (lowest index on ties).
//! Requests without a session key are routed the same way, unpinned.

use std::collections::HashMap;

use serde::Deserialize;
use sglab_plugin_sdk::{NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router, host, option};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Forget a session after this long without a request (milliseconds).
    #[serde(default = "default_ttl_ms")]
    ttl_ms: u64,
    /// Sessions remembered at most; the least recently used is forgotten first.
    #[serde(default = "default_max_sessions")]
    max_sessions: u32,
}

fn default_ttl_ms() -> u64 {
    600_000
}

fn default_max_sessions() -> u32 {
    100_000
}

pub struct Sticky {
    ttl_ns: u64,
    max_sessions: usize,
    /// session -> (node, last time a request of it was routed).
    pins: HashMap<u64, (u32, u64)>,
}

impl Sticky {
    fn least_loaded(nodes: &NodeTable) -> Option<u32> {
        nodes.healthy().min_by_key(|n| n.in_flight).map(|n| n.index)
    }

    fn make_room(&mut self, now: u64) {
        if self.pins.len() < self.max_sessions {
            return;
        }
        let ttl = self.ttl_ns;
        self.pins.retain(|_, &mut (_, last)| now.saturating_sub(last) <= ttl);
        if self.pins.len() >= self.max_sessions
            && let Some(oldest) = self.pins.iter().min_by_key(|(_, (_, last))| *last).map(|(k, _)| *k)
        {
            self.pins.remove(&oldest);
        }
    }
}

impl Router for Sticky {
    const NAME: &'static str = "sticky";
    const DESCRIPTION: &'static str = "Keeps each session on the node that served it last (session affinity); new, expired or orphaned sessions go to the node with the fewest requests in flight.";
    type Config = Config;

    fn options() -> Vec<sglab_plugin_sdk::OptionDoc> {
        vec![
            option("ttl_ms", "integer", Some("600000"), "forget a session after this long without a request"),
            option(
                "max_sessions",
                "integer",
                Some("100000"),
                "sessions remembered at most (least recently used forgotten first)",
            ),
        ]
    }

    fn new(c: Config) -> Result<Self, String> {
        if c.ttl_ms == 0 {
            return Err("ttl_ms: must be at least 1".into());
        }
        if c.max_sessions == 0 {
            return Err("max_sessions: must be at least 1".into());
        }
        Ok(Self {
            ttl_ns: c.ttl_ms.saturating_mul(1_000_000),
            max_sessions: c.max_sessions as usize,
            pins: HashMap::new(),
        })
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        let Some(session) = request.session else {
            return match Self::least_loaded(nodes) {
                Some(n) => RouteDecision::Dispatch(n),
                None => RouteDecision::Reject(RejectReason::NoHealthyNode),
            };
        };
        let now = host::now_ns();
        let pinned = self.pins.get(&session).filter(|&&(node, last)| {
            now.saturating_sub(last) <= self.ttl_ns && nodes.get(node).is_some_and(|n| n.healthy)
        });
        let node = match pinned {
            Some(&(node, _)) => node,
            None => match Self::least_loaded(nodes) {
                Some(n) => {
                    if !self.pins.contains_key(&session) {
                        self.make_room(now);
                    }
                    n
                }
                None => return RouteDecision::Reject(RejectReason::NoHealthyNode),
            },
        };
        self.pins.insert(session, (node, now));
        RouteDecision::Dispatch(node)
    }
}

export_router!(Sticky);
