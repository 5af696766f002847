//! Nodes: launching `sglab sim` replicas on free loopback ports, attaching to
//! external URLs, awaiting readiness, and tearing launched processes down.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use sglab_core::config::{Experiment, Launch, NodeSpec, Routing};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// One serving endpoint of the run.
#[derive(Debug, Serialize)]
pub struct Node {
    /// `sim-0`, `url-1`, ...
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// `sim`, `sglang`, `command`, `url` or `sglang-router`.
    pub kind: &'static str,
    /// Seconds from launch to ready (launched nodes).
    pub startup_s: Option<f64>,
    /// Its log file (launched nodes).
    pub log: Option<PathBuf>,
    #[serde(skip)]
    child: Option<Child>,
}

/// The run's nodes; launched processes are killed on drop (a panic guard).
#[derive(Debug, Default)]
pub struct Nodes {
    /// In index order.
    pub list: Vec<Node>,
    /// The sglang-router in front of them (routing.mode = "sglang-router").
    pub router: Option<Node>,
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// GETs `url`; Ok(()) on 200.
async fn get_ok(url: &str) -> anyhow::Result<()> {
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(2), client.get(url.parse()?)).await??;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() { Ok(()) } else { bail!("{url} answered {status}") }
}

/// Waits until `/health` and `/get_model_info` answer 200.
async fn await_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = anyhow::anyhow!("no answer yet");
    while Instant::now() < deadline {
        match async {
            get_ok(&format!("{url}/health")).await?;
            get_ok(&format!("{url}/get_model_info")).await
        }
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.context(format!("not ready after {:.0} s", timeout.as_secs_f64())))
}

