//! `sglab sim` speaks SGLang's HTTP API: shapes, errors, endpoints, faults.

use sglab_tests::*;

#[test]
fn generate_streams_sglang_events_and_rejects_what_sglang_rejects() {
    let node = SimNode::start(&["--enable-metrics"]);
    // Non-streaming: one JSON object with text, output_ids and meta_info.
    let (st, body) = http(
        &node.url,
        "POST",
        "/generate",
        r#"{"rid":"r1","input_ids":[1,2,3],"sampling_params":{"max_new_tokens":4,"ignore_eos":true}}"#,
    );
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["meta_info"]["id"], "r1");
    assert_eq!(v["meta_info"]["completion_tokens"], 4);
    assert_eq!(v["meta_info"]["prompt_tokens"], 3);
    assert_eq!(v["meta_info"]["finish_reason"]["type"], "length");
    assert_eq!(v["output_ids"].as_array().unwrap().len(), 4);
    assert!(v["meta_info"]["e2e_latency"].as_f64().unwrap() > 0.02, "4 tokens on the 8B profile take > 20 ms");
    // Streaming: cumulative events, then [DONE].
    let (st, body) = http(
        &node.url,
        "POST",
        "/generate",
        r#"{"text":"a b c","sampling_params":{"max_new_tokens":3},"stream":true}"#,
    );
    assert_eq!(st, 200);
    let events: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let counts: Vec<u64> = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["meta_info"]["completion_tokens"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(counts, vec![1, 2, 3]);
    // Unknown sampling keys are a 400, as in SGLang.
    let (st, body) = http(&node.url, "POST", "/generate", r#"{"text":"x","sampling_params":{"max_tokens":3}}"#);
    assert_eq!(st, 400);
    assert!(body.contains("unknown field `max_tokens`"), "{body}");
    // Model and server info, loads, metrics.
    let (st, body) = http(&node.url, "GET", "/get_model_info", "");
    assert_eq!(st, 200);
    assert!(body.contains("\"is_generation\":true"));
    let (_, body) = http(&node.url, "GET", "/server_info", "");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(info["max_total_num_tokens"].as_u64().unwrap() > 400_000);
    assert_eq!(info["internal_states"][0]["effective_max_running_requests_per_dp"], 2048);
    let (_, body) = http(&node.url, "GET", "/v1/loads", "");
    assert!(body.contains("\"num_running_reqs\":0"), "{body}");
    let (st, body) = http(&node.url, "GET", "/metrics", "");
    assert_eq!(st, 200);
    assert!(
        body.contains(
            "sglang:num_requests_total{model_name=\"sglab-sim\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\"} 2"
        ),
        "{body}"
    );
    assert!(body.contains("sglang:time_to_first_token_seconds_count"));
    let (st, _) = http(&node.url, "POST", "/flush_cache", "");
    assert_eq!(st, 200);
}

#[test]
fn openai_routes_send_deltas_and_usage() {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "1", "--itl-ms", "1"]);
    let (st, body) = http(
        &node.url,
        "POST",
        "/v1/completions",
        r#"{"model":"m","prompt":"hello there","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(st, 200);
    let chunks: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, " tok tok tok");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["completion_tokens"].as_u64(), usage["prompt_tokens"].as_u64()), (Some(3), Some(2)));
    assert!(body.trim_end().ends_with("data: [DONE]"));
    let (st, body) = http(
        &node.url,
        "POST",
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#,
    );
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], " tok tok");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn a_crashing_node_loses_requests_as_errors_and_every_record_is_written() {
    let node =
        SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "2", "--crash-after-requests", "5"]);
    let s = Scratch::new("crash");
    let exp = s.write(
        "exp.toml",
        &experiment("crash", "[workload]\nnum_requests = 20\ninput_len = 16\noutput_len = 20\n\n[arrival]\nprocess = \"constant\"\nrate = 100.0\n"),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    assert!(out.status.success(), "request failures are data, not a failed run: {}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "crash").join("requests.csv"));
    assert_eq!(csv.rows.len(), 20);
    let ok = csv.rows.iter().filter(|r| r["status"] == "ok").count();
    let errors: Vec<_> = csv.rows.iter().filter(|r| r["status"] == "error").collect();
    // Once the node is unreachable it is marked unhealthy, and round-robin
    // rejects the rest (no healthy node).
    let rejected: Vec<_> = csv.rows.iter().filter(|r| r["status"] == "rejected").collect();
    // The node exits the moment its engine finishes the 5th request: that
    // request's last events, and on a loaded machine those of one more whose
    // HTTP task had not yet written them, are lost with the connection.
    assert!((3..=5).contains(&ok), "{ok} ok");
    assert!(!errors.is_empty());
    assert_eq!(ok + errors.len() + rejected.len(), 20);
    assert!(errors.iter().all(|r| !r["error"].is_empty() && !r["finish_time"].is_empty()), "{errors:?}");
    assert!(rejected.iter().all(|r| r["error"] == "rejected by the routing plugin: no-healthy-node"), "{rejected:?}");
}

#[test]
fn injected_failures_and_cut_streams_are_recorded() {
    let node = SimNode::start(&[
        "--profile",
        "fixed",
        "--ttft-ms",
        "2",
        "--itl-ms",
        "1",
        "--fail-rate",
        "0.5",
        "--abort-after-tokens",
        "3",
        "--seed",
        "3",
    ]);
    let s = Scratch::new("faults");
    let exp = s.write(
        "exp.toml",
        &experiment("faults", "[workload]\nnum_requests = 30\ninput_len = 8\noutput_len = 10\n\n[arrival]\nprocess = \"constant\"\nrate = 200.0\n"),
    );
    let out = run_experiment(&s.path, &exp, &["--url", &node.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "faults").join("requests.csv"));
    assert_eq!(csv.rows.len(), 30);
    let http500 = csv.rows.iter().filter(|r| r["error"].starts_with("HTTP 500")).count();
    let cut = csv.rows.iter().filter(|r| r["error"] == "stream ended before a finish_reason or [DONE]").count();
    assert!((8..=22).contains(&http500), "{http500} injected 500s of 30 at rate 0.5");
    assert_eq!(http500 + cut, 30, "every other request is cut after 3 tokens");
    // Cut at the first event with at least 3 tokens (a late wake-up of the
    // engine can coalesce tokens 3 and 4 into one event).
    assert!(
        csv.rows
            .iter()
            .filter(|r| r["error"].contains("[DONE]"))
            .all(|r| (3.0..10.0).contains(&num(r, "decode_length")))
    );
}

const PROFILE: &str = r#"
name = "tiny-gpu"
t0_ms = 0.4
w_ms = 5.0
k_ms_per_token = 0.02
q_ms_per_pair = 1e-6
v_ms_per_kv_token = 4e-5
s_ms_per_seq = 0.005
cuda_graph_max_bs = 256
tp_size = 1
gpu_memory_mb = 16000
free_gib = 10.0
weights_gib = 1.0
kv_bytes_per_token = 1048576
context_len = 131072
chunked_prefill_size = 8192
max_prefill_tokens = 16384
"#;

#[test]
fn profile_files_load_and_bad_keys_are_named() {
    let s = Scratch::new("profile");
    let good = s.write("gpu.toml", PROFILE);
    // (10 GiB x 0.5 - 1 GiB) / 1 MiB per token = 4096 tokens.
    let node = SimNode::start(&["--profile", good.to_str().unwrap(), "--mem-fraction-static", "0.5"]);
    let (_, body) = http(&node.url, "GET", "/server_info", "");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["max_total_num_tokens"], 4096);
    assert_eq!(info["internal_states"][0]["effective_max_running_requests_per_dp"], 2048);
    let bad = s.write("bad.toml", &format!("{PROFILE}bogus = 1\n"));
    let out = sglab(&s.path).args(["sim", "--port", "0", "--profile", bad.to_str().unwrap()]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml") && err.contains("unknown field `bogus`"), "{err}");
    let out = sglab(&s.path).args(["sim", "--port", "0", "--max-runing-requests", "4"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--max-runing-requests"), "{}", stderr(&out));
}
