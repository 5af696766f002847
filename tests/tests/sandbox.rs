//! Hostile plugins: each run must stop with a clear message naming the
//! plugin, the call and the cause, exit non-zero, and still account for
//! every request in requests.csv.

use sglab_tests::*;

const REQUESTS: usize = 12;

/// Runs a 12-request experiment with `slot.plugin = <test plugin>` and
/// returns (stderr, rows of requests.csv, summary.json).
fn run_hostile(slot: &str, plugin_env: &str, name: &str) -> (String, Csv, serde_json::Value) {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    let s = Scratch::new(name);
    let body = format!(
        r#"
[workload]
num_requests = {REQUESTS}
input_len = 32
output_len = 20

[arrival]
process = "constant"
rate = 100.0

[sandbox]
deadline_ms = 50
memory_mib = 64

[{slot}]
plugin = "{plugin_env}"
"#
    );
    let exp = s.write("exp.toml", &experiment(name, &body));
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr: {err}");
    let dir = run_dir(&s.path, name);
    let csv = read_csv(&dir.join("requests.csv"));
    assert_eq!(csv.rows.len(), REQUESTS, "every request is accounted for");
    let mut ids: Vec<usize> = csv.rows.iter().map(|r| r["req_id"].parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..REQUESTS).collect::<Vec<_>>());
    for r in &csv.rows {
        assert!(matches!(r["status"].as_str(), "ok" | "cancelled"), "{r:?}");
        if r["status"] == "cancelled" {
            assert!(r["error"].starts_with("not sent: the run stopped"), "{r:?}");
        }
    }
    let ok = csv.rows.iter().filter(|r| r["status"] == "ok").count();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["metrics"]["requests"]["ok"], ok);
    (err, csv, summary)
}

fn ok_count(csv: &Csv) -> usize {
    csv.rows.iter().filter(|r| r["status"] == "ok").count()
}

#[test]
fn infinite_loop_is_interrupted_at_the_deadline() {
    let (err, csv, summary) = run_hostile("routing", env!("SGLAB_TEST_PLUGIN_SPIN"), "spin");
    let needle = "routing plugin 'spin' failed in route: deadline of 50 ms exceeded: interrupted after ";
    let at = err.find(needle).unwrap_or_else(|| panic!("no deadline message in: {err}")) + needle.len();
    // The deadline counts the plugin's own CPU time once it has run 50 ms:
    // a spinning call is cut after 50 more ms of CPU (a tick or two late at most).
    let ms: f64 = err[at..].split(' ').next().unwrap().parse().unwrap();
    assert!((50.0..75.0).contains(&ms), "interrupted after {ms} ms of CPU time, deadline 50 ms: {err}");
    assert!(err[at..].starts_with(&format!("{ms:.1} ms of CPU time past its first 50 ms (")), "{err}");
    // The three requests routed before the loop were awaited, not dropped.
    assert_eq!(ok_count(&csv), 3);
    assert!(summary["stop_reason"].as_str().unwrap().contains("deadline of 50 ms exceeded"));
}

#[test]
fn a_1_gib_allocation_is_refused_under_the_cap() {
    let (err, csv, _) = run_hostile("routing", env!("SGLAB_TEST_PLUGIN_HOG"), "hog");
    assert!(err.contains("routing plugin 'hog' failed in route: trapped"), "{err}");
    assert!(
        err.contains("memory limit: growing linear memory to 10") && err.contains("was refused (cap 64 MiB)"),
        "{err}"
    );
    assert!(err.contains("memory allocation of 1073741824 bytes failed"), "{err}");
    assert_eq!(ok_count(&csv), 3);
}

#[test]
fn files_env_args_and_network_are_not_there() {
    let (err, csv, _) = run_hostile("routing", env!("SGLAB_TEST_PLUGIN_SNOOP"), "snoop");
    assert!(err.contains("routing plugin 'snoop' failed in route"), "{err}");
    assert!(
        err.contains("snoop results: file_ok=false dir_ok=false home=None vars=0 args=0 net_ok=false"),
        "the sandbox leaked: {err}"
    );
    assert_eq!(ok_count(&csv), 3);
}

#[test]
fn an_unknown_node_index_is_reported() {
    let (err, csv, _) = run_hostile("routing", env!("SGLAB_TEST_PLUGIN_BAD_NODE"), "bad-node");
    assert!(
        err.contains("routing plugin 'bad-node' failed in route: invalid answer: dispatch to node 99 for request 3, but the run has 1 node(s)"),
        "{err}"
    );
    assert_eq!(ok_count(&csv), 3);
}

#[test]
fn an_unknown_request_id_is_reported() {
    let (err, _, _) = run_hostile("batching", env!("SGLAB_TEST_PLUGIN_BAD_RELEASE"), "bad-release");
    assert!(
        err.contains("batching plugin 'bad-release' failed in poll: invalid answer: released request 1000000, which is not in the queue"),
        "{err}"
    );
}

#[test]
fn a_plugin_for_another_contract_version_is_refused_at_load() {
    let s = Scratch::new("future");
    let body = format!(
        "[routing]\nplugin = \"{}\"\n\n[[nodes]]\nurl = \"http://127.0.0.1:9\"\n",
        env!("SGLAB_TEST_PLUGIN_FUTURE_VERSION")
    );
    let exp = s.write("exp.toml", &experiment("future", &body));
    let out = run_experiment(&s.path, &exp, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("routing.plugin:")
            && err.contains("exports sglab:strategy/router@0.3.0, but this sglab supports sglab:strategy@0.2.x"),
        "{err}"
    );
    assert!(!s.path.join("results").exists(), "nothing starts on a config error");
}

#[test]
fn a_precompiled_artifact_or_garbage_is_refused() {
    let s = Scratch::new("precompiled");
    // wasmtime's precompiled artifacts are ELF files; sglab refuses them before compiling.
    let elf = s.write("router.cwasm", "\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0rest-of-an-artifact");
    let junk = s.write("junk.wasm", "not wasm at all");
    for (file, want) in [
        (&elf, "is a precompiled artifact; sglab only loads .wasm components"),
        (&junk, "is not a valid WebAssembly component"),
    ] {
        let body = format!("[routing]\nplugin = \"{}\"\n\n[[nodes]]\nurl = \"http://127.0.0.1:9\"\n", file.display());
        let exp = s.write("exp.toml", &experiment("pre", &body));
        let out = run_experiment(&s.path, &exp, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
}