async fn launch_sim(name: &str, args: &[String], log_path: &Path, timeout: Duration) -> anyhow::Result<Node> {
    let exe = std::env::current_exe().context("cannot find the sglab executable")?;
    let log = std::fs::File::create(log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("sim")
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        // The collector reads /metrics too (SGLang serves it with this flag).
        .args((!args.iter().any(|a| a == "--enable-metrics")).then_some("--enable-metrics"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `sglab sim`")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(timeout, lines.next_line()).await;
    let url = match first {
        Ok(Ok(Some(line))) => line.strip_prefix("listening on ").map(str::to_owned),
        _ => None,
    };
    let Some(url) = url else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        bail!("{name} did not start; last lines of {}:\n{}", log_path.display(), tail(log_path, 15));
    };
    // Keep copying the node's stdout into its log.
    let mut log_out = tokio::fs::File::from_std(log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_out.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    let left = timeout.saturating_sub(started.elapsed());
    if let Err(e) = await_ready(&url, left).await {
        let _ = child.start_kill();
        let _ = child.wait().await;
        bail!("{name} at {url}: {e:#}; last lines of {}:\n{}", log_path.display(), tail(log_path, 15));
    }
    Ok(Node {
        name: name.to_owned(),
        url,
        kind: "sim",
        startup_s: Some(started.elapsed().as_secs_f64()),
        log: Some(log_path.to_owned()),
        child: Some(child),
    })
}

/// Launches a node process (`sglang` or `command` kind): argv with its
/// environment, output to the log, its own process group; then waits for
/// readiness at `url`.
async fn launch_process(
    name: &str,
    kind: &'static str,
    argv: &[String],
    env: &[(&str, String)],
    url: String,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Node> {
    let log = std::fs::File::create(log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    let (program, rest) = argv.split_first().context("empty command line")?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("{name}: cannot start {}", argv.join(" ")))?;
    if let Err(e) = await_ready(&url, timeout).await {
        terminate(child, Duration::from_secs(5)).await;
        bail!("{name} at {url}: {e:#}; last lines of {}:\n{}", log_path.display(), tail(log_path, 15));
    }
    Ok(Node {
        name: name.to_owned(),
        url,
        kind,
        startup_s: Some(started.elapsed().as_secs_f64()),
        log: Some(log_path.to_owned()),
        child: Some(child),
    })
}

/// The argv and environment of replica `r` of an `sglang` or `command` node.
fn process_argv(spec: &NodeSpec, r: usize, host: &str, port: u16) -> (Vec<String>, Vec<(&'static str, String)>) {
    let gpus = spec.gpus.get(r).cloned();
    let env: Vec<(&'static str, String)> = gpus.iter().map(|g| ("CUDA_VISIBLE_DEVICES", g.clone())).collect();
    let argv = match spec.kind() {
        Launch::Sglang => {
            let python = spec
                .python
                .clone()
                .or_else(|| std::env::var("SGLAB_PYTHON").ok())
                .unwrap_or_else(|| "python3".to_owned());
            let mut a = vec![python, "-m".into(), "sglang.launch_server".into()];
            a.extend(["--model-path".into(), spec.model_path.clone().unwrap_or_default()]);
            a.extend(["--host".into(), host.to_owned(), "--port".into(), port.to_string()]);
            a.extend(spec.args.iter().cloned());
            a
        }
        _ => spec
            .command
            .iter()
            .map(|t| {
                t.replace("{host}", host)
                    .replace("{port}", &port.to_string())
                    .replace("{gpus}", gpus.as_deref().unwrap_or(""))
                    .replace("{replica}", &r.to_string())
            })
            .collect(),
    };
    (argv, env)
}

impl Nodes {
    /// Starts or attaches every node of `exp`, in order. On failure, what
    /// was started is stopped.
    pub async fn start(exp: &Experiment, logs_dir: &Path) -> anyhow::Result<Nodes> {
        let mut nodes = Nodes::default();
        let mut launches = Vec::new();
        for spec in &exp.nodes {
            for r in 0..spec.replicas as usize {
                launches.push((spec, r));
            }
        }
        // Launch sims concurrently; attach URLs after.
        let mut pending = Vec::new();
        for (i, &(spec, r)) in launches.iter().enumerate() {
            let timeout = Duration::from_secs_f64(spec.startup_timeout());
            match spec.kind() {
                kind @ (Launch::Sglang | Launch::Command) => {
                    let host = spec.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
                    let port = match spec.port {
                        Some(p) => p + r as u16,
                        None => free_port()?,
                    };
                    let (argv, env) = process_argv(spec, r, &host, port);
                    let label = if kind == Launch::Sglang { "sglang" } else { "command" };
                    let name = format!("{label}-{i}");
                    let log = logs_dir.join(format!("{name}.log"));
                    let url = format!("http://{host}:{port}");
                    pending.push((
                        i,
                        tokio::spawn(
                            async move { launch_process(&name, label, &argv, &env, url, &log, timeout).await },
                        ),
                    ));
                }
                Launch::Sim => {
                    let name = format!("sim-{i}");
                    let log = logs_dir.join(format!("{name}.log"));
                    let args = spec.args.clone();
                    pending.push((i, tokio::spawn(async move { launch_sim(&name, &args, &log, timeout).await })));
                }
                Launch::Url => {
                    let url = spec.url.clone().expect("validated").trim_end_matches('/').to_owned();
                    let name = format!("url-{i}");
                    pending.push((
                        i,
                        tokio::spawn(async move {
                            await_ready(&url, timeout).await.with_context(|| format!("{name} at {url}"))?;
                            Ok(Node { name, url, kind: "url", startup_s: None, log: None, child: None })
                        }),
                    ));
                }
            }
        }
        let mut first_err = None;
        let mut started: Vec<(usize, Node)> = Vec::new();
        for (i, task) in pending {
            match task.await.context("node start task panicked")? {
                Ok(n) => started.push((i, n)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        started.sort_by_key(|(i, _)| *i);
        nodes.list = started.into_iter().map(|(_, n)| n).collect();
        if let Some(e) = first_err {
            nodes.stop().await;
            return Err(e);
        }
        Ok(nodes)
    }

    /// Stops every launched process (router first): SIGTERM to its process
    /// group, up to 5 s of grace, then SIGKILL.
    pub async fn stop(&mut self) {
        let all = self.router.iter_mut().chain(self.list.iter_mut());
        for n in all {
            if let Some(child) = n.child.take() {
                terminate(child, Duration::from_secs(5)).await;
            }
        }
    }

    /// Stops the router only (the nodes keep running).
    pub async fn stop_router(&mut self) {
        if let Some(child) = self.router.as_mut().and_then(|r| r.child.take()) {
            terminate(child, Duration::from_secs(5)).await;
        }
        self.router = None;
    }

    /// Empties every node's prefix cache (`POST /flush_cache`), so a reused
    /// node starts a point as a fresh one would. Failures are logged.
    pub async fn flush_caches(&self) {
        let client: Client<_, http_body_util::Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        for n in &self.list {
            let req = http::Request::post(format!("{}/flush_cache", n.url))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("valid request");
            match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                Ok(Ok(r)) if r.status().is_success() => {}
                other => tracing::warn!("{}: cache not flushed before reuse ({other:?})", n.name),
            }
        }
    }

    /// The process id (and process group) of a launched node.
    pub fn pid(&self, n: &Node) -> Option<u32> {
        n.child.as_ref().and_then(Child::id)
    }

    /// The URLs requests are sent to: the router's, or every node's.
    pub fn dispatch_urls(&self) -> Vec<String> {
        match &self.router {
            Some(r) => vec![r.url.clone()],
            None => self.list.iter().map(|n| n.url.clone()).collect(),
        }
    }

    /// Launches the real sglang-router in front of the nodes and waits for
    /// its `/readiness`.
    pub async fn start_router(&mut self, routing: &Routing, logs_dir: &Path) -> anyhow::Result<()> {
        let python = routing
            .python
            .clone()
            .or_else(|| std::env::var("SGLAB_PYTHON").ok())
            .unwrap_or_else(|| "python3".to_owned());
        let (port, metrics_port) = (free_port()?, free_port()?);
        let log_path = logs_dir.join("router.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let started = Instant::now();
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--prometheus-host", "127.0.0.1", "--prometheus-port", &metrics_port.to_string()])
            .args(["--policy", &routing.policy, "--worker-urls"])
            .args(self.list.iter().map(|n| n.url.as_str()))
            .args(&routing.router_args)
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start sglang-router with {python} (pip install sglang-router)"))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = started + Duration::from_secs(60);
        let mut last = anyhow::anyhow!("no answer yet");
        while Instant::now() < deadline {
            match get_ok(&format!("{url}/readiness")).await {
                Ok(()) => {
                    self.router = Some(Node {
                        name: format!("sglang-router ({})", routing.policy),
                        url,
                        kind: "sglang-router",
                        startup_s: Some(started.elapsed().as_secs_f64()),
                        log: Some(log_path),
                        child: Some(child),
                    });
                    return Ok(());
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        terminate(child, Duration::from_secs(2)).await;
        bail!(
            "sglang-router at {url}: {last:#} after 60 s; last lines of {}:\n{}",
            log_path.display(),
            tail(&log_path, 15)
        )
    }
}

impl Nodes {
    /// Leaves every launched node running after sglab exits (`--keep-servers`).
    pub fn detach(mut self) {
        for n in self.list.iter_mut().chain(self.router.iter_mut()) {
            if let Some(child) = n.child.take() {
                // Not dropped: kill_on_drop would stop it.
                std::mem::forget(child);
            }
        }
    }
}

/// The panic guard: anything still running when `Nodes` is dropped without
/// `stop` (a panic, an early return) is killed with its whole process group,
/// so servers that fork workers leave nothing behind either.
impl Drop for Nodes {
    fn drop(&mut self) {
        for n in self.router.iter_mut().chain(self.list.iter_mut()) {
            if let Some(pid) = n.child.as_ref().and_then(Child::id) {
                // SAFETY: signalling the process group we created for this child.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// SIGTERM to the child's process group, `grace` to exit, then SIGKILL.
async fn terminate(mut child: Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling the process group we created for this child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            // The leader exited; take down anything left in its group.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
            return;
        }
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
