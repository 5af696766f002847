//! A bad experiment file prints one line naming the file and the key, exits
//! with code 2, and starts nothing (no results directory, no nodes).

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, toml: &str, extra: &[&str]) -> (i32, String) {
    let file = dir.join("exp.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sglab"))
        .current_dir(dir)
        .arg("run")
        .arg("exp.toml")
        .args(extra)
        .output()
        .expect("run sglab");
    assert!(!dir.join("results").exists(), "a results directory was created");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const NODES: &str = "[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\n";

fn check(tag: &str, body: &str, extra: &[&str], want: &str) {
    let dir = scratch(tag);
    let (code, err) = run(&dir, &format!("[experiment]\nname = \"x\"\n{body}\n{NODES}"), extra);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with(want), "got: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_key() {
    check(
        "unknown",
        "[workload]\nnum_requestz = 5\n",
        &[],
        "error: exp.toml: workload.num_requestz: unknown field `num_requestz`, expected one of",
    );
}

#[test]
fn wrong_type() {
    check(
        "type",
        "[workload]\ninput_len = \"long\"\n",
        &[],
        "error: exp.toml: workload.input_len: invalid type: string \"long\", expected u32",
    );
}

#[test]
fn missing_plugin_file() {
    check(
        "plugin",
        "[routing]\nplugin = \"missing/router.wasm\"\n",
        &[],
        "error: exp.toml: routing.plugin: no built-in plugin named \"missing/router.wasm\" and no file at",
    );
}

#[test]
fn plugin_of_the_wrong_kind_and_bad_plugin_config() {
    check(
        "kind",
        "[routing]\nplugin = \"immediate\"\n",
        &[],
        "error: exp.toml: routing.plugin: built-in:immediate is not a routing plugin",
    );
    check(
        "pcfg",
        "[batching]\nconfig = { size = 3 }\n",
        &[],
        "error: exp.toml: batching.config: size: unknown field `size`",
    );
}

#[test]
fn out_of_range_value_and_bad_override() {
    check("range", "[arrival]\nrate = 0\n", &[], "error: exp.toml: arrival.rate = 0: must be a positive number");
    check(
        "set",
        "",
        &["--set", "workload.input_len=abc"],
        "error: exp.toml: workload.input_len: invalid type: string \"abc\"",
    );
    check("set2", "", &["--set", "nodes=1"], "error: --set nodes=1: it is a table or list");
}

#[test]
fn bounds_urls_and_input_files_are_checked_before_anything_starts() {
    check(
        "huge",
        "",
        &["--check", "--set", "workload.input_len=4000000000"],
        "error: exp.toml: workload.input_len = 4000000000: must be at most 1048576 tokens",
    );
    for (url, why) in [
        ("http://127.0.0.1:70000", "has a port that is not a number in 1..=65535"),
        ("http://", "has no host"),
        ("http://[::1", "has an IPv6 address without its closing ]"),
    ] {
        check("url", "", &["--url", url], &format!("error: exp.toml: nodes[0].url = \"{url}\": {why}"));
    }
    let dir = scratch("trace");
    std::fs::write(dir.join("t.jsonl"), "{\"timestamp\": 0, \"input_length\": 4000000000, \"output_length\": 8}\n")
        .unwrap();
    let (code, err) = run(
        &dir,
        "[experiment]\nname = \"x\"\n[workload]\ndataset = \"trace\"\npath = \"t.jsonl\"\n[arrival]\nprocess = \"trace\"\n[[nodes]]\nlaunch = \"sim\"\n",
        &["--check"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("workload.path: t.jsonl: line 1: input_length and output_length must be at most 1048576"),
        "{err}"
    );
    // Devices are refused at once, however endless.
    for dev in ["/dev/zero", "/dev/urandom"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sglab")).args(["run", dev, "--check"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(
            err.trim(),
            format!("error: {dev}: cannot read: is not a regular file (a device or socket); give a file or a pipe")
        );
    }
    let (code, err) = run(
        &dir,
        "[experiment]\nname = \"x\"\n[workload]\ndataset = \"jsonl\"\npath = \"/dev/urandom\"\n[[nodes]]\nlaunch = \"sim\"\n",
        &["--check"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("workload.path: cannot read /dev/urandom: is not a regular file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_experiment_can_come_from_a_pipe() {
    // As `sglab run <(generate-experiment)` gives it: a FIFO.
    let dir = scratch("fifo");
    let fifo = dir.join("exp.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(fifo, "[experiment]\nname = \"piped\"\n[[nodes]]\nlaunch = \"sim\"\n").unwrap();
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_sglab")).arg("run").arg(&fifo).arg("--check").output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_verifies_sim_flags_the_results_directory_and_the_router_module() {
    check(
        "simflag",
        "[[nodes]]\nlaunch = \"sim\"\nargs = [\"--max-runing-requests\", \"8\"]\n",
        &["--check"],
        "error: exp.toml: nodes[0].args: unexpected argument '--max-runing-requests' found",
    );
    check(
        "outdir",
        "output_dir = \"exp.toml/results\"\n",
        &["--check"],
        "error: exp.toml: experiment.output_dir: exp.toml/results: exp.toml is not a directory",
    );
    // The system's python3 has no sglang_router (the project's .venv does).
    check(
        "router",
        "[routing]\nmode = \"sglang-router\"\npython = \"python3\"\n",
        &["--check"],
        "error: exp.toml: routing.python: python3 cannot import sglang_router (ModuleNotFoundError: No module named 'sglang_router'); pip install sglang-router, or set it",
    );
}

#[test]
fn the_experiment_name_defaults_to_the_file_name() {
    let dir = scratch("noname");
    let file = dir.join("my-exp.toml");
    std::fs::write(&file, format!("[workload]\nnum_requests = 3\n{NODES}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sglab"))
        .current_dir(&dir)
        .args(["run", "my-exp.toml", "--check"])
        .output()
        .expect("run sglab");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("ok: my-exp.toml") && said.contains("3 requests"), "{said}");
    let loaded = sglab::experiment::load(&file, &[], &[]).expect("loads");
    assert_eq!(loaded.exp.experiment.name, "my-exp");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn set_replaces_lists_and_tables_with_toml_values_of_the_same_kind() {
    let dir = scratch("setlist");
    let file = dir.join("e.toml");
    std::fs::write(
        &file,
        format!("[routing]\nplugin = \"least-inflight\"\n{NODES}args = [\"--profile\", \"fixed\"]\n"),
    )
    .unwrap();
    let sets = [
        r#"nodes.0.args=["--max-running-requests", "8"]"#.to_owned(),
        "routing.config={ max_in_flight = 4 }".to_owned(),
    ];
    let loaded = sglab::experiment::load(&file, &sets, &[]).expect("loads");
    assert_eq!(loaded.exp.nodes[0].args, ["--max-running-requests", "8"]);
    assert_eq!(loaded.exp.routing.config["max_in_flight"], 4);
    let Err(err) = sglab::experiment::load(&file, &["nodes.0.args=8".to_owned()], &[]) else {
        panic!("a scalar for a list was accepted")
    };
    assert!(err.to_string().contains("same kind"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
