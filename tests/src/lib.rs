//! Helpers for sglab's end-to-end tests: find the `sglab` binary, make
//! scratch directories, run experiments, start sim nodes, read results.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use sglab_core::record::split_csv_line;

/// The `sglab` binary built alongside this test (`target/<profile>/sglab`).
pub fn sglab_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("sglab");
    assert!(bin.is_file(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch {
    /// Its path.
    pub path: PathBuf,
}

impl Scratch {
    /// A fresh empty directory for one test.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!("sglab-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self { path }
    }

    /// Writes `name` with `text` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A `sglab` command running in `dir`, with a plugin cache shared by the tests.
pub fn sglab(dir: &Path) -> Command {
    let mut cmd = Command::new(sglab_bin());
    cmd.current_dir(dir);
    let cache = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("sglab-test-cache");
    cmd.env("SGLAB_CACHE_DIR", cache);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `sglab run <file> <extra...>` in `dir`.
pub fn run_experiment(dir: &Path, file: &Path, extra: &[&str]) -> Output {
    sglab(dir).arg("run").arg(file).args(extra).arg("--quiet").output().expect("run sglab")
}

/// Text of a process's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Text of a process's stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The single run directory under `<dir>/results/<name>/`.
pub fn run_dir(dir: &Path, name: &str) -> PathBuf {
    let parent = dir.join("results").join(name);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "expected one run in {}", parent.display());
    runs.pop().expect("one run")
}

/// A parsed CSV file: header and rows as maps.
#[derive(Debug)]
pub struct Csv {
    /// Column names in order.
    pub header: Vec<String>,
    /// Rows keyed by column name.
    pub rows: Vec<HashMap<String, String>>,
}

/// Reads a CSV written by sglab (RFC 4180 quoting, no embedded newlines).
pub fn read_csv(path: &Path) -> Csv {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = split_csv_line(lines.next().expect("header line"));
    let rows = lines
        .map(|l| {
            let cols = split_csv_line(l);
            assert_eq!(cols.len(), header.len(), "row has {} columns: {l}", cols.len());
            header.iter().cloned().zip(cols).collect()
        })
        .collect();
    Csv { header, rows }
}

/// A number from a CSV cell.
pub fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap_or_else(|e| panic!("{col}={:?}: {e}", row[col]))
}

/// A time column of `requests.csv` in whole nanoseconds, read exactly
/// from its 9 fixed decimals (so identities between columns hold exactly).
pub fn ns(row: &HashMap<String, String>, col: &str) -> i128 {
    let cell = &row[col];
    let (whole, frac) = cell.split_once('.').unwrap_or_else(|| panic!("{col}={cell:?}: no decimals"));
    assert_eq!(frac.len(), 9, "{col}={cell:?}: not 9 decimals");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    sign * (whole.trim_start_matches('-').parse::<i128>().unwrap() * 1_000_000_000 + frac.parse::<i128>().unwrap())
}

/// A `sglab sim` process on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct SimNode {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl SimNode {
    /// Starts `sglab sim --port 0 <args>` and waits for its address line.
    pub fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(sglab_bin());
        cmd.args(["sim", "--host", "127.0.0.1", "--port", "0"]).args(args).stderr(Stdio::null());
        let (url, child) = spawn_listening(&mut cmd, "sglab sim");
        Self { url, child }
    }
}

/// Spawns `cmd` and reads its first line, `listening on URL`.
fn spawn_listening(cmd: &mut Command, what: &str) -> (String, Child) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("read address line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{what}: unexpected first line {line:?}"))
        .to_owned();
    (url, child)
}

impl SimNode {
    /// Kills the node now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small experiment file body with `nodes` launched sims.
pub fn experiment(name: &str, extra: &str) -> String {
    format!("[experiment]\nname = \"{name}\"\nseed = 7\n\n{extra}\n")
}

/// A minimal HTTP/1.1 client for tests: sends one request with
/// `Connection: close` and returns (status, body), decoding chunked bodies.
pub fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").expect("http:// url");
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("header end");
    let status: u16 = head.split(' ').nth(1).expect("status").parse().expect("numeric status");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    if !chunked {
        return (status, rest.to_owned());
    }
    let mut out = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    (status, out)
}

/// The Python with `sglang-router` installed: `$SGLAB_PYTHON`, or the
/// repository's `.venv` that `scripts/test.sh` creates.
pub fn router_python() -> PathBuf {
    if let Some(p) = std::env::var_os("SGLAB_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.is_file(),
        "{} is missing: scripts/test.sh installs sglang-router into .venv (or set SGLAB_PYTHON)",
        venv.display()
    );
    venv
}

