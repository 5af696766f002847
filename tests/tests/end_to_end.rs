//! A real run: two launched sim nodes, round-robin, Poisson arrivals.

use sglab_tests::*;

#[test]
fn run_writes_records_with_exact_latency_identities() {
    let s = Scratch::new("e2e");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "e2e",
            r#"
[workload]
num_requests = 40
input_len = 64
output_len = 12
range_ratio = 0.5

[arrival]
process = "poisson"
rate = 80.0

[[nodes]]
launch = "sim"
replicas = 2
args = ["--profile", "fixed", "--ttft-ms", "20", "--itl-ms", "2"]
"#,
        ),
    );
    let out = run_experiment(&s.path, &exp, &[]);
    assert!(out.status.success(), "sglab failed: {}", stderr(&out));
    let dir = run_dir(&s.path, "e2e");
    assert!(stdout(&out).contains(&format!("results: {}", dir.strip_prefix(&s.path).unwrap().display())));
    for f in ["config.toml", "requests.csv", "summary.json", "logs/sim-0.log", "logs/sim-1.log"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = read_csv(&dir.join("requests.csv"));
    assert_eq!(
        csv.header[..9],
        [
            "req_id",
            "input_length",
            "decode_length",
            "arrival_time",
            "to_server_time",
            "finish_time",
            "server_latency",
            "total_latency",
            "ttft"
        ]
    );
    for col in ["first_token_time", "node", "status", "error"] {
        assert!(csv.header.iter().any(|h| h == col), "{col} column missing");
    }
    assert_eq!(csv.rows.len(), 40);
    let mut ids: Vec<u64> = csv.rows.iter().map(|r| r["req_id"].parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    let mut per_node = [0; 2];
    for r in &csv.rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        // Exact, digit for digit: every time has 9 decimals (nanoseconds).
        assert_eq!(ns(r, "server_latency"), ns(r, "finish_time") - ns(r, "to_server_time"));
        assert_eq!(ns(r, "total_latency"), ns(r, "finish_time") - ns(r, "arrival_time"));
        assert_eq!(ns(r, "ttft"), ns(r, "first_token_time") - ns(r, "to_server_time"));
        assert_eq!(ns(r, "queue_time"), ns(r, "to_server_time") - ns(r, "arrival_time"));
        let (inp, dec) = (num(r, "input_length"), num(r, "decode_length"));
        assert!((32.0..=64.0).contains(&inp) && (6.0..=12.0).contains(&dec), "{r:?}");
        assert!(num(r, "ttft") >= 0.020, "ttft below the configured 20 ms: {r:?}");
        per_node[r["node"].parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(per_node, [20, 20], "round-robin splits evenly");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "ok");
    assert_eq!(summary["metrics"]["requests"]["ok"], 40);
    assert_eq!(summary["plugins"]["routing"]["name"], "round-robin");
    assert_eq!(summary["plugins"]["routing"]["sha256"].as_str().unwrap().len(), 64);
    assert!(summary["host"]["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(summary["schema_version"], 1);
    let mean_ttft = summary["metrics"]["ttft"]["mean"].as_f64().unwrap();
    let rows_mean = csv.rows.iter().map(|r| num(r, "ttft")).sum::<f64>() / 40.0;
    assert!((mean_ttft - rows_mean).abs() < 1e-12);
}
