//! The `sglab` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use sglab::{bench, compare, plugin_cli, report, run, sim};

/// Benchmark and experiment framework for LLM serving with SGLang.
#[derive(Debug, Parser)]
#[command(name = "sglab", version = env!("SGLAB_VERSION_LINE"), about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment file and write its results.
    Run(run::RunArgs),
    /// A one-line benchmark with SGLang bench_serving's flags (no file needed).
    Bench(Box<bench::BenchArgs>),
    /// Serve SGLang's HTTP API from the simulator.
    Sim(Box<sim::SimArgs>),
    /// Regenerate a run's plots and report.html from its files.
    Report(report::ReportArgs),
    /// Compare runs side by side (ratios to the first) with overlay plots.
    Compare(compare::CompareArgs),
    /// Plugins: list and inspect them, scaffold a new one (Rust or Python), build it, export a built-in.
    Plugin(plugin_cli::PluginArgs),
}

fn done(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when stdout is a closed pipe
    // (`sglab compare ... | head`). Except `sglab run`: it keeps SIGPIPE
    // ignored, so that a closed stdout never kills it before its nodes are
    // stopped and its files written (its reports drop what cannot be printed).
    let is_run = std::env::args_os().nth(1).is_some_and(|a| a == "run");
    if !is_run {
        // SAFETY: resetting a signal disposition to the default at start-up,
        // before any thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter = EnvFilter::try_from_env("SGLAB_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colour only on a terminal: logs written to files (node logs, CI,
    // `2> run.log`) carry no ANSI codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Bench(args) => bench::main(*args),
        Command::Report(args) => done(report::main(args)),
        Command::Compare(args) => done(compare::main(args)),
        Command::Plugin(args) => done(plugin_cli::main(args)),
        Command::Sim(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(sim::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
