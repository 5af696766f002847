//! The built-in plugins: listed, inspectable, and each one routes or
//! batches a real run.

use sglab_tests::*;

#[test]
fn list_and_inspect() {
    let s = Scratch::new("plugins");
    let out = sglab(&s.path).args(["plugin", "list"]).output().unwrap();
    let text = stdout(&out);
    for (name, kind) in [
        ("immediate", "batching"),
        ("max-concurrency", "batching"),
        ("round-robin", "routing"),
        ("random", "routing"),
        ("least-inflight", "routing"),
        ("power-of-two", "routing"),
        ("least-tokens", "routing"),
        ("sticky", "routing"),
        ("static-batch", "batching"),
        ("token-budget", "batching"),
        ("sjf", "batching"),
        ("priority", "batching"),
        ("cache-aware", "routing"),
        ("prefix-hash", "routing"),
        ("weighted-score", "routing"),
    ] {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} not listed: {text}"));
        assert!(line.contains(kind), "{line}");
    }
    let out = sglab(&s.path).args(["plugin", "inspect", env!("SGLAB_TEST_PLUGIN_LEAST_INFLIGHT")]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("name         least-inflight") && text.contains("contract     sglab:strategy@0.2.1"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("sha256") && l.split_whitespace().nth(1).is_some_and(|h| h.len() == 64))
    );
    // Every built-in exports to a .wasm file that inspects as itself, with
    // the same hash as the embedded component.
    for line in text_of_list(&s) {
        let (name, kind) = (line[0].clone(), line[1].clone());
        let file = s.path.join(format!("{name}.wasm"));
        let out = sglab(&s.path).args(["plugin", "export", &name, "--out"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let embedded = stdout(&sglab(&s.path).args(["plugin", "inspect", &name]).output().unwrap());
        let exported = stdout(&sglab(&s.path).args(["plugin", "inspect"]).arg(&file).output().unwrap());
        let sha = |t: &str| t.lines().find(|l| l.starts_with("sha256")).map(str::to_owned);
        assert!(exported.contains(&format!("name         {name}\n")), "{exported}");
        assert!(exported.contains(&format!("kind         {kind}\n")), "{exported}");
        assert_eq!(sha(&exported), sha(&embedded), "{name}");
        assert!(sha(&exported).is_some());
    }
    let out = sglab(&s.path).args(["plugin", "export", "nope"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("no built-in plugin \"nope\""), "{}", stderr(&out));
    let out = sglab(&s.path).args(["plugin", "inspect", "max-concurrency"]).output().unwrap();
    assert!(
        stdout(&out).contains("cap (integer): requests in flight at most"),
        "options are documented: {}",
        stdout(&out)
    );
}

/// (name, kind) of every plugin `sglab plugin list` prints.
fn text_of_list(s: &Scratch) -> Vec<Vec<String>> {
    let out = sglab(&s.path).args(["plugin", "list"]).output().unwrap();
    let rows: Vec<Vec<String>> =
        stdout(&out).lines().skip(1).map(|l| l.split_whitespace().take(2).map(str::to_owned).collect()).collect();
    assert_eq!(rows.len(), 15, "6 batching and 9 routing built-ins");
    rows
}

#[test]
fn every_builtin_runs_a_real_workload() {
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "2"]);
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "2"]);
    let s = Scratch::new("builtins");
    for (name, table) in [
        ("random", "[routing]\nplugin = \"random\"\n"),
        ("least-inflight", "[routing]\nplugin = \"least-inflight\"\nconfig = { max_in_flight = 3 }\n"),
        ("power-of-two", "[routing]\nplugin = \"power-of-two\"\n"),
        ("least-tokens", "[routing]\nplugin = \"least-tokens\"\n"),
        ("sticky", "[routing]\nplugin = \"sticky\"\n"),
        ("max-concurrency", "[batching]\nplugin = \"max-concurrency\"\nconfig = { cap = 2 }\n"),
        ("cache-aware", "[routing]\nplugin = \"cache-aware\"\nconfig = { balance_abs_threshold = 2 }\n"),
        ("prefix-hash", "[routing]\nplugin = \"prefix-hash\"\n"),
        ("weighted-score", "[routing]\nplugin = \"weighted-score\"\n"),
        ("token-budget", "[batching]\nplugin = \"token-budget\"\nconfig = { budget = 54 }\n"),
        ("sjf", "[batching]\nplugin = \"sjf\"\nconfig = { cap = 2 }\n"),
        ("priority", "[batching]\nplugin = \"priority\"\nconfig = { cap = 2 }\n"),
    ] {
        let body = format!(
            "[workload]\nnum_requests = 30\ninput_len = 8\noutput_len = 10\nrange_ratio = 1.0\n\n[arrival]\nprocess = \"burst\"\n\n{table}"
        );
        let exp = s.write("exp.toml", &experiment(name, &body));
        let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--url", &b.url]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dir = run_dir(&s.path, name);
        let csv = read_csv(&dir.join("requests.csv"));
        assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "{name}");
        let on0 = csv.rows.iter().filter(|r| r["node"] == "0").count();
        assert!(on0 > 0 && on0 < 30, "{name}: both nodes used ({on0} on node 0)");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let max = summary["metrics"]["max_concurrency"].as_u64().unwrap();
        match name {
            "max-concurrency" | "sjf" | "priority" => assert_eq!(max, 2, "{name}: the cap holds"),
            // A request costs 8 + 10 tokens, so 3 go at once; as output
            // arrives their cost falls, but never below their 8 prompt tokens.
            "token-budget" => assert!((3..=6).contains(&max), "{name}: 54 tokens hold 3 to 6: {max}"),
            "least-inflight" => assert!(max <= 6, "3 per node: {max}"),
            _ => assert_eq!(max, 30, "{name}: a burst goes out at once"),
        }
    }
}

