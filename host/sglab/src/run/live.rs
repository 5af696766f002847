//! The real-time phases of a run: serve (start or reuse the nodes, check
//! the context, look up the model, warm up) and drive (the live driver
//! thread, the metric pollers, signals). What they produce goes to
//! [`super::finish`], which both clocks share.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sglab_core::config::{Experiment, Process, RoutingMode};

use super::finish::{Driven, startup_failed};
use super::{RunEnd, driver, prepare};
use crate::nodes::Nodes;
use crate::plugin::{RunClock, WasmBatcher, WasmRouter};
use crate::results::RecordWriter;
use crate::signals::Received;

type Sig = tokio::sync::watch::Receiver<Received>;

/// Serves and drives one point in real time. `Err` carries the end of a
/// run that failed before its first request (already recorded).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    exp: &Experiment,
    load: &prepare::Workload,
    (batcher, router): (WasmBatcher, WasmRouter),
    clock: RunClock,
    dir: &Path,
    reuse: Option<Nodes>,
    quiet: bool,
    sig: &Sig,
) -> anyhow::Result<Result<(Driven, Nodes), (RunEnd, Option<Nodes>)>> {
    let w = &exp.workload;
    let mut nodes = match reuse {
        Some(n) => {
            n.flush_caches().await;
            n
        }
        None => match Nodes::start(exp, &dir.join("logs"), sig.clone()).await {
            Ok(n) => n,
            Err(e) => return Ok(Err(startup_failed(dir, load, exp, e, sig)?)),
        },
    };
    if exp.routing.mode == RoutingMode::SglangRouter
        && let Err(e) = nodes.start_router(&exp.routing, &dir.join("logs"), sig.clone()).await
    {
        nodes.stop().await;
        return Ok(Err(startup_failed(dir, load, exp, e, sig)?));
    }
    let endpoints = nodes.dispatch_endpoints();
    // As started (the router is stopped before the summary is written).
    let (mut node_info, router_info): (Vec<sglab_core::run_summary::NodeInfo>, _) = (
        nodes.list.iter().map(crate::nodes::Node::info).collect(),
        nodes.router.as_ref().map(crate::nodes::Node::info),
    );
    for n in &nodes.list {
        tracing::info!(node = %n.name, url = %n.url, "ready");
    }
    let timeout = Duration::from_secs_f64(exp.client.timeout_s);
    let pool = match exp.arrival.process {
        Process::ClosedLoop => exp.arrival.concurrency as usize,
        _ => load.specs.len().min(4096),
    };
    let http = crate::client::http(pool);
    let prepared = async {
        prepare::check_context(&endpoints, &http, &load.specs, load.count).await?;
        let model = prepare::model(w.model.as_deref(), w.backend, &endpoints[0], &http).await?;
        let template = crate::client::body::BodyTemplate::new(w, &model)
            .map_err(|e| anyhow::anyhow!("workload.drop_fields: {e}"))?;
        let sending = Arc::new(crate::client::Sending {
            template: Arc::new(template),
            backend: w.backend,
            stream: w.stream,
            timeout,
            max_output_factor: exp.client.max_output_factor,
            max_event_bytes: exp.client.max_event_bytes as usize,
        });
        prepare::warmup(exp.client.warmup_requests, &load.specs[0], &endpoints, &http, &sending)
            .await
            .context("warmup")?;
        anyhow::Ok(sending)
    };
    let mut sig_rx = sig.clone();
    let prepared = tokio::select! {
        r = prepared => r,
        s = crate::signals::first(&mut sig_rx) => Err(anyhow::anyhow!("interrupted by {} before the first request", s.name())),
    };
    let sending = match prepared {
        Ok(t) => t,
        Err(e) => {
            nodes.stop().await;
            return Ok(Err(startup_failed(dir, load, exp, e, sig)?));
        }
    };

    let tokens_csv = exp.results.tokens_csv.then(|| dir.join("tokens.csv"));
    let (tx, rx) = std::sync::mpsc::channel();
    let write_failed = tx.clone();
    let writer = RecordWriter::create(
        &dir.join("requests.csv"),
        tokens_csv.as_deref(),
        load.specs.len(),
        Box::new(move |e| {
            let _ = write_failed.send(driver::Event::WriteFailed(e));
        }),
    )?;
    let interrupt = tx.clone();
    let limit = |v: f64| (v > 0.0).then_some((v * 1e9) as u64);
    // The view has a line per dispatch target: the router when there is one.
    let view_names = match &nodes.router {
        Some(r) => vec![r.name.clone()],
        None => nodes.list.iter().map(|n| n.name.clone()).collect(),
    };
    let input = driver::Input {
        specs: load.specs.clone(),
        prefix_hashes: load.prefix_hashes.clone(),
        schedule: load.schedule.clone(),
        nodes: endpoints,
        batcher,
        router,
        clock: clock.clone(),
        sending,
        max_duration: limit(exp.client.max_duration_s),
        max_errors: (exp.client.max_errors > 0).then_some(exp.client.max_errors),
        node_known: nodes.router.is_none(),
        records: writer.sender(),
        runtime: tokio::runtime::Handle::current(),
        http: http.clone(),
        progress: super::live_view::LiveView::new(quiet, load.specs.len(), view_names),
    };
    let direct: Vec<crate::client::Endpoint> = nodes.list.iter().map(crate::nodes::Node::endpoint).collect();
    let mut lag_before = Vec::with_capacity(direct.len());
    for (info, (version, lag)) in node_info.iter_mut().zip(prepare::engine_facts(&direct, &http).await) {
        info.engine_version = version;
        lag_before.push(lag);
    }
    let pollers = pollers(exp, dir, &nodes, &clock, &tx)?;
    let started_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let cpu_at_start = super::process_cpu_s();
    let wall = std::time::Instant::now();
    let driver = std::thread::Builder::new().name("sglab-dispatch".into()).spawn(move || driver::run(input, tx, rx))?;
    let mut sig_rx = sig.clone();
    let signals = tokio::spawn(async move {
        // Every signal reaches the driver: the first stops the run, a later
        // one also cancels what is in flight.
        let mut seen = 0;
        loop {
            let r = *sig_rx.borrow_and_update();
            if let Some(s) = r.first.filter(|_| r.count > seen) {
                seen = r.count;
                let _ = interrupt.send(driver::Event::Interrupt(s));
            }
            if sig_rx.changed().await.is_err() {
                return;
            }
        }
    });
    let out = tokio::task::spawn_blocking(move || driver.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the dispatcher panicked"))?;
    // CPU time of the run itself (the summary and report come after).
    let cpu_s = super::process_cpu_s() - cpu_at_start;
    let wall_s = wall.elapsed().as_secs_f64();
    signals.abort();
    // A node's step lag during the run: its largest lag, if it grew. (A
    // stall smaller than one before this run, on a reused node, is missed.)
    let server_step_lag_ms = prepare::step_lag_max(&direct, &http)
        .await
        .into_iter()
        .zip(lag_before)
        .map(|(after, before)| after.filter(|a| before.is_none_or(|b| *a > b)).map(|s| s * 1e3))
        .collect();
    pollers.finish().await;
    nodes.stop_router().await;
    let (records, token_stats) = writer.finish()?;
    let driven = Driven {
        out,
        records,
        token_stats,
        cpu_s,
        wall_s,
        started_wall,
        nodes: node_info,
        router: router_info,
        virtual_time: None,
        server_step_lag_ms,
    };
    Ok(Ok((driven, nodes)))
}

/// The server-metrics and GPU pollers of a live run.
struct Pollers {
    collector: Option<crate::poller::Poller>,
    gpu: Option<crate::poller::Poller>,
}

fn pollers(
    exp: &Experiment,
    dir: &Path,
    nodes: &Nodes,
    clock: &RunClock,
    tx: &std::sync::mpsc::Sender<driver::Event>,
) -> anyhow::Result<Pollers> {
    let interval = exp.results.server_metrics_interval_s;
    // Reports reach the plugins only when they route to these nodes (not
    // behind sglang-router, where the run has one endpoint).
    let snapshots = nodes.router.is_none().then(|| tx.clone());
    let collector = match interval {
        i if i > 0.0 => Some(crate::collector::start(
            &dir.join("server_metrics.csv"),
            nodes.list.iter().map(crate::nodes::Node::endpoint).collect(),
            Duration::from_secs_f64(i),
            clock.clone(),
            move |node, snapshot| {
                if let Some(tx) = &snapshots {
                    let _ = tx.send(driver::Event::Server { node: node as u32, snapshot });
                }
            },
        )?),
        _ => None,
    };
    // nvidia-smi describes this host's GPUs: poll it when a node runs here.
    let gpu = match interval {
        i if i > 0.0 && nodes.list.iter().any(|n| crate::gpu::is_local(&n.url)) => {
            crate::gpu::start(&dir.join("gpu_metrics.csv"), Duration::from_secs_f64(i), clock.clone())?
        }
        _ => None,
    };
    Ok(Pollers { collector, gpu })
}

impl Pollers {
    async fn finish(self) {
        if let Some(g) = self.gpu {
            match g.finish().await {
                Ok(rows) => tracing::info!("gpu_metrics.csv: {rows} rows"),
                Err(e) => tracing::warn!("GPU metrics collection failed: {e:#}"),
            }
        }
        if let Some(c) = self.collector {
            match c.finish().await {
                Ok(rows) => tracing::info!("server_metrics.csv: {rows} rows"),
                Err(e) => tracing::warn!("server metrics collection failed: {e:#}"),
            }
        }
    }
}