/// A free loopback port (bound and released; the race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("addr").port()
}

/// The real sglang-router (`python -m sglang_router.launch_router`) in front
/// of `workers`, killed on drop.
#[derive(Debug)]
pub struct Router {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Router {
    /// Starts the router with `policy` and waits (up to 60 s) for `/readiness`.
    pub fn start(workers: &[&str], policy: &str, log_dir: &Path) -> Self {
        let (port, metrics_port) = (free_port(), free_port());
        let log = log_dir.join(format!("router-{policy}.log"));
        let file = std::fs::File::create(&log).expect("router log");
        let child = Command::new(router_python())
            .args(["-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--prometheus-host", "127.0.0.1", "--prometheus-port", &metrics_port.to_string()])
            .args(["--policy", policy, "--worker-urls"])
            .args(workers)
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("start sglang-router");
        let url = format!("http://127.0.0.1:{port}");
        let r = Self { url, child, log };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(&r.url, "GET", "/readiness", "").0 == 200
            {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "sglang-router ({policy}) not ready after 60 s; log:\n{}",
            std::fs::read_to_string(&r.log).unwrap_or_default()
        );
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sglang:num_requests_total` from a sim's `/metrics`.
pub fn sim_requests_total(url: &str) -> u64 {
    let (_, body) = http(url, "GET", "/metrics", "");
    body.lines()
        .find(|l| l.starts_with("sglang:num_requests_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sglang:num_requests_total in /metrics of {url}"))
}

/// Processes (other than this test) whose environment holds
/// `SGLAB_TEST_MARK=<mark>`: anything left of a run started with that mark.
pub fn marked_processes(mark: &str) -> Vec<u32> {
    let needle = format!("SGLAB_TEST_MARK={mark}");
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/environ"))
                        .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A helper server written for the tests (`tests/fixtures/*.py`, run with
/// the project's `.venv` Python), killed on drop. It prints
/// `listening on URL` first.
#[derive(Debug)]
pub struct PyServer {
    /// `http://127.0.0.1:PORT` (or https).
    pub url: String,
    child: Child,
}

impl PyServer {
    /// Runs `python tests/fixtures/<script> <args>` and waits for its address line.
    pub fn start(script: &str, args: &[&str]) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(script);
        let mut cmd = Command::new(router_python());
        cmd.arg(&path).args(args).stderr(Stdio::inherit());
        let (url, child) = spawn_listening(&mut cmd, script);
        Self { url, child }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines of a file (a stand-in server's request log).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A run's `summary.json`.
pub fn summary(run: &Path) -> serde_json::Value {
    let p = run.join("summary.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("summary.json is JSON")
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

/// Builds the Python plugin in `dir` (relative to the repository root) with
/// `sglab plugin build --out`, into `target/python-plugins/`, and returns
/// the component's path. Built once per test process, and again only when
/// its `app.py`, the Python SDK or the WIT is newer than the component.
pub fn python_plugin(dir: &str) -> PathBuf {
    use std::sync::Mutex;
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(d, _)| d == dir) {
        return p.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root");
    let name = dir.trim_end_matches('/').replace('/', "-");
    let out = root.join("target/python-plugins").join(format!("{name}.wasm"));
    let newest = |paths: &[PathBuf]| {
        let files = paths.iter().flat_map(|p| if p.is_dir() { files_under(p) } else { vec![p.clone()] });
        files.filter_map(|f| f.metadata().ok()?.modified().ok()).max()
    };
    // The sglab binary embeds the SDK it builds with: a rebuilt binary
    // makes the component stale too.
    let sources =
        newest(&[root.join(dir).join("app.py"), root.join("plugin-sdk/python"), root.join("wit"), sglab_bin()]);
    let fresh = out.metadata().and_then(|m| m.modified()).is_ok_and(|t| sources.is_some_and(|s| t > s));
    if !fresh {
        let o = sglab(&root)
            .args(["plugin", "build", dir, "--out"])
            .arg(&out)
            .env("SGLAB_PYTHON", router_python())
            .output()
            .expect("run sglab plugin build");
        assert!(o.status.success(), "building {dir} failed:\n{}\n{}", stdout(&o), stderr(&o));
    }
    built.push((dir.to_owned(), out.clone()));
    out
}