/// Runs `rows` (JSONL lines) as one burst through routing plugin `table`
/// on two nodes and returns each request's node, in request order.
fn nodes_chosen(name: &str, rows: &[String], table: &str) -> Vec<String> {
    // A long TTFT keeps every request in flight while the burst is routed.
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "300", "--itl-ms", "1"]);
    let b = SimNode::start(&["--profile", "fixed", "--ttft-ms", "300", "--itl-ms", "1"]);
    let s = Scratch::new(name);
    s.write("reqs.jsonl", &(rows.join("\n") + "\n"));
    let body =
        format!("[workload]\ndataset = \"jsonl\"\npath = \"reqs.jsonl\"\n\n[arrival]\nprocess = \"burst\"\n\n{table}");
    let exp = s.write("exp.toml", &experiment(name, &body));
    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--url", &b.url]);
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    let mut rows = read_csv(&run_dir(&s.path, name).join("requests.csv")).rows;
    rows.sort_by_key(|r| num(r, "req_id") as u64);
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{name}");
    rows.iter().map(|r| r["node"].clone()).collect()
}

#[test]
fn least_tokens_weighs_prompt_and_output_tokens() {
    // One 100-token request, then nine of 10 tokens (each with 4 output
    // tokens): node 1 takes small ones until it holds more than node 0's 104.
    let ids = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let mut rows = vec![format!("{{\"input_ids\":[{}],\"output_len\":4}}", ids(100))];
    rows.extend((0..9).map(|_| format!("{{\"input_ids\":[{}],\"output_len\":4}}", ids(10))));
    let got = nodes_chosen("least-tokens", &rows, "[routing]\nplugin = \"least-tokens\"\n");
    assert_eq!(got, ["0", "1", "1", "1", "1", "1", "1", "1", "1", "0"]);
}

