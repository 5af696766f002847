//! Reliability: every way a run can end (a plugin trap, SIGINT, SIGTERM,
//! SIGHUP, a closed stdout, a failed or interrupted node startup, SIGKILL)
//! ends with the documented exit code, one row per request, and no process
//! left. Waits are for conditions (rows on disk, PIDs noted), bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sglab_tests::*;

/// Polls `cond` every 20 ms for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child to exit, at most `limit` (then kills it and fails).
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("sglab did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn the_run(dir: &Path, name: &str) -> Option<PathBuf> {
    let parent = dir.join("results").join(name);
    std::fs::read_dir(parent).ok()?.next().map(|e| e.unwrap().path())
}

fn rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("requests.csv")).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0)
}

/// The PIDs sglab noted in `logs/pids.txt`.
fn pids(run: &Path) -> Vec<i32> {
    std::fs::read_to_string(run.join("logs/pids.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only its entry is left until it is reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn spawn_run(dir: &Path, file: &Path, mark: &str, extra: &[&str]) -> Child {
    sglab(dir)
        .arg("run")
        .arg(file)
        .arg("--quiet")
        .args(extra)
        .env("SGLAB_TEST_MARK", mark)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

const SIMS: &str = "[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\nargs = [\"--profile\", \"fixed\", \"--ttft-ms\", \"5\", \"--itl-ms\", \"5\"]\n";

#[test]
fn a_batcher_that_traps_on_arrival_ends_the_run_with_every_record() {
    let s = Scratch::new("trap");
    let plugin = env!("SGLAB_TEST_PLUGIN_TRAP");
    let file = s.write(
        "trap.toml",
        &experiment(
            "trap",
            &format!(
                "[workload]\nnum_requests = 20\ninput_len = 16\noutput_len = 40\n\n[arrival]\nprocess = \"constant\"\nrate = 100.0\n\n\
                 {SIMS}\n[batching]\nplugin = \"{plugin}\"\nconfig = {{ panic_at = 5 }}\n"
            ),
        ),
    );
    let mark = format!("trap-{}", std::process::id());
    let mut child = spawn_run(&s.path, &file, &mark, &[]);
    let st = exit_within(&mut child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("batching plugin 'trap' failed in on-arrival: trapped"), "{err}");
    let run = run_dir(&s.path, "trap");
    let csv = read_csv(&run.join("requests.csv"));
    assert_eq!(csv.rows.len(), 20, "one row per request");
    let r5 = csv.rows.iter().find(|r| r["req_id"] == "5").expect("request 5 has a row");
    assert_eq!(r5["status"], "cancelled");
    assert!(r5["error"].starts_with("not sent: batching plugin 'trap' failed in on-arrival"), "{r5:?}");
    assert_eq!(summary(&run)["status"], "failed");
    assert!(marked_processes(&mark).is_empty(), "left behind: {:?}", marked_processes(&mark));
}

#[test]
fn sigterm_and_sighup_stop_the_run_like_sigint_with_their_exit_codes() {
    for (sig, code, name) in [(libc::SIGTERM, 143, "sigterm"), (libc::SIGHUP, 129, "sighup")] {
        let s = Scratch::new(name);
        let file = s.write(
            "exp.toml",
            &experiment(
                name,
                &format!(
                    "[workload]\nnum_requests = 300\ninput_len = 64\noutput_len = 100\n\n[arrival]\nprocess = \"constant\"\nrate = 30.0\n\n{SIMS}"
                ),
            ),
        );
        let mark = format!("{name}-{}", std::process::id());
        let mut child = spawn_run(&s.path, &file, &mark, &[]);
        wait_until(Duration::from_secs(60), "10 finished requests", || {
            the_run(&s.path, name).is_some_and(|r| rows(&r) >= 10)
        });
        let nodes = pids(&the_run(&s.path, name).unwrap());
        assert_eq!(nodes.len(), 2, "both sim nodes noted their PIDs");
        // SAFETY: signalling the child we spawned.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let st = exit_within(&mut child, Duration::from_secs(30));
        assert_eq!(st.code(), Some(code), "{name}");
        let run = run_dir(&s.path, name);
        let csv = read_csv(&run.join("requests.csv"));
        assert_eq!(csv.rows.len(), 300, "{name}: every request is recorded");
        assert!(csv.rows.iter().any(|r| r["status"] == "cancelled"));
        assert_eq!(summary(&run)["status"], "interrupted");
        assert!(summary(&run)["stop_reason"].as_str().unwrap().contains(&name.to_uppercase()));
        assert!(nodes.iter().all(|&p| !alive(p)), "{name}: nodes left running: {nodes:?}");
        assert!(marked_processes(&mark).is_empty(), "{name}: left behind: {:?}", marked_processes(&mark));
    }
}

fn never_ready(s: &Scratch, name: &str, command: &str) -> PathBuf {
    s.write(
        "exp.toml",
        &experiment(
            name,
            &format!(
                "[workload]\nnum_requests = 7\n\n[[nodes]]\nlaunch = \"command\"\ncommand = {command}\nstartup_timeout_s = 300\n"
            ),
        ),
    )
}

#[test]
fn a_signal_during_node_startup_stops_it_at_once_and_records_every_request() {
    let s = Scratch::new("startsig");
    let file = never_ready(&s, "startsig", r#"["python3", "-c", "import time; time.sleep(300)"]"#);
    let mark = format!("startsig-{}", std::process::id());
    let mut child = spawn_run(&s.path, &file, &mark, &[]);
    wait_until(Duration::from_secs(30), "the node's PID", || {
        the_run(&s.path, "startsig").is_some_and(|r| !pids(&r).is_empty())
    });
    let node = pids(&the_run(&s.path, "startsig").unwrap());
    let t0 = Instant::now();
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let st = exit_within(&mut child, Duration::from_secs(15));
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?} (startup_timeout_s is 300)", t0.elapsed());
    assert_eq!(st.code(), Some(130));
    let run = run_dir(&s.path, "startsig");
    let csv = read_csv(&run.join("requests.csv"));
    assert_eq!(csv.rows.len(), 7);
    assert!(csv.rows.iter().all(|r| r["status"] == "cancelled" && r["error"].contains("interrupted by SIGINT")));
    assert_eq!(summary(&run)["status"], "interrupted");
    assert!(node.iter().all(|&p| !alive(p)), "the node is still running: {node:?}");
}

#[test]
fn a_launched_process_that_exits_during_startup_fails_its_node_at_once() {
    let s = Scratch::new("exits");
    let file = never_ready(&s, "exits", r#"["sh", "-c", "echo no GPU here >&2; exit 3"]"#);
    let t0 = Instant::now();
    let out = run_experiment(&s.path, &file, &[]);
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?} (startup_timeout_s is 300)", t0.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the process exited during startup (exit status: 3)") && err.contains("no GPU here"), "{err}");
    let run = run_dir(&s.path, "exits");
    assert_eq!(read_csv(&run.join("requests.csv")).rows.len(), 7);
    assert_eq!(summary(&run)["status"], "failed");
}

#[test]
fn launched_nodes_die_with_sglab_even_when_it_is_killed() {
    let s = Scratch::new("sigkill");
    let file = s.write(
        "exp.toml",
        &experiment(
            "sigkill",
            &format!("[workload]\nnum_requests = 300\noutput_len = 100\n\n[arrival]\nprocess = \"constant\"\nrate = 30.0\n\n{SIMS}"),
        ),
    );
    let mark = format!("sigkill-{}", std::process::id());
    let mut child = spawn_run(&s.path, &file, &mark, &[]);
    wait_until(Duration::from_secs(60), "5 finished requests", || {
        the_run(&s.path, "sigkill").is_some_and(|r| rows(&r) >= 5)
    });
    let nodes = pids(&the_run(&s.path, "sigkill").unwrap());
    assert_eq!(nodes.len(), 2);
    child.kill().unwrap();
    let _ = child.wait();
    wait_until(Duration::from_secs(10), "the nodes to die with sglab", || nodes.iter().all(|&p| !alive(p)));
    assert!(marked_processes(&mark).is_empty(), "left behind: {:?}", marked_processes(&mark));
}

#[test]
fn a_closed_stdout_neither_stops_the_run_nor_orphans_its_nodes() {
    let s = Scratch::new("pipe");
    let file = s.write(
        "exp.toml",
        &experiment(
            "pipe",
            &format!("[workload]\nnum_requests = 20\ninput_len = 16\noutput_len = 8\n\n[arrival]\nprocess = \"constant\"\nrate = 50.0\n\n{SIMS}"),
        ),
    );
    let mark = format!("pipe-{}", std::process::id());
    let mut child = spawn_run(&s.path, &file, &mark, &[]);
    // `sglab run ... | head -0`: the reader goes away at once.
    drop(child.stdout.take());
    let st = exit_within(&mut child, Duration::from_secs(60));
    assert_eq!(st.code(), Some(0));
    let run = run_dir(&s.path, "pipe");
    assert_eq!(read_csv(&run.join("requests.csv")).rows.len(), 20);
    assert_eq!(summary(&run)["status"], "ok");
    assert!(marked_processes(&mark).is_empty(), "left behind: {:?}", marked_processes(&mark));
}

/// Runs sglab to its end and returns (exit code, stdout+stderr, peak RSS in
/// KiB of that process, from wait4).
// The child is reaped with wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(dir: &Path, file: &Path) -> (Option<i32>, String, i64) {
    let child =
        sglab(dir).arg("run").arg(file).arg("--quiet").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: waiting for our own child; rusage is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, reader.join().unwrap(), usage.ru_maxrss)
}

