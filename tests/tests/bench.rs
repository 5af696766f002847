//! `sglab bench`: bench_serving's flags, no experiment file; the saved
//! experiment repeats the run with the same resolved config.

use sglab_tests::*;

#[test]
fn a_one_line_benchmark_needs_no_file_and_its_saved_experiment_repeats_it() {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    let s = Scratch::new("bench");
    let out = sglab(&s.path)
        .args(["bench", "--base-url", &node.url, "--num-prompts", "40", "--request-rate", "40"])
        .args([
            "--random-input-len",
            "512",
            "--random-output-len",
            "16",
            "--random-range-ratio",
            "1",
            "--max-concurrency",
            "8",
        ])
        .args(["--save-experiment", "saved.toml", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("requests   40 total: 40 ok"), "{}", stdout(&out));
    let first = run_dir(&s.path, "bench");
    let csv = read_csv(&first.join("requests.csv"));
    assert_eq!(csv.rows.len(), 40);
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["input_length"] == "512" && r["decode_length"] == "16"));
    for f in ["summary.json", "report.html", "config.toml"] {
        assert!(first.join(f).is_file(), "{f}");
    }
    let sum = summary(&first);
    assert_eq!(sum["plugins"]["batching"]["name"], "max-concurrency");
    // `sglab run` on the saved file: the same resolved config.
    std::fs::rename(s.path.join("results"), s.path.join("first")).unwrap();
    let again = run_experiment(&s.path, &s.path.join("saved.toml"), &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let second = run_dir(&s.path, "bench");
    let config = |d: &std::path::Path| std::fs::read_to_string(d.join("config.toml")).unwrap();
    let first = s.path.join("first").join(first.strip_prefix(s.path.join("results")).unwrap());
    assert_eq!(config(&first), config(&second));
    // bench_serving's `inf` is a burst; a rate of 0 is refused, naming the flag.
    let bad = sglab(&s.path).args(["bench", "--request-rate", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--request-rate"), "{}", stderr(&bad));
}
