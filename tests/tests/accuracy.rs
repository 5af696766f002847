//! Measurement accuracy against a fixed-timing sim at concurrency 1.

use sglab_tests::*;

#[test]
fn ttft_and_latency_match_the_fixed_profile() {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "50", "--itl-ms", "10"]);
    let s = Scratch::new("accuracy");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "accuracy",
            r#"
[workload]
num_requests = 12
input_len = 128
output_len = 100
range_ratio = 1.0

[arrival]
process = "closed-loop"
concurrency = 1

# Cold code paths (first connection, first page faults in client and sim)
# are exercised before the measured run and excluded from results.
[client]
warmup_requests = 2
"#,
        ),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "accuracy").join("requests.csv"));
    assert_eq!(csv.rows.len(), 12);
    let mean = |col: &str| csv.rows.iter().map(|r| num(r, col)).sum::<f64>() / csv.rows.len() as f64;
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["decode_length"] == "100"));
    let (ttft, latency) = (mean("ttft") * 1e3, mean("server_latency") * 1e3);
    let each = |col: &str| csv.rows.iter().map(|r| format!("{:.2}", num(r, col) * 1e3)).collect::<Vec<_>>().join(", ");
    assert!((ttft - 50.0).abs() <= 2.0, "mean ttft {ttft:.3} ms, want 50 ± 2; each (ms): {}", each("ttft"));
    assert!(
        (latency - 1040.0).abs() <= 3.0,
        "mean server_latency {latency:.3} ms, want 1040 ± 3; each (ms): {}",
        each("server_latency")
    );
    // Concurrency 1: each request is sent after the previous one finished.
    let mut rows = csv.rows.clone();
    rows.sort_by(|a, b| num(a, "to_server_time").total_cmp(&num(b, "to_server_time")));
    for w in rows.windows(2) {
        assert!(num(&w[1], "to_server_time") >= num(&w[0], "finish_time"));
    }
}
