//! Python plugins end to end: the examples run against sim nodes (and, in
//! virtual time, give byte-identical records to the Rust built-ins), a
//! hostile Python plugin is stopped or refused with a clear message and
//! every request recorded, and a scaffolded plugin tests, builds and runs.

use std::path::Path;

use sglab_tests::*;

const REQUESTS: usize = 40;

fn body(routing: &str, batching: &str, extra: &str) -> String {
    format!(
        r#"
[workload]
num_requests = {REQUESTS}
input_len = 96
output_len = 12
range_ratio = 0.5

[arrival]
process = "poisson"
rate = 80.0

[[nodes]]
launch = "sim"
replicas = 3
args = ["--profile", "fixed", "--ttft-ms", "8", "--itl-ms", "2"]

[routing]
plugin = "{routing}"
config = {{ max_in_flight = 2 }}

[batching]
plugin = "{batching}"
config = {{ cap = 5, max_wait_ms = 20 }}
{extra}
"#
    )
}

#[test]
fn python_examples_run_against_sim_nodes_and_match_the_builtins_in_virtual_time() {
    let router = python_plugin("examples/python/least-inflight");
    let batcher = python_plugin("examples/python/sjf");
    let s = Scratch::new("py-examples");
    // Real time, launched sim nodes.
    let live = s.write(
        "live.toml",
        &experiment("live", &body(&router.display().to_string(), &batcher.display().to_string(), "")),
    );
    let out = run_experiment(&s.path, &live, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = run_dir(&s.path, "live");
    let csv = read_csv(&dir.join("requests.csv"));
    assert_eq!(csv.rows.len(), REQUESTS);
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "every request ok");
    let sum = summary(&dir);
    assert_eq!(sum["plugins"]["routing"]["name"], "least-inflight-py");
    assert_eq!(sum["plugins"]["batching"]["name"], "sjf-py");
    let peak = sum["plugins"]["peak_memory_bytes"]["routing"].as_u64().unwrap();
    assert!(peak > 8 << 20 && peak < 64 << 20, "a Python plugin's peak memory: {peak}");
    // Virtual time: the Python pair and the Rust pair give the same records.
    let vt = "\n[client]\nvirtual_rtt_ms = 0.2\n";
    let py =
        s.write("py.toml", &experiment("py", &body(&router.display().to_string(), &batcher.display().to_string(), vt)));
    let rs = s.write("rs.toml", &experiment("rs", &body("least-inflight", "sjf", vt)));
    for f in [&py, &rs] {
        let out = run_experiment(&s.path, f, &["--clock", "virtual"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let records = |name| std::fs::read_to_string(run_dir(&s.path, name).join("requests.csv")).unwrap();
    let (a, b) = (records("py"), records("rs"));
    assert_eq!(a.lines().count(), REQUESTS + 1);
    assert_eq!(a, b, "the same decisions give the same records");
    // Hooks left at their defaults: the Python SDK skips them at `create`,
    // the Rust SDK after their first call (least-inflight implements none
    // of its three, sjf not its `on-complete`), over the same decisions.
    let calls = |name| summary(&run_dir(&s.path, name))["plugins"]["calls"].clone();
    let (py, rs) = (calls("py"), calls("rs"));
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("calls.{k}: {v}"));
    assert!(n(&py, "routing") >= REQUESTS as u64 + 2, "a route per request: {py}");
    assert_eq!(n(&py, "routing") + 3, n(&rs, "routing"), "py {py}, rs {rs}");
    assert_eq!(n(&py, "batching") + 1, n(&rs, "batching"), "py {py}, rs {rs}");
}

/// Runs 12 requests with the hostile Python router in `mode`; returns (exit
/// code, stderr, the run directory's requests.csv rows).
fn hostile(s: &Scratch, mode: &str, extra: &str) -> (Option<i32>, String, Csv) {
    let plugin = python_plugin("tests/python-plugins/hostile");
    let text = format!(
        r#"
[workload]
num_requests = 12
input_len = 32
output_len = 8

[arrival]
process = "constant"
rate = 100.0

[[nodes]]
launch = "sim"
args = ["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]

[routing]
plugin = "{}"
config = {{ mode = "{mode}" }}
{extra}
"#,
        plugin.display()
    );
    let name = format!("hostile-{mode}");
    let f = s.write(&format!("{name}.toml"), &experiment(&name, &text));
    let out = run_experiment(&s.path, &f, &[]);
    let csv = read_csv(&run_dir(&s.path, &name).join("requests.csv"));
    assert_eq!(csv.rows.len(), 12, "every request is recorded ({mode})");
    (out.status.code(), stderr(&out), csv)
}

#[test]
fn a_hostile_python_plugin_is_stopped_or_refused_with_a_clear_message() {
    let s = Scratch::new("py-hostile");
    let (code, err, _) = hostile(&s, "raise", "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("routing plugin 'hostile-py' failed in route: trapped"), "{err}");
    assert!(err.contains("RuntimeError: hostile plugin raised on purpose"), "the Python exception is named: {err}");
    let (code, err, _) = hostile(&s, "loop", "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("failed in route: deadline of 10 ms exceeded"), "{err}");
    // The per-plugin cap: 24 MiB is enough to start Python, not to hoard.
    let (code, err, _) = hostile(&s, "alloc", "memory_mib = 24");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("growing linear memory to") && err.contains("was refused (cap 24 MiB)"), "{err}");
    // Files, directories, the environment and sockets: the plugin gets
    // errors and no data, and the run goes on.
    let (code, err, csv) = hostile(&s, "snoop", "");
    assert_eq!(code, Some(0), "{err}");
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"));
    for line in ["open /etc/passwd: denied", "listdir /: denied", "environ: GOT {}", "socket: denied"] {
        assert!(err.contains(line), "{line:?} in {err}");
    }
    assert!(!err.contains('\u{1b}'), "no ANSI codes when stderr is not a terminal: {err:?}");
    // Too small a cap for the interpreter is refused before the run, naming the key.
    let (code, err, csv) = hostile(&s, "snoop", "memory_mib = 8");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("routing.plugin") && err.contains("raise [routing] memory_mib"), "{err}");
    assert!(csv.rows.is_empty() || csv.rows.len() == 12);
}

#[test]
fn a_scaffolded_python_plugin_tests_builds_and_runs() {
    let s = Scratch::new("py-scaffold");
    for kind in ["routing", "batching"] {
        let name = format!("my-{kind}");
        let out = sglab(&s.path).args(["plugin", "new", &name, "--kind", kind, "--lang", "python"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let dir = s.path.join(&name);
        for f in ["app.py", "test_app.py", "README.md", "sglab_plugin/__init__.py", "wit/strategy.wit"] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        // Its tests run in plain Python, outside WebAssembly.
        let t = std::process::Command::new(router_python())
            .args(["-m", "unittest", "-v"])
            .current_dir(&dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&t.stderr).to_string();
        assert!(t.status.success() && said.contains("OK"), "{said}");
        assert!(said.matches(" ... ok").count() >= 2, "{said}");
    }
    // `--dir D` makes D the plugin's directory (not D/NAME); a non-empty one is refused.
    let out = sglab(&s.path)
        .args(["plugin", "new", "other", "--kind", "routing", "--lang", "python", "--dir", "here"])
        .output()
        .unwrap();
    assert!(out.status.success() && s.path.join("here/app.py").is_file(), "{}", stderr(&out));
    let again = sglab(&s.path).args(["plugin", "new", "other", "--kind", "routing", "--dir", "here"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("here already exists and is not empty"), "{}", stderr(&again));
    // The router builds to a component and runs in an experiment.
    let b =
        sglab(&s.path).args(["plugin", "build", "my-routing"]).env("SGLAB_PYTHON", router_python()).output().unwrap();
    assert!(b.status.success(), "{}", stderr(&b));
    let built = s.path.join("my-routing/build/my-routing.wasm");
    assert!(stdout(&b).contains(&format!("built {}", built.display())) && stdout(&b).contains("kind         routing"));
    let text = format!(
        "[workload]\nnum_requests = 20\ninput_len = 32\noutput_len = 4\n[arrival]\nprocess = \"poisson\"\nrate = 50.0\n\
         [[nodes]]\nlaunch = \"sim\"\nreplicas = 2\n[routing]\nplugin = \"{}\"\n",
        built.display()
    );
    let f = s.write("scaffold.toml", &experiment("scaffold", &text));
    let out = run_experiment(&s.path, &f, &["--clock", "virtual"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "scaffold").join("requests.csv"));
    assert!(csv.rows.len() == 20 && csv.rows.iter().all(|r| r["status"] == "ok"));
    // With a Python that lacks componentize-py, one line says how to install it.
    let b = sglab(&s.path).args(["plugin", "build", "my-batching"]).env("SGLAB_PYTHON", "python3").output().unwrap();
    assert_eq!(b.status.code(), Some(1));
    let err = stderr(&b);
    assert!(err.contains("componentize-py not found: install it with `pip install componentize-py==0.25.1`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn the_python_sdk_unit_tests_pass_in_plain_python() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/python");
    let t = std::process::Command::new(router_python())
        .args(["-m", "unittest", "discover", "-v", "-s", "tests", "-t", "."])
        .current_dir(&sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&t.stderr).to_string();
    assert!(t.status.success(), "{said}");
    assert!(said.matches(" ... ok").count() >= 5, "{said}");
}
