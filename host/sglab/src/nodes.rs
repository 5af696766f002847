//! Nodes: launching `sglab sim` replicas on free loopback ports, attaching to
//! external URLs, awaiting readiness, and tearing launched processes down.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::{HeaderMap, Method};
use serde::Serialize;
use sglab_core::config::{Backend, Experiment, Launch, NodeSpec, Routing};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::{self, Endpoint, Http};

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
    /// Headers sent on every request to it (never written out: the API key is one).
    #[serde(skip)]
    headers: Arc<HeaderMap>,
    #[serde(skip)]
    child: Option<Child>,
}

impl Node {
    /// What summary.json says of it.
    pub fn info(&self) -> sglab_core::run_summary::NodeInfo {
        sglab_core::run_summary::NodeInfo {
            name: self.name.clone(),
            url: Some(self.url.clone()),
            kind: self.kind.to_owned(),
            startup_s: self.startup_s,
            log: self.log.as_ref().map(|p| p.display().to_string()),
            profile: None,
            engine_version: None,
        }
    }

    /// Its URL with the headers every request to it carries.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { base: self.url.clone(), headers: self.headers.clone() }
    }
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

/// What must answer 200 before a node counts as ready.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// SGLang and `sglab sim`: `/health`, then `/get_model_info` (SGLang
    /// answers `/v1/models` before its warm-up ends).
    Sglang,
    /// OpenAI-compatible servers: `/health`, or `/v1/models` where there is
    /// no `/health` (it answers 404, as llama.cpp's Python server does).
    OpenAi,
    /// The node's `ready_path`.
    Path(String),
}

impl Readiness {
    /// The rule for a node: its `ready_path`, else by what it is.
    pub fn of(spec: &NodeSpec, backend: Backend) -> Self {
        match (&spec.ready_path, spec.kind(), backend) {
            (Some(p), _, _) => Self::Path(p.clone()),
            (None, Launch::Sim | Launch::Sglang, _) | (None, _, Backend::Sglang) => Self::Sglang,
            (None, Launch::Url | Launch::Command, _) => Self::OpenAi,
        }
    }
}

/// GETs `path`: Ok(true) on 2xx, Ok(false) on 404, else an error naming
/// the path and the answer.
async fn probe(http: &Http, ep: &Endpoint, path: &str) -> anyhow::Result<bool> {
    let (status, body) = client::call(http, ep, Method::GET, path, Duration::from_secs(2))
        .await
        .with_context(|| format!("GET {path}"))?;
    match status.as_u16() {
        200..=299 => Ok(true),
        404 => Ok(false),
        _ => {
            let text: String = String::from_utf8_lossy(&body).trim().chars().take(200).collect();
            bail!("GET {path} answered {status}{}", if text.is_empty() { String::new() } else { format!(": {text}") })
        }
    }
}

async fn ready_once(http: &Http, ep: &Endpoint, rule: &Readiness) -> anyhow::Result<()> {
    let need = |path: &'static str, ok: bool| {
        if ok { Ok(()) } else { Err(anyhow::anyhow!("GET {path} answered 404 Not Found")) }
    };
    match rule {
        Readiness::Sglang => {
            need("/health", probe(http, ep, "/health").await?)?;
            need("/get_model_info", probe(http, ep, "/get_model_info").await?)
        }
        Readiness::OpenAi => {
            if probe(http, ep, "/health").await? {
                return Ok(());
            }
            let models = probe(http, ep, "/v1/models").await.context("GET /health answered 404 Not Found")?;
            if models {
                Ok(())
            } else {
                bail!("GET /health and GET /v1/models answered 404 Not Found (set ready_path)")
            }
        }
        Readiness::Path(p) => {
            if probe(http, ep, p).await? {
                Ok(())
            } else {
                bail!("GET {p} answered 404 Not Found")
            }
        }
    }
}

/// Signals seen so far; a startup wait ends as soon as one arrives.
pub type Cancel = tokio::sync::watch::Receiver<crate::signals::Received>;

