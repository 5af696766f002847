//! The load engine end to end: backends, datasets, arrivals and stop rules
//! against real `sglab sim` processes.

use sglab_tests::*;

fn fixed() -> SimNode {
    SimNode::start(&["--profile", "fixed", "--ttft-ms", "10", "--itl-ms", "2"])
}

/// Schedule lag of one record, in seconds (arrival minus scheduled).
fn lag_s(r: &std::collections::HashMap<String, String>) -> f64 {
    num(r, "arrival_time") - num(r, "scheduled_time")
}

#[test]
fn killing_a_node_mid_run_records_every_request_and_the_run_finishes() {
    let a = fixed();
    // Node 1 dies (exits) once it has finished 5 requests, with others in
    // flight: a crash at a point fixed by the run, not by the test's timing
    // (a sleep-then-kill raced the run's startup on a busy machine).
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "10", "--itl-ms", "2", "--crash-after-requests", "5"]);
    let s = Scratch::new("kill");
    let exp = s.write(
        "exp.toml",
        &experiment("kill", "[workload]\nnum_requests = 60\ninput_len = 16\noutput_len = 100\n\n[arrival]\nprocess = \"constant\"\nrate = 40.0\n"),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--url", &b.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "kill").join("requests.csv"));
    assert_eq!(csv.rows.len(), 60);
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" || r["status"] == "error"), "{:?}", csv.rows);
    let errors: Vec<_> = csv.rows.iter().filter(|r| r["status"] == "error").collect();
    assert!(!errors.is_empty(), "requests in flight on the killed node fail");
    assert!(errors.iter().all(|r| r["node"] == "1" && !r["error"].is_empty()));
    // After the failure node 1 is unhealthy: the later requests all go to node 0 and succeed.
    let last = csv.rows.iter().filter(|r| r["req_id"].parse::<u32>().unwrap() >= 40).collect::<Vec<_>>();
    assert!(last.iter().all(|r| r["status"] == "ok" && r["node"] == "0"), "{last:?}");
}

#[test]
fn openai_backends_stream_and_not_with_exact_token_counts() {
    // A 25 ms ITL: the sim merges the tokens of steps that its engine
    // thread reaches late into one event, so a 2 ms ITL on a busy machine
    // made fewer than one event per token; 25 ms leaves a wide margin.
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "10", "--itl-ms", "25"]);
    let s = Scratch::new("openai");
    for (backend, stream) in
        [("openai-completions", true), ("openai-chat", true), ("openai-chat", false), ("sglang", false)]
    {
        let name = format!("{backend}-{stream}");
        let body = format!(
            "[workload]\nnum_requests = 6\ninput_len = 24\noutput_len = 5\nbackend = \"{backend}\"\nstream = {stream}\n\n\
             [arrival]\nprocess = \"closed-loop\"\nconcurrency = 2\n"
        );
        let exp = s.write("exp.toml", &experiment(&name, &body));
        let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dir = run_dir(&s.path, &name);
        let csv = read_csv(&dir.join("requests.csv"));
        assert_eq!(csv.rows.len(), 6);
        for r in &csv.rows {
            assert_eq!(r["status"], "ok", "{name}: {r:?}");
            assert_eq!(r["decode_length"], "5", "{name}");
            if backend != "openai-chat" {
                // Prompt text of 24 pseudo-words counts 24 tokens on the sim (chat adds a template).
                assert_eq!(r["input_length"], "24", "{name}");
            }
            if stream {
                assert!(num(r, "ttft") >= 0.010 && num(r, "ttft") < 0.030, "{name}: {r:?}");
                assert_eq!(r["token_events"], "5", "{name}");
            } else {
                assert_eq!(r["ttft"], r["server_latency"], "{name}: non-streamed TTFT is the latency");
            }
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let counts = summary["workload"]["token_counts"].as_str().unwrap();
        assert_eq!(counts.starts_with("exact"), backend == "sglang", "{name}: {counts}");
    }
}

