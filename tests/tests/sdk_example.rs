//! The plugin shown in plugin-sdk/README.md is the one in
//! examples/least-inflight, and it works: it balances a closed-loop workload
//! and rejects a bad config with a message naming the key.

use sglab_tests::*;

#[test]
fn readme_shows_the_example_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("plugin-sdk/README.md")).unwrap();
    let code = std::fs::read_to_string(root.join("examples/least-inflight/src/lib.rs")).unwrap();
    assert!(readme.contains(&code), "plugin-sdk/README.md must show examples/least-inflight/src/lib.rs verbatim");
    let lines = code.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 40, "the example plugin has {lines} lines");
}

#[test]
fn least_inflight_balances_and_validates_its_config() {
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    let s = Scratch::new("least-inflight");
    let plugin = env!("SGLAB_TEST_PLUGIN_LEAST_INFLIGHT");
    let body = format!(
        "[workload]\nnum_requests = 24\ninput_len = 16\noutput_len = 30\n\n\
         [arrival]\nprocess = \"closed-loop\"\nconcurrency = 4\n\n\
         [routing]\nplugin = \"{plugin}\"\nconfig = {{ cap = 2 }}\n"
    );
    let exp = s.write("exp.toml", &experiment("least", &body));
    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--url", &b.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "least").join("requests.csv"));
    assert_eq!(csv.rows.len(), 24);
    let on0 = csv.rows.iter().filter(|r| r["node"] == "0").count();
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"));
    // 4 users over 2 nodes with a cap of 2 each: the load stays balanced.
    assert!((10..=14).contains(&on0), "node 0 served {on0} of 24");

    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--set", "routing.config.cap=0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: ") && err.contains("exp.toml: routing.config: cap: must be at least 1"), "{err}");
}