/// Waits until the node passes its readiness rule, or a signal arrives.
async fn await_ready(ep: &Endpoint, rule: &Readiness, timeout: Duration, mut cancel: Cancel) -> anyhow::Result<()> {
    let http = client::http(1);
    let deadline = Instant::now() + timeout;
    let poll = async {
        let mut last = anyhow::anyhow!("no answer yet");
        while Instant::now() < deadline {
            match ready_once(&http, ep, rule).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last.context(format!("not ready after {:.0} s", timeout.as_secs_f64())))
    };
    tokio::select! {
        r = poll => r,
        s = crate::signals::first(&mut cancel) => bail!("interrupted by {} while waiting for it", s.name()),
    }
}

/// Waits for readiness while watching the process: one that exits during
/// startup fails its node at once.
async fn ready_or_exit(
    child: &mut Child,
    ep: &Endpoint,
    rule: &Readiness,
    (timeout, cancel): (Duration, Cancel),
) -> anyhow::Result<()> {
    tokio::select! {
        r = await_ready(ep, rule, timeout, cancel) => r,
        st = child.wait() => match st {
            Ok(st) => bail!("the process exited during startup ({st})"),
            Err(e) => bail!("the process could not be watched: {e}"),
        },
    }
}

/// Makes a launched process die with sglab, even when sglab is SIGKILLed
/// or OOM-killed (Linux: the parent-death signal, set in the child before
/// exec).
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, touches only the calling (child)
    // process, and allocates nothing between fork and exec. The signal
    // fires when the spawning thread exits: tokio's worker threads live as
    // long as the runtime, which is the whole run.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Notes a launched process's PID in `logs/pids.txt` (beside its log), so
/// that anyone can check that none is left.
fn record_pid(log_path: &Path, name: &str, child: &Child) {
    use std::io::Write as _;
    let (Some(dir), Some(pid)) = (log_path.parent(), child.id()) else { return };
    tracing::info!(node = name, pid, "launched");
    let line = format!("{name} {pid}\n");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("pids.txt"))
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

