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
