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
"arrival.rate" = [10, 30]
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
    assert_eq!(csv.rows.len(), 4);
    let modes: Vec<&str> = csv.rows.iter().map(|r| r["routing.mode"].as_str()).collect();
    assert_eq!(modes, ["plugin", "sglang-router", "plugin", "sglang-router"]);
    for p in ["ttft_p50_vs_rate.svg", "ttft_p99_vs_rate.svg", "total_latency_p99_vs_rate.svg"] {
        let svg = std::fs::read_to_string(base.join(p)).unwrap();
        assert!(svg.contains("mode=plugin") && svg.contains("mode=sglang-router") && svg.contains("<polyline"), "{p}");
    }
    for r in &csv.rows {
        assert_eq!((r["status"].as_str(), r["requests_ok"].as_str()), ("ok", "10"), "{r:?}");
        assert!(num(r, "ttft_mean_ms") > 5.0);
    }
    let router_point = base.join(&csv.rows[1]["dir"]);
    assert!(router_point.join("logs/router.log").is_file());
    // The nodes' config is the same at every point: they were started once and reused.
    assert!(base.join(&csv.rows[0]["dir"]).join("logs/sim-0.log").is_file());
    for r in &csv.rows[1..] {
        assert!(!base.join(&r["dir"]).join("logs/sim-0.log").exists(), "nodes restarted at {}", r["dir"]);
    }
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
    assert_eq!(stdout(&out).matches("done before, skipped").count(), 4, "{}", stdout(&out));
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

#[test]
fn sglang_nodes_get_the_exact_command_line_and_gpus_per_replica() {
    let s = Scratch::new("fake-sglang");
    let fake = s.write(
        "fake-python",
        "#!/bin/sh\n\
         out=\"$FAKE_RECORD_DIR/$$.txt\"\n\
         printf '%s\\n' \"$@\" > \"$out\"\n\
         echo \"CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\" >> \"$out\"\n\
         while [ $# -gt 0 ]; do case \"$1\" in --host) host=$2;; --port) port=$2;; esac; shift; done\n\
         exec \"$FAKE_SGLAB\" sim --host \"$host\" --port \"$port\" --profile fixed --ttft-ms 1 --itl-ms 1\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let record = s.path.join("record");
    std::fs::create_dir_all(&record).unwrap();
    let exp = s.write(
        "exp.toml",
        &experiment(
            "fake-sglang",
            &format!(
                "[workload]\nnum_requests = 8\ninput_len = 8\noutput_len = 4\n\n[arrival]\nprocess = \"burst\"\n\n\
                 [[nodes]]\nlaunch = \"sglang\"\nmodel_path = \"meta-llama/Llama-3.1-8B-Instruct\"\nreplicas = 2\n\
                 gpus = [\"0,1\", \"2,3\"]\npython = \"{}\"\nargs = [\"--tp\", \"2\", \"--mem-fraction-static\", \"0.85\"]\n",
                fake.display()
            ),
        ),
    );
    let out = sglab(&s.path)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .env("FAKE_SGLAB", sglab_bin())
        .env("FAKE_RECORD_DIR", &record)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut calls: Vec<Vec<String>> = std::fs::read_dir(&record)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(str::to_owned).collect())
        .collect();
    calls.sort_by(|a, b| a.last().cmp(&b.last()));
    assert_eq!(calls.len(), 2, "one process per replica");
    for (call, gpus) in calls.iter().zip(["0,1", "2,3"]) {
        let port: u16 = call[7].parse().expect("a port");
        assert!(port > 0);
        let want = [
            "-m",
            "sglang.launch_server",
            "--model-path",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--host",
            "127.0.0.1",
            "--port",
            &call[7],
            "--tp",
            "2",
            "--mem-fraction-static",
            "0.85",
        ];
        assert_eq!(call[..12], want, "{call:?}");
        assert_eq!(call[12], format!("CUDA_VISIBLE_DEVICES={gpus}"));
    }
    let csv = read_csv(&run_dir(&s.path, "fake-sglang").join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"));
}

#[test]
fn a_startup_timeout_names_the_node_shows_its_log_and_tears_down_the_rest() {
    let s = Scratch::new("startup");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "startup",
            "[[nodes]]\nlaunch = \"sim\"\n\n\
             [[nodes]]\nlaunch = \"command\"\ncommand = [\"sh\", \"-c\", \"echo starting on port {port}; sleep 60\"]\nstartup_timeout_s = 1.5\n",
        ),
    );
    let mark = format!("startup-{}", std::process::id());
    let out = sglab(&s.path).arg("run").arg(&exp).arg("--quiet").env("SGLAB_TEST_MARK", &mark).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("command-1 at http://127.0.0.1:") && err.contains("not ready after 2 s"), "{err}");
    assert!(err.contains("starting on port"), "the node's log tail is shown: {err}");
    assert!(marked_processes(&mark).is_empty(), "processes left behind: {:?}", marked_processes(&mark));
}

#[test]
fn crashing_launched_nodes_lose_requests_as_errors_and_leave_no_process() {
    let s = Scratch::new("node-crash");
    let exp = s.write(
        "exp.toml",
        &experiment(
            "node-crash",
            "[workload]\nnum_requests = 40\ninput_len = 8\noutput_len = 30\n\n[arrival]\nprocess = \"constant\"\nrate = 50.0\n\n\
             [[nodes]]\nlaunch = \"sim\"\nreplicas = 2\nargs = [\"--profile\", \"fixed\", \"--ttft-ms\", \"5\", \"--itl-ms\", \"2\", \"--crash-after-requests\", \"3\"]\n",
        ),
    );
    let mark = format!("crash-{}", std::process::id());
    let out = sglab(&s.path).arg("run").arg(&exp).arg("--quiet").env("SGLAB_TEST_MARK", &mark).output().unwrap();
    assert!(out.status.success(), "failed requests are data: {}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "node-crash").join("requests.csv"));
    assert_eq!(csv.rows.len(), 40);
    assert!(csv.rows.iter().any(|r| r["status"] == "error"));
    assert!(csv.rows.iter().all(|r| matches!(r["status"].as_str(), "ok" | "error" | "rejected")), "{:?}", csv.rows);
    assert!(marked_processes(&mark).is_empty(), "processes left behind: {:?}", marked_processes(&mark));
}
