//! `sglab plugin new` scaffolds a crate whose own test passes, which
//! `sglab plugin build` turns into a component that a run loads by path.

use std::path::Path;
use std::process::Command;

use sglab_tests::*;

/// `cargo <args>` in `dir` with a clean environment for a nested build:
/// offline (the workspace build fetched every crate the template uses) and
/// with a target directory shared by the scaffolded crates.
fn nested(cmd: &mut Command, target: &Path) -> std::process::Output {
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET"]
    {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_NET_OFFLINE", "true").env("CARGO_TARGET_DIR", target).output().expect("run nested command")
}

#[test]
fn scaffolded_plugins_test_build_and_run() {
    let s = Scratch::new("scaffold");
    let target = s.path.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    for (name, kind) in [("my-router", "routing"), ("my-batcher", "batching")] {
        let out = sglab(&s.path).args(["plugin", "new", name, "--kind", kind]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(&format!("created {kind} plugin {name}")), "{}", stdout(&out));
        let dir = s.path.join(name);

        // The generated test passes natively.
        let out = nested(Command::new(&cargo).arg("test").current_dir(&dir), &target);
        assert!(out.status.success(), "cargo test of {name}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("test result: ok. 1 passed"), "{text}");

        // It builds to a component that inspects as what was asked for.
        let out = nested(sglab(&s.path).args(["plugin", "build", name]), &target);
        assert!(out.status.success(), "plugin build {name}: {}", stderr(&out));
        let text = stdout(&out);
        let wasm = text.lines().find_map(|l| l.strip_prefix("built ")).expect("built <path>").to_owned();
        assert!(
            text.contains(&format!("name         {name}")) && text.contains(&format!("kind         {kind}")),
            "{text}"
        );

        // A run loads it by path and every request is served.
        let table = if kind == "routing" { "routing" } else { "batching" };
        let body = format!(
            "[workload]\nnum_requests = 20\ninput_len = 8\noutput_len = 4\n\n[arrival]\nprocess = \"burst\"\n\n\
             [{table}]\nplugin = \"{wasm}\"\n"
        );
        let exp = s.write("exp.toml", &experiment(name, &body));
        let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dir = run_dir(&s.path, name);
        let csv = read_csv(&dir.join("requests.csv"));
        assert_eq!(csv.rows.len(), 20);
        assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "{name}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let max = summary["metrics"]["max_concurrency"].as_u64().unwrap();
        // The scaffolded batcher caps in-flight requests at its default of 16.
        assert_eq!(max, if kind == "batching" { 16 } else { 20 }, "{name}");
    }
    // Names are checked before anything is written.
    let out = sglab(&s.path).args(["plugin", "new", "Bad_Name", "--kind", "routing"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"Bad_Name\""), "{}", stderr(&out));
    assert!(!s.path.join("Bad_Name").exists());
}
