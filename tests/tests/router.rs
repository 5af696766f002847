//! The real sglang-router (PyPI `sglang-router`) in front of two sim nodes:
//! every policy routes SGLang requests to them unmodified.

use sglab_tests::*;

#[test]
fn sglang_router_policies_work_against_two_sim_nodes() {
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "3", "--itl-ms", "1", "--enable-metrics"]);
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "3", "--itl-ms", "1", "--enable-metrics"]);
    let s = Scratch::new("router");
    let exp = s.write(
        "exp.toml",
        &experiment("router", "[workload]\nnum_requests = 16\ninput_len = 64\noutput_len = 8\n\n[arrival]\nprocess = \"closed-loop\"\nconcurrency = 4\n"),
    );
    for policy in ["round_robin", "random", "cache_aware", "power_of_two"] {
        let router = Router::start(&[&a.url, &b.url], policy, &s.path);
        let before = (sim_requests_total(&a.url), sim_requests_total(&b.url));
        let out = run_experiment(&s.path, &exp, &["--url", &router.url]);
        assert!(out.status.success(), "{policy}: {}", stderr(&out));
        let after = (sim_requests_total(&a.url), sim_requests_total(&b.url));
        let served = (after.0 - before.0, after.1 - before.1);
        assert_eq!(served.0 + served.1, 16, "{policy}: the nodes served {served:?}");
        if policy == "round_robin" {
            assert_eq!(served, (8, 8), "round_robin alternates");
        }
        drop(router);
    }
    let runs = std::fs::read_dir(s.path.join("results/router")).unwrap().count();
    assert_eq!(runs, 4);
    for run in std::fs::read_dir(s.path.join("results/router")).unwrap() {
        let csv = read_csv(&run.unwrap().path().join("requests.csv"));
        assert_eq!(csv.rows.len(), 16);
        assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["decode_length"] == "8"), "{:?}", csv.rows);
    }
}
