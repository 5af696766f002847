//! Server management: the real sglang-router as a routing mode, sweeps over
//! both modes, and no process left behind.

use std::process::Stdio;
use std::time::Duration;

use sglab_tests::*;

#[test]
fn a_sweep_runs_plugin_and_sglang_router_modes_and_writes_sweep_csv() {
    let s = Scratch::new("sweep");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "sweep",
            r#"
[workload]
dataset = "shared-prefix"
num_groups = 2
prompts_per_group = 5
system_prompt_len = 256
question_len = 16
output_len = 6

[arrival]
process = "poisson"
rate = 20.0

[[nodes]]
launch = "sim"
replicas = 2
args = ["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]

[routing]
policy = "round_robin"

[sweep]
"routing.mode" = ["plugin", "sglang-router"]
"#,
        ),
    );
    let mark = format!("sweep-{}", std::process::id());
    let out = sglab(&s.path)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .env("SGLAB_PYTHON", router_python())
        .env("SGLAB_TEST_MARK", &mark)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let base = run_dir(&s.path, "sweep");
    let csv = read_csv(&base.join("sweep.csv"));
    assert_eq!(csv.rows.len(), 2);
    assert_eq!(csv.rows.iter().map(|r| r["routing.mode"].as_str()).collect::<Vec<_>>(), ["plugin", "sglang-router"]);
    for r in &csv.rows {
        assert_eq!((r["status"].as_str(), r["requests_ok"].as_str()), ("ok", "10"), "{r:?}");
        assert!(num(r, "ttft_mean_ms") > 5.0);
    }
    let router_point = base.join(&csv.rows[1]["dir"]);
    assert!(router_point.join("logs/router.log").is_file());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(router_point.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["router"]["kind"], "sglang-router");
    let reqs = read_csv(&router_point.join("requests.csv"));
    assert!(reqs.rows.iter().all(|r| r["node"].is_empty()), "the router picks the node: attribution unknown");
    // Both workers served the router's traffic (round_robin).
    let sm = read_csv(&router_point.join("server_metrics.csv"));
    assert!(sm.rows.iter().any(|r| r["node"] == "1"));
    assert!(marked_processes(&mark).is_empty(), "processes left behind: {:?}", marked_processes(&mark));
    // --resume skips finished points.
    let out = sglab(&s.path).arg("run").arg(&exp).args(["--quiet", "--resume"]).arg(&base).output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).matches("done before, skipped").count(), 2, "{}", stdout(&out));
}

#[test]
fn sigint_mid_run_keeps_partial_results_exits_130_and_leaves_no_process() {
    let s = Scratch::new("sigint");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "sigint",
            "[workload]\nnum_requests = 400\ninput_len = 64\noutput_len = 200\n\n[arrival]\nprocess = \"constant\"\nrate = 20.0\n\n\
             [[nodes]]\nlaunch = \"sim\"\nreplicas = 2\nargs = [\"--profile\", \"fixed\", \"--ttft-ms\", \"5\", \"--itl-ms\", \"5\"]\n",
        ),
    );
    let mark = format!("sigint-{}", std::process::id());
    let child = sglab(&s.path)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .env("SGLAB_TEST_MARK", &mark)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    assert!(marked_processes(&mark).len() >= 3, "sglab and its two sim nodes run");
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = read_csv(&run_dir(&s.path, "sigint").join("requests.csv"));
    assert_eq!(csv.rows.len(), 400, "every request is recorded");
    assert!(csv.rows.iter().filter(|r| r["status"] == "ok").count() >= 30);
    assert!(csv.rows.iter().any(|r| r["status"] == "cancelled"));
    assert!(marked_processes(&mark).is_empty(), "processes left behind: {:?}", marked_processes(&mark));
}