#[test]
fn sticky_keeps_a_session_on_its_node() {
    // Sessions a, b, then a five times, then b: new sessions go to the least
    // loaded node; returning ones stay where they were, however loaded.
    let rows: Vec<String> = ["a", "b", "a", "a", "a", "a", "a", "b"]
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{{\"prompt\":\"turn {i}\",\"output_len\":4,\"session\":\"{s}\"}}"))
        .collect();
    let got = nodes_chosen("sticky", &rows, "[routing]\nplugin = \"sticky\"\nconfig = { ttl_ms = 60000 }\n");
    assert_eq!(got, ["0", "1", "0", "0", "0", "0", "0", "1"]);
}

#[test]
fn static_batch_releases_at_size_or_timeout() {
    // size 3, timeout 200 ms. Three at t=0 fill a batch and go at once; one
    // alone at 0.5 s goes when its 200 ms run out; two at 1.0 s and 1.05 s go
    // together when the older one's 200 ms run out.
    let a = SimNode::start(&["--profile", "fixed", "--ttft-ms", "5", "--itl-ms", "1"]);
    let s = Scratch::new("static-batch");
    let rows: Vec<String> = [0.0, 0.0, 0.0, 0.5, 1.0, 1.05]
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{{\"prompt\":\"request {i}\",\"output_len\":2,\"timestamp\":{t}}}"))
        .collect();
    s.write("reqs.jsonl", &(rows.join("\n") + "\n"));
    let body = "[workload]\ndataset = \"jsonl\"\npath = \"reqs.jsonl\"\n\n[arrival]\nprocess = \"trace\"\n\n\
                [batching]\nplugin = \"static-batch\"\nconfig = { size = 3, timeout_ms = 200 }\n";
    let exp = s.write("exp.toml", &experiment("static-batch", body));
    let out = run_experiment(&s.path, &exp, &["--url", &a.url, "--trace-decisions"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = run_dir(&s.path, "static-batch");
    let mut rows = read_csv(&dir.join("requests.csv")).rows;
    rows.sort_by_key(|r| num(r, "req_id") as u64);
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    let queued: Vec<f64> = rows.iter().map(|r| num(r, "queue_time")).collect();
    for (i, (lo, hi)) in [(0.0, 0.05), (0.0, 0.05), (0.0, 0.05), (0.2, 0.28), (0.2, 0.28)].iter().enumerate() {
        assert!((*lo..*hi).contains(&queued[i]), "request {i} queued {} s: {queued:?}", queued[i]);
    }
    let sent = |i: usize| num(&rows[i], "to_server_time");
    assert!((sent(4) - sent(5)).abs() < 0.01, "released together: {} vs {}", sent(4), sent(5));
    // Request 5 waits only for request 4's 200 ms (its own queue time is
    // about 150 ms, less if it arrived late on a busy machine).
    let since_4 = sent(5) - num(&rows[4], "arrival_time");
    assert!((0.2..0.28).contains(&since_4), "request 5 sent {since_4} s after request 4 arrived");
    assert!(queued[5] < since_4 - 0.04, "request 5 arrived after request 4: queued {}", queued[5]);

    // The decision trace: three releases, then one routing line per request.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("decisions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let released: Vec<&serde_json::Value> = lines.iter().filter(|l| l["plugin"] == "batching").collect();
    let ids = |v: &serde_json::Value| v["released"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert_eq!(released.iter().map(|l| ids(l)).collect::<Vec<Vec<u64>>>(), [vec![0, 1, 2], vec![3], vec![4, 5]]);
    let t = released[1]["t_ms"].as_f64().unwrap();
    assert!((700.0..780.0).contains(&t), "request 3 released at {t} ms (arrived 500 + 200 timeout)");
    let routed: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["plugin"] == "routing")
        .map(|l| (l["id"].as_u64().unwrap(), l["node"].as_u64().unwrap()))
        .collect();
    assert_eq!(routed, (0..6).map(|i| (i, 0)).collect::<Vec<_>>());
}