async fn launch_sim(
    name: &str,
    args: &[String],
    log_path: &Path,
    (timeout, mut cancel): (Duration, Cancel),
) -> anyhow::Result<Node> {
    let exe = std::env::current_exe().context("cannot find the sglab executable")?;
    let log = std::fs::File::create(log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    die_with_parent(&mut cmd);
    let mut child = cmd
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
    record_pid(log_path, name, &child);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::select! {
        l = tokio::time::timeout(timeout, lines.next_line()) => Ok(l),
        s = crate::signals::first(&mut cancel) => Err(s),
    };
    let url = match first {
        Ok(Ok(Ok(Some(line)))) => line.strip_prefix("listening on ").map(str::to_owned),
        Err(s) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            bail!("{name}: interrupted by {} while starting", s.name());
        }
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
    if let Err(e) = ready_or_exit(&mut child, &Endpoint::plain(url.clone()), &Readiness::Sglang, (left, cancel)).await {
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
        headers: Arc::default(),
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
    (ep, rule): (Endpoint, Readiness),
    log_path: &Path,
    wait: (Duration, Cancel),
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
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().with_context(|| format!("{name}: cannot start {}", argv.join(" ")))?;
    record_pid(log_path, name, &child);
    if let Err(e) = ready_or_exit(&mut child, &ep, &rule, wait).await {
        terminate(child, Duration::from_secs(5)).await;
        bail!("{name} at {}: {e:#}; last lines of {}:\n{}", ep.base, log_path.display(), tail(log_path, 15));
    }
    Ok(Node {
        name: name.to_owned(),
        url: ep.base,
        kind,
        startup_s: Some(started.elapsed().as_secs_f64()),
        log: Some(log_path.to_owned()),
        headers: ep.headers,
        child: Some(child),
    })
}

/// The Python that runs SGLang or sglang-router: the configured one, else
/// `$SGLAB_PYTHON`, else `python3`.
pub fn python(configured: Option<&str>) -> String {
    configured.map(str::to_owned).or_else(|| std::env::var("SGLAB_PYTHON").ok()).unwrap_or_else(|| "python3".to_owned())
}

/// The argv and environment of replica `r` of an `sglang` or `command` node.
fn process_argv(spec: &NodeSpec, r: usize, host: &str, port: u16) -> (Vec<String>, Vec<(&'static str, String)>) {
    let gpus = spec.gpus.get(r).cloned();
    let env: Vec<(&'static str, String)> = gpus.iter().map(|g| ("CUDA_VISIBLE_DEVICES", g.clone())).collect();
    let argv = match spec.kind() {
        Launch::Sglang => {
            let python = python(spec.python.as_deref());
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
    pub async fn start(exp: &Experiment, logs_dir: &Path, cancel: Cancel) -> anyhow::Result<Nodes> {
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
            let wait = (timeout, cancel.clone());
            let rule = Readiness::of(spec, exp.workload.backend);
            let headers = client::node_headers(spec.api_key_env.as_deref(), &spec.headers, &exp.client, "nodes")
                .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
            let headers = Arc::new(headers);
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
                    let ep = Endpoint { base: format!("http://{host}:{port}"), headers };
                    pending.push((
                        i,
                        tokio::spawn(
                            async move { launch_process(&name, label, &argv, &env, (ep, rule), &log, wait).await },
                        ),
                    ));
                }
                Launch::Sim => {
                    let name = format!("sim-{i}");
                    let log = logs_dir.join(format!("{name}.log"));
                    let args = spec.args.clone();
                    pending.push((i, tokio::spawn(async move { launch_sim(&name, &args, &log, wait).await })));
                }
                Launch::Url => {
                    let url = spec.url.clone().expect("validated").trim_end_matches('/').to_owned();
                    let name = format!("url-{i}");
                    let ep = Endpoint { base: url.clone(), headers: headers.clone() };
                    pending.push((
                        i,
                        tokio::spawn(async move {
                            await_ready(&ep, &rule, wait.0, wait.1)
                                .await
                                .with_context(|| format!("{name} at {url}"))?;
                            Ok(Node { name, url, kind: "url", startup_s: None, log: None, headers, child: None })
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
        let http = client::http(1);
        for n in &self.list {
            match client::call(&http, &n.endpoint(), Method::POST, "/flush_cache", Duration::from_secs(10)).await {
                Ok((status, _)) if status.is_success() => {}
                Ok((status, _)) => tracing::warn!("{}: cache not flushed before reuse (HTTP {status})", n.name),
                Err(e) => tracing::warn!("{}: cache not flushed before reuse ({e:#})", n.name),
            }
        }
    }

    /// The process id (and process group) of a launched node.
    pub fn pid(&self, n: &Node) -> Option<u32> {
        n.child.as_ref().and_then(Child::id)
    }

    /// Where requests are sent: the router, or every node.
    pub fn dispatch_endpoints(&self) -> Vec<Endpoint> {
        match &self.router {
            Some(r) => vec![r.endpoint()],
            None => self.list.iter().map(Node::endpoint).collect(),
        }
    }

    /// Launches the real sglang-router in front of the nodes and waits for
    /// its `/readiness`.
    pub async fn start_router(&mut self, routing: &Routing, logs_dir: &Path, cancel: Cancel) -> anyhow::Result<()> {
        let python = python(routing.python.as_deref());
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
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start sglang-router with {python} (pip install sglang-router)"))?;
        record_pid(&log_path, "sglang-router", &child);
        let url = format!("http://127.0.0.1:{port}");
        let ep = Endpoint::plain(url.clone());
        let rule = Readiness::Path("/readiness".to_owned());
        if let Err(e) = ready_or_exit(&mut child, &ep, &rule, (Duration::from_secs(60), cancel)).await {
            terminate(child, Duration::from_secs(2)).await;
            bail!("sglang-router at {url}: {e:#}; last lines of {}:\n{}", log_path.display(), tail(&log_path, 15));
        }
        self.router = Some(Node {
            name: format!("sglang-router ({})", routing.policy),
            url,
            kind: "sglang-router",
            startup_s: Some(started.elapsed().as_secs_f64()),
            log: Some(log_path),
            headers: Arc::default(),
            child: Some(child),
        });
        Ok(())
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