#[test]
fn runaway_output_and_oversized_events_are_cut_with_their_own_error_kinds() {
    let s = Scratch::new("runaway");
    let body = |name: &str, url: &str, extra: &str| {
        experiment(
            name,
            &format!(
                "[workload]\nnum_requests = 4\ninput_len = 8\noutput_len = 10\nbackend = \"openai-completions\"\n\n\
                 [arrival]\nprocess = \"closed-loop\"\nconcurrency = 2\n\n[client]\ntimeout_s = 60\n{extra}\n\n[[nodes]]\nurl = \"{url}\"\n"
            ),
        )
    };
    // 5 more than asked: under the cap (2 x 10), data.
    let more = PyServer::start("strict_server.py", &["--extra-output", "5", "--itl-ms", "0.2"]);
    let out = run_experiment(&s.path, &s.write("more.toml", &body("more", &more.url, "")), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "more").join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["decode_length"] == "15"), "{:?}", csv.rows);
    assert_eq!(summary(&run_dir(&s.path, "more"))["metrics"]["tokens"]["output_length_mismatch"], 4);

    // A stream that never ends is cut at 2 x 10 tokens.
    let endless = PyServer::start("strict_server.py", &["--extra-output", "-1", "--itl-ms", "0.2"]);
    let t0 = Instant::now();
    let out = run_experiment(&s.path, &s.write("endless.toml", &body("endless", &endless.url, "")), &[]);
    assert!(out.status.success(), "request failures are data: {}", stderr(&out));
    assert!(t0.elapsed() < Duration::from_secs(30), "took {:?}", t0.elapsed());
    let csv = read_csv(&run_dir(&s.path, "endless").join("requests.csv"));
    for r in &csv.rows {
        assert_eq!((r["status"].as_str(), r["error_kind"].as_str()), ("error", "too_many_tokens"), "{r:?}");
        assert_eq!(r["decode_length"], "21");
    }

    // One 64 MiB event: cut at client.max_event_bytes; memory stays small.
    let big = PyServer::start("strict_server.py", &["--big-event", &(64 << 20).to_string()]);
    let file = s.write("big.toml", &body("big", &big.url, "max_event_bytes = 1048576"));
    let (code, err, peak_kib) = run_measured(&s.path, &file);
    assert_eq!(code, Some(0), "{err}");
    let csv = read_csv(&run_dir(&s.path, "big").join("requests.csv"));
    for r in &csv.rows {
        assert_eq!((r["status"].as_str(), r["error_kind"].as_str()), ("error", "event_too_large"), "{r:?}");
    }
    // The plugins' compiled code and the runtime take most of it; before the
    // cap, two 64 MiB events in flight were buffered whole (> 250 MiB).
    eprintln!("peak RSS of sglab with 64 MiB events: {peak_kib} KiB");
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn the_plugin_deadline_counts_cpu_time_and_wall_time_is_only_a_backstop() {
    // A call that waits 30 ms without using CPU (as one starved by a busy
    // machine does) is within a 10 ms CPU deadline; the wall-time backstop
    // still ends it when set below the wait.
    let s = Scratch::new("cpu-deadline");
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "1", "--itl-ms", "1"]);
    let plugin = env!("SGLAB_TEST_PLUGIN_TRAP");
    let file = |name: &str, backstop: u32| {
        s.write(
            &format!("{name}.toml"),
            &experiment(
                name,
                &format!(
                    "[workload]\nnum_requests = 6\ninput_len = 8\noutput_len = 4\n\n[arrival]\nprocess = \"constant\"\nrate = 50.0\n\n\
                     [sandbox]\ndeadline_ms = 10\nwall_backstop_ms = {backstop}\n\n\
                     [batching]\nplugin = \"{plugin}\"\nconfig = {{ sleep_ms = 30 }}\n"
                ),
            ),
        )
    };
    let out = run_experiment(&s.path, &file("waits", 1000), &["--url", &node.url]);
    assert!(out.status.success(), "a call that waits is not cut by a CPU deadline: {}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "waits").join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"));
    let out = run_experiment(&s.path, &file("backstop", 20), &["--url", &node.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "batching plugin 'trap' failed in on-arrival: wall-time backstop of 20 ms exceeded: interrupted after"
        ),
        "{err}"
    );
    assert_eq!(read_csv(&run_dir(&s.path, "backstop").join("requests.csv")).rows.len(), 6);
}

