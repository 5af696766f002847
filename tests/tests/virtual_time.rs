//! Virtual time: the same experiment on the discrete-event clock, checked
//! against the same experiment in real time on launched `sglab sim`
//! processes; determinism across processes and `--jobs`; what it refuses.

use std::path::{Path, PathBuf};

use sglab_tests::*;

fn body(nodes: &str, extra: &str) -> String {
    format!(
        r#"
[workload]
num_requests = 60
input_len = 256
output_len = 24
range_ratio = 0.5

[arrival]
process = "poisson"
rate = 25.0

[[nodes]]
launch = "sim"
replicas = 2
args = [{nodes}]

[routing]
plugin = "round-robin"
{extra}
"#
    )
}

fn mean(rows: &[std::collections::HashMap<String, String>], col: &str) -> f64 {
    let v: Vec<f64> = rows.iter().filter(|r| r["status"] == "ok").map(|r| num(r, col)).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// Runs `exp` in `clock` time; returns its run directory.
fn run(s: &Scratch, name: &str, text: &str, clock: &str, extra: &[&str]) -> PathBuf {
    let exp = s.write(&format!("{name}.toml"), &experiment(name, text));
    let mut args = vec!["--clock", clock];
    args.extend_from_slice(extra);
    let out = run_experiment(&s.path, &exp, &args);
    assert!(out.status.success(), "{clock} run failed: {}", stderr(&out));
    run_dir(&s.path, name)
}

#[test]
fn fixed_profile_is_exact_and_matches_real_time() {
    let s = Scratch::new("vt-fixed");
    let text = body(r#""--profile", "fixed", "--ttft-ms", "20", "--itl-ms", "4""#, "");
    let v = read_csv(&run(&s, "virtual", &text, "virtual", &[]).join("requests.csv"));
    let r = read_csv(&run(&s, "real", &text, "real", &[]).join("requests.csv"));
    assert_eq!(v.rows.len(), 60);
    assert!(v.rows.iter().all(|x| x["status"] == "ok"), "every virtual request ok");
    assert_eq!(r.rows.iter().filter(|x| x["status"] == "ok").count(), 60);
    // Virtual time with no round trip: exactly the configured timing.
    for row in &v.rows {
        assert!((num(row, "ttft") - 0.020).abs() < 1e-9, "ttft {}", row["ttft"]);
        let tpot = (num(row, "server_latency") - num(row, "ttft")) / (num(row, "decode_length") - 1.0);
        assert!((tpot - 0.004).abs() < 1e-9, "tpot {tpot}");
    }
    // Real time adds the client and HTTP, well under a few milliseconds.
    for col in ["ttft", "server_latency"] {
        let (a, b) = (mean(&v.rows, col), mean(&r.rows, col));
        assert!(b >= a - 1e-4 && b - a < 0.004, "{col}: virtual {a}, real {b}");
    }
    // Same arrivals: the same request lengths. Rows are in completion order,
    // which real time may swap for requests finishing together: compare by id.
    let by_id = |rows: &[std::collections::HashMap<String, String>]| {
        let mut v: Vec<(u64, String)> =
            rows.iter().map(|x| (num(x, "req_id") as u64, x["input_length"].clone())).collect();
        v.sort();
        v
    };
    assert_eq!(by_id(&v.rows), by_id(&r.rows));
}

#[test]
fn scheduler_profile_matches_real_time_loosely() {
    let s = Scratch::new("vt-sched");
    let text = body(r#""--profile", "llama-3.1-8b-h100""#, "");
    let v = summary(&run(&s, "virtual", &text, "virtual", &[]));
    let r = summary(&run(&s, "real", &text, "real", &[]));
    assert_eq!(v["clock"], "virtual");
    assert_eq!(v["metrics"]["requests"], r["metrics"]["requests"], "same counts by status");
    for k in ["ttft", "tpot", "server_latency"] {
        let (a, b) = (v["metrics"][k]["mean"].as_f64().unwrap(), r["metrics"][k]["mean"].as_f64().unwrap());
        // The 2-core CI machine is noisy: 15 % or 3 ms.
        assert!((a - b).abs() <= (0.15 * b).max(0.003), "{k} mean: virtual {a}, real {b}");
    }
    assert!(v["host"]["speedup"].as_f64().unwrap() > 1.0, "{}", v["host"]);
    let vt = &v["virtual_time"];
    assert!(vt["forward_passes"].as_u64().unwrap() > 60, "{vt}");
    assert!(vt["simulated_s"].as_f64().unwrap() > 1.0, "{vt}");
}

/// `summary.json` without its `host` block (where, when, wall and CPU
/// times) and the experiment's name.
fn stable_summary(dir: &Path) -> serde_json::Value {
    let mut v = summary(dir);
    let o = v.as_object_mut().unwrap();
    assert!(o.remove("host").is_some(), "a host block");
    o.remove("experiment");
    v
}

#[test]
fn runs_are_byte_identical_across_processes_and_jobs() {
    let s = Scratch::new("vt-det");
    let text = r#"
[workload]
dataset = "shared-prefix"
num_groups = 4
prompts_per_group = 30
system_prompt_len = 1024
question_len = 64
output_len = 32

[arrival]
process = "poisson"
rate = 40.0

[[nodes]]
launch = "sim"
replicas = 3
args = ["--profile", "llama-3.1-8b-h100"]

[routing]
plugin = "cache-aware"

[results]
server_metrics_interval_s = 0.5
"#;
    let a = run(&s, "a", text, "virtual", &[]);
    let b = run(&s, "b", text, "virtual", &[]);
    let csv = std::fs::read(a.join("requests.csv")).unwrap();
    assert_eq!(csv, std::fs::read(b.join("requests.csv")).unwrap(), "requests.csv differs");
    assert_eq!(stable_summary(&a), stable_summary(&b));
    assert!(stable_summary(&a)["metrics"]["prefix_cache_hit_rate"].as_f64().unwrap() > 0.5);
    let m = read_csv(&a.join("server_metrics.csv"));
    assert!(m.rows.len() >= 3 * 4, "samples of 3 nodes every 0.5 s");
    assert_eq!(
        std::fs::read(a.join("server_metrics.csv")).unwrap(),
        std::fs::read(b.join("server_metrics.csv")).unwrap()
    );

    // A sweep: the same points with 1 and 2 jobs.
    let sweep = format!(
        "{text}\n[sweep]\n\"arrival.rate\" = [20.0, 60.0]\n\"routing.plugin\" = [\"cache-aware\", \"round-robin\"]\n"
    );
    let exp = s.write("sweep.toml", &experiment("sw", &sweep));
    let mut dirs = Vec::new();
    for jobs in ["1", "2"] {
        let out_dir = s.path.join(format!("sweep-jobs{jobs}"));
        let out = run_experiment(
            &s.path,
            &exp,
            &["--clock", "virtual", "--jobs", jobs, "--resume", out_dir.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        dirs.push(out_dir);
    }
    let points: Vec<_> =
        std::fs::read_dir(&dirs[0]).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    assert_eq!(points.len(), 4);
    for p in points {
        let name = p.file_name().unwrap();
        assert_eq!(
            std::fs::read(p.join("requests.csv")).unwrap(),
            std::fs::read(dirs[1].join(name).join("requests.csv")).unwrap(),
            "{name:?}"
        );
    }
    let table = read_csv(&dirs[1].join("sweep.csv"));
    assert_eq!(table.rows.len(), 4);
}

#[test]
fn one_point_at_a_time_into_a_shared_directory() {
    let s = Scratch::new("vt-point");
    let text = format!(
        "{}\n[sweep]\n\"arrival.rate\" = [10.0, 20.0, 30.0]\n",
        body(r#""--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1""#, "")
    );
    let exp = s.write("p.toml", &experiment("p", &text));
    let shared = s.path.join("shared");
    for k in ["2", "0"] {
        let out =
            run_experiment(&s.path, &exp, &["--clock", "virtual", "--point", k, "--resume", shared.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let table = read_csv(&shared.join("sweep.csv"));
    let got: Vec<&str> = table.rows.iter().map(|r| r["point"].as_str()).collect();
    assert_eq!(got, ["0", "2"]);
    std::fs::remove_file(shared.join("sweep.csv")).unwrap();
    let out = sglab(&s.path).args(["report", shared.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_csv(&shared.join("sweep.csv")).rows.len(), 2);
    let out = run_experiment(&s.path, &exp, &["--clock", "virtual", "--point", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--point 3: the sweep has 3 point(s)"), "{}", stderr(&out));
}

#[test]
fn faults_are_modelled_deterministically() {
    let s = Scratch::new("vt-faults");
    let text = body(r#""--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1", "--fail-rate", "0.3""#, "");
    let csv = read_csv(&run(&s, "f", &text, "virtual", &[]).join("requests.csv"));
    let failed: Vec<_> = csv.rows.iter().filter(|r| r["status"] == "error").collect();
    assert!((8..=30).contains(&failed.len()), "{} failed", failed.len());
    assert!(failed.iter().all(|r| r["error_kind"] == "http" && r["error"].contains("--fail-rate")));
    let text = body(r#""--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1", "--abort-after-tokens", "3""#, "");
    let csv = read_csv(&run(&s, "cut", &text, "virtual", &[]).join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["error_kind"] == "stream_cut" && r["decode_length"] == "3"));
}

#[test]
fn what_virtual_time_refuses_exits_2_naming_the_key() {
    let s = Scratch::new("vt-refuse");
    let cases = [
        (body(r#""--time-scale", "0.5""#, ""), "nodes[0].args"),
        (body(r#""--profile", "nope""#, ""), "nodes[0].args"),
        (body(r#""--bogus-flag""#, ""), "nodes[0].args"),
        (body("", "mode = \"sglang-router\"\npolicy = \"round_robin\""), "routing.mode"),
        ("[workload]\nnum_requests = 3\n[[nodes]]\nurl = \"http://127.0.0.1:9\"\n".to_owned(), "nodes[0].launch"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let exp = s.write(&format!("r{i}.toml"), &experiment("r", text));
        let out = run_experiment(&s.path, &exp, &["--clock", "virtual"]);
        assert_eq!(out.status.code(), Some(2), "case {i}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "case {i}: {}", stderr(&out));
    }
    let exp = s.write("u.toml", &experiment("u", &body("", "")));
    let out = run_experiment(&s.path, &exp, &["--clock", "virtual", "--url", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--url is not available in virtual time"), "{}", stderr(&out));
    assert!(!s.path.join("results").exists(), "nothing started");
}

#[test]
fn server_snapshots_reach_the_routing_plugin() {
    // The engines' samples are each node's `server` snapshot: weighted-score
    // scores KV usage and the server's queue from them, round-robin ignores them.
    let s = Scratch::new("vt-snap");
    let nodes = |router: &str, every: f64| {
        format!(
            r#"
[workload]
dataset = "shared-prefix"
num_groups = 6
prompts_per_group = 40
system_prompt_len = 3000
question_len = 200
output_len = 200

[arrival]
process = "poisson"
rate = 30.0

[[nodes]]
launch = "sim"
replicas = 3
args = ["--profile", "llama-3.1-8b-h100", "--max-total-tokens", "60000"]

[routing]
plugin = "{router}"

[results]
server_metrics_interval_s = {every}
"#
        )
    };
    let placement = |name: &str, router: &str, every: f64| -> Vec<String> {
        let dir = run(&s, name, &nodes(router, every), "virtual", &[]);
        read_csv(&dir.join("requests.csv")).rows.iter().map(|r| r["node"].clone()).collect()
    };
    let (with, without) = (placement("ws1", "weighted-score", 0.02), placement("ws0", "weighted-score", 0.0));
    let changed = with.iter().zip(&without).filter(|(a, b)| a != b).count();
    assert!(changed > 10, "weighted-score placed only {changed} of 240 requests differently with server snapshots");
    assert_eq!(placement("rr1", "round-robin", 0.02), placement("rr0", "round-robin", 0.0));
}

#[test]
fn plugin_failures_end_the_run_as_in_real_time() {
    let s = Scratch::new("vt-hostile");
    let cases = [
        (
            "routing",
            env!("SGLAB_TEST_PLUGIN_SPIN"),
            "routing plugin 'spin' failed in route: deadline of 50 ms exceeded",
        ),
        (
            "routing",
            env!("SGLAB_TEST_PLUGIN_BAD_NODE"),
            "routing plugin 'bad-node' failed in route: invalid answer: dispatch to node 99 for request 3",
        ),
        (
            "batching",
            env!("SGLAB_TEST_PLUGIN_BAD_RELEASE"),
            "batching plugin 'bad-release' failed in poll: invalid answer: released request 1000000",
        ),
    ];
    for (i, (slot, plugin, needle)) in cases.iter().enumerate() {
        let name = format!("h{i}");
        let text = format!(
            "[workload]\nnum_requests = 12\ninput_len = 32\noutput_len = 20\n\n[arrival]\nprocess = \"constant\"\nrate = 100.0\n\n\
             [sandbox]\ndeadline_ms = 50\n\n[[nodes]]\nlaunch = \"sim\"\nargs = [\"--profile\", \"fixed\", \"--ttft-ms\", \"5\", \"--itl-ms\", \"1\"]\n\n\
             [{slot}]\nplugin = \"{plugin}\"\n"
        );
        let exp = s.write(&format!("{name}.toml"), &experiment(&name, &text));
        let out = run_experiment(&s.path, &exp, &["--clock", "virtual", "--trace-decisions"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{name}: {}", stderr(&out));
        let dir = run_dir(&s.path, &name);
        let csv = read_csv(&dir.join("requests.csv"));
        assert_eq!(csv.rows.len(), 12, "every request is accounted for");
        let ok = csv.rows.iter().filter(|r| r["status"] == "ok").count();
        assert!(csv.rows.iter().all(|r| r["status"] == "ok" || r["error"].starts_with("not sent: the run stopped")));
        assert_eq!(summary(&dir)["status"], "failed");
        if *slot == "routing" {
            // Three requests were routed before the failure, and awaited.
            assert_eq!(ok, 3, "{name}");
            let placed = json_lines(&dir.join("decisions.jsonl")).iter().filter(|d| d["node"] == 0).count();
            assert_eq!(placed, 3, "{name}: decisions.jsonl");
        }
    }
}

#[test]
fn closed_loop_ramp_up_staggers_the_first_requests() {
    let s = Scratch::new("vt-ramp");
    // 4 users over 2 s: first requests at 0, 0.5, 1, 1.5 s; 512 tokens at
    // 4 ms each outlast the ramp, so no user is back before the last starts.
    let text = r#"
[workload]
num_requests = 8
input_len = 64
output_len = 512
range_ratio = 1.0

[arrival]
process = "closed-loop"
concurrency = 4
ramp_up_s = 2.0

[[nodes]]
launch = "sim"
args = ["--profile", "fixed", "--ttft-ms", "20", "--itl-ms", "4"]
"#;
    let rows = read_csv(&run(&s, "ramp", text, "virtual", &[]).join("requests.csv")).rows;
    let first: Vec<f64> = rows.iter().take(4).map(|r| num(r, "arrival_time")).collect();
    assert_eq!(first, [0.0, 0.5, 1.0, 1.5]);
    // Each later request follows a finish, never before the ramp ends.
    assert!(rows[4..].iter().all(|r| num(r, "arrival_time") > 1.5));
    // Without the ramp they all start at once.
    let flat = text.replace("ramp_up_s = 2.0\n", "");
    let rows = read_csv(&run(&s, "flat", &flat, "virtual", &[]).join("requests.csv")).rows;
    assert!(rows.iter().take(4).all(|r| num(r, "arrival_time") == 0.0));
    // Elsewhere the key is refused, by name.
    let bad = experiment("bad", &text.replace("\"closed-loop\"", "\"poisson\""));
    let out = run_experiment(&s.path, &s.write("bad.toml", &bad), &["--check"]);
    assert!(stderr(&out).contains("arrival.ramp_up_s") && stderr(&out).contains("closed-loop"), "{}", stderr(&out));
}
