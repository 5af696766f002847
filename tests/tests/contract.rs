//! Plugins built against an older contract: a `.wasm` made for
//! `sglab:strategy@0.1.0` (the frozen `wit/since_v0.1.0`) still runs, through
//! the host's 0.1 adapter, with the 0.1 semantics it was written for.

use sglab_tests::*;

#[test]
fn plugins_built_against_contract_0_1_still_run() {
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "2"]);
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "2"]);
    let s = Scratch::new("contract-0-1");
    let body = format!(
        "[workload]\nnum_requests = 20\ninput_len = 64\noutput_len = 10\n\n[arrival]\nprocess = \"burst\"\n\n\
         [batching]\nplugin = \"{}\"\n\n[routing]\nplugin = \"{}\"\n",
        env!("SGLAB_TEST_PLUGIN_V0_1_BATCHER"),
        env!("SGLAB_TEST_PLUGIN_V0_1_ROUTER")
    );
    let exp = s.write("exp.toml", &experiment("old", &body));
    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--url", &b.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = run_dir(&s.path, "old");
    let csv = read_csv(&dir.join("requests.csv"));
    assert_eq!(csv.rows.len(), 20);
    // The router refuses a request without its prefix hashes (0.1 always
    // sends them) and routes from the table its `on-nodes` calls keep.
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "{:?}", csv.rows);
    for node in ["0", "1"] {
        assert!(csv.rows.iter().any(|r| r["node"] == node), "least in-flight over both nodes: {:?}", csv.rows);
    }
    // The batcher keeps at most 2 in flight, counted from its `on-nodes`
    // deltas: a burst of 20 never has 3 requests on the servers at once.
    let mut events: Vec<(f64, i32)> =
        csv.rows.iter().flat_map(|r| [(num(r, "to_server_time"), 1), (num(r, "finish_time"), -1)]).collect();
    events.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 2, "at most 2 in flight, and the cap was reached");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let contracts: Vec<&str> =
        ["batching", "routing"].iter().map(|k| summary["plugins"][k]["wit"].as_str().unwrap_or("?")).collect();
    assert_eq!(contracts, ["sglab:strategy@0.1.0", "sglab:strategy@0.1.0"], "{}", summary["plugins"]);
}

#[test]
fn hooks_left_at_their_defaults_are_skipped_and_0_2_0_plugins_get_every_hook() {
    let s = Scratch::new("contract-hooks");
    let n = 20u64;
    // One user at a time: each request finishes before the next is routed.
    let body = |router: &str| {
        format!(
            "[workload]\nnum_requests = {n}\ninput_len = 32\noutput_len = 4\n\n\
             [arrival]\nprocess = \"closed-loop\"\nconcurrency = 1\n\n\
             [[nodes]]\nlaunch = \"sim\"\nreplicas = 2\nargs = [\"--profile\", \"fixed\", \"--ttft-ms\", \"5\", \"--itl-ms\", \"1\"]\n\n\
             [routing]\nplugin = \"{router}\"\n"
        )
    };
    // Calls into the routing plugin: instantiate and create, then `route`
    // for each request, and each hook the host did not skip.
    let cases = [
        // Built against 0.2.0, it cannot ask to skip: every hook, every request.
        ("old", env!("SGLAB_TEST_PLUGIN_V0_2_0_ROUTER"), 2 + 4 * n, "sglab:strategy@0.2.0"),
        // The SDK's defaults: each of the three hooks once, then skipped.
        ("default", "round-robin", 2 + n + 3, "sglab:strategy@0.2.1"),
        // `on-complete` implemented: called every time; the other two once.
        ("hooks", env!("SGLAB_TEST_PLUGIN_HOOKS"), 2 + 2 * n + 2, "sglab:strategy@0.2.1"),
    ];
    for (name, router, calls, wit) in cases {
        let exp = s.write(&format!("{name}.toml"), &experiment(name, &body(router)));
        let out = run_experiment(&s.path, &exp, &["--clock", "virtual"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dir = run_dir(&s.path, name);
        let v = summary(&dir);
        assert_eq!(v["plugins"]["routing"]["wit"], wit, "{name}: {}", v["plugins"]);
        assert_eq!(v["plugins"]["calls"]["routing"], calls, "{name}: {}", v["plugins"]);
        let csv = read_csv(&dir.join("requests.csv"));
        assert_eq!(csv.rows.len(), n as usize);
        assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "{name}: {:?}", csv.rows);
        let mut rows: Vec<_> = csv.rows.iter().collect();
        rows.sort_by_key(|r| r["req_id"].parse::<u64>().unwrap());
        let nodes: Vec<&str> = rows.iter().map(|r| r["node"].as_str()).collect();
        // All three alternate: round-robin by its counter, `hooks` by the
        // completions it was told of (request k follows k completions).
        let want: Vec<&str> = (0..n).map(|k| if k % 2 == 0 { "0" } else { "1" }).collect();
        assert_eq!(nodes, want, "{name}");
    }
}