/// Runs `sglab run` with its results on a tmpfs of `size`, mounted in a
/// private mount namespace (`unshare -r -m`: no privilege needed, nothing
/// visible outside); what the tmpfs held is copied out after sglab exits.
/// Returns (exit code, stderr, the copied results root).
fn run_on_small_disk(s: &Scratch, name: &str, size: &str, body: &str, mark: &str) -> (Option<i32>, String, PathBuf) {
    let (mnt, kept) = (s.path.join(format!("{name}-mnt")), s.path.join(format!("{name}-kept")));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&kept).unwrap();
    let file = s.write(
        &format!("{name}.toml"),
        &format!("[experiment]\nname = \"{name}\"\noutput_dir = \"{}/results\"\n\n{body}", mnt.display()),
    );
    let script = r#"mount -t tmpfs -o size="$5" tmpfs "$1" || exit 99; "$2" run "$3" --quiet; code=$?; cp -r "$1/results" "$4/"; exit $code"#;
    let mut child = std::process::Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", script, "sh"])
        .args([mnt.as_os_str(), sglab_bin().as_os_str(), file.as_os_str(), kept.as_os_str()])
        .arg(size)
        .env("SGLAB_TEST_MARK", mark)
        .env("SGLAB_CACHE_DIR", s.path.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = exit_within(&mut child, Duration::from_secs(90));
    let err = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned();
    assert_ne!(st.code(), Some(99), "could not mount a tmpfs in a private namespace: {err}");
    (st.code(), err, kept)
}