#[test]
fn datasets_and_trace_arrivals_from_files() {
    let node = fixed();
    let s = Scratch::new("datasets");
    s.write(
        "trace.jsonl",
        "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [1, 2]}\n\
         {\"timestamp\": 300, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [1, 3]}\n\
         {\"timestamp\": 600, \"input_length\": 100, \"output_length\": 3, \"hash_ids\": [4]}\n",
    );
    let exp = s.write(
        "exp.toml",
        &experiment("trace", "[workload]\ndataset = \"trace\"\npath = \"trace.jsonl\"\n\n[arrival]\nprocess = \"trace\"\ntime_scale = 0.5\n"),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "trace").join("requests.csv"));
    let mut rows = csv.rows.clone();
    rows.sort_by_key(|r| r["req_id"].parse::<u32>().unwrap());
    let sched: Vec<f64> = rows.iter().map(|r| num(r, "scheduled_time")).collect();
    assert_eq!(sched, vec![0.0, 0.15, 0.3], "trace timestamps (ms) x 0.5, replayed exactly");
    assert_eq!(rows.iter().map(|r| r["input_length"].as_str()).collect::<Vec<_>>(), ["600", "600", "100"]);
    // Replayed open-loop: each request arrives before the next one is due
    // (timestamps 150 ms apart; a request takes about 16 ms), whatever the
    // machine's timer jitter; and the summary's lag is these rows' lag.
    for r in &rows {
        assert!((0.0..0.15).contains(&lag_s(r)), "{r:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&s.path, "trace").join("summary.json")).unwrap())
            .unwrap();
    let max = rows.iter().map(lag_s).fold(0.0, f64::max) * 1e3;
    let lag = &summary["schedule_lag_ms"];
    assert_eq!(lag["count"], 3);
    assert!((lag["max"].as_f64().unwrap() - max).abs() < 1e-3, "{lag} vs {max} ms");
    // A missing file is a config error naming the key.
    let bad = s.write("bad.toml", &experiment("bad", "[workload]\ndataset = \"sharegpt\"\npath = \"nope.json\"\n"));
    let out = run_experiment(&s.path, &bad, &["--url", &node.url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("workload.path: cannot read"), "{}", stderr(&out));
}

#[test]
fn stop_rules_end_dispatch_and_keep_every_record() {
    let node = fixed();
    let s = Scratch::new("stop");
    let exp = s.write(
        "exp.toml",
        &experiment("stop", "[workload]\nnum_requests = 200\ninput_len = 8\noutput_len = 10\n\n[arrival]\nprocess = \"constant\"\nrate = 100.0\n\n[client]\nmax_duration_s = 0.5\nwarmup_requests = 2\n"),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    assert!(out.status.success(), "a stop rule is not a failure: {}", stderr(&out));
    assert!(stderr(&out).contains("dispatch stopped early: max_duration_s = 0.5 reached"), "{}", stderr(&out));
    let dir = run_dir(&s.path, "stop");
    let csv = read_csv(&dir.join("requests.csv"));
    assert_eq!(csv.rows.len(), 200, "warmup requests are not recorded");
    let sent = csv.rows.iter().filter(|r| !r["to_server_time"].is_empty()).count();
    assert!((45..=56).contains(&sent), "about 0.5 s x 100 req/s were sent: {sent}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "stopped");
    assert_eq!(summary["workload"]["warmup_requests"], 2);
    // The lag counts only requests that arrived: the ~150 cut off by the
    // stop rule have no arrival (counted, they would add up to 1.5 s).
    let arrived: Vec<_> = csv.rows.iter().filter(|r| !r["arrival_time"].is_empty()).collect();
    assert!((sent..=sent + 2).contains(&arrived.len()), "{} arrived, {sent} sent", arrived.len());
    let lag = &summary["schedule_lag_ms"];
    assert_eq!(lag["count"], arrived.len());
    let max = arrived.iter().map(|r| lag_s(r)).fold(0.0, f64::max) * 1e3;
    assert!((lag["max"].as_f64().unwrap() - max).abs() < 1e-3, "{lag} vs {max} ms");
    assert!(max < 150.0, "no arrival waits for the stop: {max} ms");
}
