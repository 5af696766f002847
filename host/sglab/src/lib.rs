//! The `sglab` host: everything with I/O around the sans-IO core
//! (`sglab-core`). One module per subcommand (`run`, `sim`), plus the pieces
//! they share.

pub mod bench;
pub mod bounded;
pub mod client;
pub mod collector;
pub mod compare;
pub mod describe;
pub mod experiment;
pub mod gpu;
pub mod nodes;
pub mod plots;
pub mod plugin;
pub mod plugin_build;
pub mod plugin_cli;
pub mod plugin_new;
pub mod plugin_python;
pub mod poller;
pub mod report;
pub mod results;
pub mod run;
pub mod signals;
pub mod sim;
pub mod tokenizer;

/// This sglab's version and the git commit it was built from (recorded in
/// every `summary.json`, shown by `sglab --version`).
pub fn sglab_info() -> sglab_core::run_summary::SglabInfo {
    sglab_core::run_summary::SglabInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: option_env!("SGLAB_GIT_COMMIT").filter(|c| !c.is_empty()).map(str::to_owned),
    }
}
