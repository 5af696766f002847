//! Hostile test plugin: on its 4th request, tries to read a file, list a
//! directory, read the environment and arguments, and open a socket, then
//! panics with what it got (so the host reports it). Everything must fail.

use sglab_plugin_sdk::{NoConfig, NodeTable, RequestInfo, RouteDecision, Router, export_router};

pub struct Snoop;

impl Router for Snoop {
    const NAME: &'static str = "snoop";
    const DESCRIPTION: &'static str = "Test plugin: tries to escape the sandbox.";
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Snoop)
    }

    fn route(&mut self, request: &RequestInfo, nodes: &NodeTable) -> RouteDecision {
        if request.id >= 3 {
            let file = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
            let dir = std::fs::read_dir("/").map(|d| d.count());
            let home = std::env::var("HOME").ok();
            let vars = std::env::vars().count();
            let args = std::env::args().count();
            let net = std::net::TcpStream::connect("127.0.0.1:9").map(|_| ());
            panic!(
                "snoop results: file_ok={} dir_ok={} home={home:?} vars={vars} args={args} net_ok={}",
                file.is_ok(),
                dir.is_ok(),
                net.is_ok()
            );
        }
        RouteDecision::Dispatch((request.id % nodes.len() as u64) as u32)
    }
}

export_router!(Snoop);
