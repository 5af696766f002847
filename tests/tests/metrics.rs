//! Level 1 and level 2 metrics from a real run: every file, the exact
//! timeline (Little's law), server-side truth, and rows streamed to disk.

use std::process::Stdio;
use std::time::Duration;

use sglab_tests::*;

#[test]
fn shared_prefix_run_on_two_nodes_writes_every_file_and_littles_law_holds() {
    let s = Scratch::new("metrics");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "metrics",
            r#"
[workload]
dataset = "shared-prefix"
num_groups = 2
prompts_per_group = 10
system_prompt_len = 512
question_len = 32
output_len = 24

[arrival]
process = "poisson"
rate = 20.0

[[nodes]]
launch = "sim"
replicas = 2

[slo]
ttft_ms = 200

[results]
tokens_csv = true
timeline_interval_s = 0.5
server_metrics_interval_s = 0.2
"#,
        ),
    );
    // A stand-in for nvidia-smi that answers the query sglab sends, for two GPUs.
    let smi = s.write(
        "nvidia-smi",
        "#!/bin/sh\n[ \"$1\" = --query-gpu=index,utilization.gpu,memory.used,memory.total ] || exit 3\n\
         printf '0, 87, 61234, 81559\\n1, [N/A], 10, 81559\\n'\n",
    );
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = sglab(&s.path).arg("run").arg(&exp).arg("--quiet").env("SGLAB_NVIDIA_SMI", &smi).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = run_dir(&s.path, "metrics");
    for f in [
        "config.toml",
        "requests.csv",
        "summary.json",
        "timeline.csv",
        "timeline_0.5s.csv",
        "tokens.csv",
        "server_metrics.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let m = &summary["metrics"];
    // Little's law: the exact timeline's time-average of running(t) equals Σ server_latency / T.
    let tl = read_csv(&dir.join("timeline.csv"));
    let end = m["duration_s"].as_f64().unwrap();
    let mut area = 0.0;
    for (i, r) in tl.rows.iter().enumerate() {
        let next = tl.rows.get(i + 1).map_or(end, |n| num(n, "time"));
        area += num(r, "running") * (next - num(r, "time"));
        assert_eq!(num(r, "running"), num(r, "running_0") + num(r, "running_1"));
    }
    let reqs = read_csv(&dir.join("requests.csv"));
    let busy: f64 = reqs.rows.iter().map(|r| num(r, "server_latency")).sum();
    assert!((area / end - busy / end).abs() < 1e-9, "timeline {} vs requests {}", area / end, busy / end);
    assert!((m["mean_concurrency"].as_f64().unwrap() - busy / end).abs() < 1e-9);
    // Level 1 extras and level 2.
    assert!(
        reqs.rows.iter().all(|r| !r["itl_mean"].is_empty() && !r["ttft_total"].is_empty() && r["retractions"] == "0")
    );
    let cached = reqs.rows.iter().filter(|r| num(r, "cached_tokens") > 0.0).count();
    assert!(cached >= 10, "shared system prompts hit the prefix cache: {cached} of 20");
    assert_eq!(m["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(m["nodes"][0]["requests"].as_u64().unwrap() + m["nodes"][1]["requests"].as_u64().unwrap(), 20);
    assert!(m["itl"]["count"].as_u64().unwrap() == 20 * 23, "pooled ITL: one per token after the first");
    assert!(m["slo"]["attainment"].as_f64().is_some());
    let tokens = read_csv(&dir.join("tokens.csv"));
    assert_eq!(tokens.rows.len(), reqs.rows.iter().map(|r| num(r, "token_events") as usize).sum::<usize>());
    let sm = read_csv(&dir.join("server_metrics.csv"));
    for node in ["0", "1"] {
        for source in ["loads", "metrics"] {
            let n = sm.rows.iter().filter(|r| r["node"] == node && r["source"] == source).count();
            assert!(n >= 2, "{source} rows for node {node}: {n}");
        }
    }
    assert!(sm.rows.iter().any(|r| num(r, "num_running_reqs") > 0.0));
    // The nodes run on this host, so nvidia-smi is polled at the same interval.
    let gpu = read_csv(&dir.join("gpu_metrics.csv"));
    assert!(gpu.rows.len() >= 4, "two GPUs, polled at least twice: {}", gpu.rows.len());
    let first = &gpu.rows[0];
    assert_eq!((&first["gpu"][..], &first["utilization_pct"][..], &first["memory_used_mib"][..]), ("0", "87", "61234"));
    assert_eq!((&gpu.rows[1]["gpu"][..], &gpu.rows[1]["utilization_pct"][..]), ("1", ""), "[N/A] is empty");
}

#[test]
fn records_are_on_disk_when_the_run_is_killed_half_way() {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "2", "--itl-ms", "1"]);
    let s = Scratch::new("killed");
    let exp = s.write(
        "exp.toml",
        &experiment("killed", "[workload]\nnum_requests = 10000\ninput_len = 16\noutput_len = 8\n\n[arrival]\nprocess = \"constant\"\nrate = 2000.0\n"),
    );
    let mut child = sglab(&s.path)
        .arg("run")
        .arg(&exp)
        .args(["--url", &node.url, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(run_dir(&s.path, "killed").join("requests.csv")).unwrap();
    let complete: Vec<&str> =
        if text.ends_with('\n') { text.lines().collect() } else { text.lines().rev().skip(1).collect() };
    let header_cols = text.lines().next().unwrap().split(',').count();
    let rows = complete.len() - 1;
    assert!(rows > 1000, "rows streamed before the kill: {rows}");
    assert!(rows < 10_000, "the run was killed half-way: {rows}");
    for line in complete.iter().filter(|l| !l.starts_with("req_id")) {
        assert_eq!(line.split(',').count(), header_cols, "{line}");
        assert!(line.contains(",ok,"), "{line}");
    }
}
