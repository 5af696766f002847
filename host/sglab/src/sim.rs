//! `sglab sim`: a simulated SGLang server.
//!
//! It speaks SGLang's HTTP API (`/generate` streaming and not, health and
//! model-info endpoints) and times tokens with an engine from the core
//! (`sglab_core::sim`). This subcommand owns the sockets and the clock; the
//! engine decides when tokens are due.

mod api;
mod engine_task;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sglab_core::sim::FixedEngine;
use tokio::net::TcpListener;

/// Arguments of `sglab sim` (names follow `sglang.launch_server` where they exist).
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free one. The first line on stdout is
    /// `listening on http://HOST:PORT`.
    #[arg(long, default_value_t = 30000)]
    pub port: u16,
    /// Timing profile. `fixed`: first token after --ttft-ms, then one token
    /// every --itl-ms, for every request regardless of load.
    #[arg(long, default_value = "fixed", value_parser = ["fixed"])]
    pub profile: String,
    /// Time to first token (fixed profile), milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub ttft_ms: f64,
    /// Inter-token latency (fixed profile), milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub itl_ms: f64,
    /// Model path reported by /get_model_info.
    #[arg(long, default_value = "sglab/sim")]
    pub model_path: String,
    /// Model name reported by /v1/models (defaults to --model-path).
    #[arg(long)]
    pub served_model_name: Option<String>,
}

fn ms_to_ns(ms: f64, flag: &str) -> anyhow::Result<u64> {
    anyhow::ensure!(ms.is_finite() && ms >= 0.0, "{flag} must be a non-negative number of milliseconds, got {ms}");
    Ok((ms * 1e6).round() as u64)
}

/// Runs the server until the process is stopped.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let ttft = ms_to_ns(args.ttft_ms, "--ttft-ms")?;
    let itl = ms_to_ns(args.itl_ms, "--itl-ms")?;
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid --host/--port {}:{}", args.host, args.port))?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    let local = listener.local_addr()?;
    let start = Instant::now();
    let engine = engine_task::spawn(FixedEngine::new(ttft, itl), start);
    let model = args.served_model_name.clone().unwrap_or_else(|| args.model_path.clone());
    let state = Arc::new(api::Server::new(engine, args.model_path.clone(), model));
    println!("listening on http://{local}");
    tracing::info!(profile = %args.profile, ttft_ms = args.ttft_ms, itl_ms = args.itl_ms, "sglab sim ready");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| api::handle(state.clone(), req));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
