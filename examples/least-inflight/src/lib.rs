use sglab_plugin_sdk::{NodeTable, RejectReason, RequestInfo, RouteDecision, Router, export_router};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_cap")]
    cap: u32, // refuse when every node has this many requests in flight
}
fn default_cap() -> u32 {
    u32::MAX
}

struct LeastInflight {
    cap: u32,
}

impl Router for LeastInflight {
    const NAME: &'static str = "least-inflight";
    const DESCRIPTION: &'static str = "Sends each request to the healthy node with the fewest in flight.";
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.cap == 0 {
            return Err("cap: must be at least 1".into());
        }
        Ok(Self { cap: c.cap })
    }

    fn route(&mut self, _req: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        match nodes.healthy().filter(|n| n.in_flight < self.cap).min_by_key(|n| n.in_flight) {
            Some(n) => RouteDecision::Dispatch(n.index),
            None => RouteDecision::Reject(RejectReason::OverCapacity),
        }
    }
}

export_router!(LeastInflight);