fn no_half_files(run: &Path) {
    let files = files_under(run);
    let stray: Vec<_> = files.iter().filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".tmp")).collect();
    assert!(stray.is_empty(), "half files left: {stray:?}");
    for svg in files.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
        let text = std::fs::read_to_string(svg).unwrap();
        assert!(text.trim_end().ends_with("</svg>"), "a cut SVG: {}", svg.display());
    }
}

#[test]
fn a_full_disk_stops_the_run_at_once_and_leaves_no_torn_row_or_half_file() {
    let s = Scratch::new("diskfull");
    let mark = format!("diskfull-{}", std::process::id());
    // 48 KiB: requests.csv fills up mid-run.
    let body = format!(
        "[workload]\nnum_requests = 600\ninput_len = 16\noutput_len = 4\n\n[arrival]\nprocess = \"constant\"\nrate = 300.0\n\n{SIMS}"
    );
    let (code, err, kept) = run_on_small_disk(&s, "diskfull", "48k", &body, &mark);
    assert_eq!(code, Some(1), "{err}");
    let line = err.lines().rfind(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("requests.csv: No space left on device"), "{line}");
    let run = run_dir(&kept, "diskfull");
    let text = std::fs::read_to_string(run.join("requests.csv")).unwrap();
    assert!(text.ends_with('\n'), "a torn last row: {:?}", &text[text.len().saturating_sub(80)..]);
    let csv = read_csv(&run.join("requests.csv"));
    assert!(!csv.rows.is_empty() && csv.rows.len() < 600, "{} rows", csv.rows.len());
    no_half_files(&run);
    assert!(marked_processes(&mark).is_empty(), "left behind: {:?}", marked_processes(&mark));

    // 96 KiB: the run's files fit, the plots do not. The run fails (exit 1)
    // and every file there is whole.
    let body = format!(
        "[workload]\nnum_requests = 10\ninput_len = 16\noutput_len = 4\n\n[arrival]\nprocess = \"constant\"\nrate = 100.0\n\n{SIMS}"
    );
    let (code, err, kept) = run_on_small_disk(&s, "plotsfull", "96k", &body, &mark);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: plots and report.html not written: writing ") && err.contains("No space left on device"),
        "{err}"
    );
    let run = run_dir(&kept, "plotsfull");
    assert_eq!(read_csv(&run.join("requests.csv")).rows.len(), 10);
    assert_eq!(summary(&run)["status"], "ok", "summary.json is whole");
    assert!(!run.join("report.html").exists());
    no_half_files(&run);
}

#[test]
fn a_request_longer_than_the_nodes_context_fails_the_run_before_anything_is_sent() {
    let node = SimNode::start(&["--profile", "llama-3.1-8b-h100", "--enable-metrics"]);
    let s = Scratch::new("context");
    let file = s.write(
        "exp.toml",
        &experiment("context", "[workload]\nnum_requests = 3\ninput_len = 150000\noutput_len = 16\n"),
    );
    let out = run_experiment(&s.path, &file, &["--url", &node.url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs 150016 tokens (150000 prompt + 16 output) but")
            && err.contains("serves a context of 131072 (max_model_len in /v1/models)"),
        "{err}"
    );
    let csv = read_csv(&run_dir(&s.path, "context").join("requests.csv"));
    assert!(csv.rows.len() == 3 && csv.rows.iter().all(|r| r["status"] == "cancelled"));
    assert_eq!(sim_requests_total(&node.url), 0, "nothing was sent");
}
