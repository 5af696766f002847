//! OpenAI-compatible engines that are not SGLang, through a strict stand-in
//! server (tests/fixtures/strict_server.py): readiness without
//! `/get_model_info` or `/health`, streams without `[DONE]`, a refused
//! field, output lengths other than asked, API keys and HTTPS.

use sglab_tests::*;

fn exp(name: &str, url: &str, workload: &str, extra: &str) -> String {
    experiment(
        name,
        &format!(
            "[workload]\nnum_requests = 12\ninput_len = 16\noutput_len = 8\n{workload}\n\n\
             [arrival]\nprocess = \"closed-loop\"\nconcurrency = 3\n\n[[nodes]]\nurl = \"{url}\"\n\n{extra}"
        ),
    )
}

#[test]
fn streams_without_done_and_servers_without_model_info_or_health() {
    let s = Scratch::new("nodone");
    let log = s.path.join("requests.jsonl");
    let srv = PyServer::start("strict_server.py", &["--no-done", "--no-health", "--log", log.to_str().unwrap()]);
    for (i, (backend, stream)) in
        [("openai-chat", true), ("openai-completions", true), ("openai-chat", false)].into_iter().enumerate()
    {
        let name = format!("nodone{i}");
        let file = s.write(
            &format!("{name}.toml"),
            &exp(&name, &srv.url, &format!("backend = \"{backend}\"\nstream = {stream}"), ""),
        );
        let out = run_experiment(&s.path, &file, &[]);
        assert!(out.status.success(), "{backend} stream={stream}: {}", stderr(&out));
        let run = run_dir(&s.path, &name);
        let csv = read_csv(&run.join("requests.csv"));
        assert_eq!(csv.rows.len(), 12);
        for r in &csv.rows {
            assert_eq!((r["status"].as_str(), r["error"].as_str()), ("ok", ""), "{r:?}");
            assert_eq!((r["decode_length"].as_str(), r["requested_output_length"].as_str()), ("8", "8"));
            assert_eq!(r["finish_reason"], "length");
            // The final chunk (finish_reason + usage, no text) is no token event.
            assert_eq!(r["token_events"], if stream { "8" } else { "1" }, "{r:?}");
            assert!(num(r, "ttft") >= 0.004, "the stand-in waits 5 ms before the first token: {r:?}");
        }
        let sum = summary(&run);
        let t = &sum["metrics"]["tokens"];
        assert_eq!((t["output"].as_u64(), t["output_length_mismatch"].as_u64()), (Some(96), Some(0)), "{t}");
    }
    let reqs = json_lines(&log);
    let paths: Vec<&str> = reqs.iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(paths.contains(&"/health") && paths.contains(&"/v1/models"), "readiness fell back to /v1/models");
    assert!(!paths.contains(&"/get_model_info"), "OpenAI nodes are not asked SGLang's /get_model_info");
    let chat = reqs.iter().find(|r| r["path"] == "/v1/chat/completions").unwrap();
    assert_eq!(chat["body"]["model"], "strict-model", "the model comes from /v1/models");
    assert_eq!(
        (chat["body"]["max_tokens"].as_u64(), chat["body"]["max_completion_tokens"].as_u64()),
        (Some(8), Some(8))
    );
}

#[test]
fn a_refused_field_stops_the_run_with_one_line_naming_the_key() {
    let s = Scratch::new("refuse");
    let srv = PyServer::start("strict_server.py", &["--reject", "ignore_eos"]);
    let file = s.write("refuse.toml", &exp("refuse", &srv.url, "backend = \"openai-chat\"", ""));
    let out = run_experiment(&s.path, &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("refused the request field ignore_eos")
            && line.contains("Unexpected fields in the request")
            && line.contains("set workload.drop_fields = [\"ignore_eos\"]"),
        "{line}"
    );
    // Every request has a row: the refused ones as errors, the rest never sent.
    let csv = read_csv(&run_dir(&s.path, "refuse").join("requests.csv"));
    assert_eq!(csv.rows.len(), 12);
    let errors = csv.rows.iter().filter(|r| r["status"] == "error").count();
    let cancelled = csv.rows.iter().filter(|r| r["status"] == "cancelled").count();
    assert!((1..=3).contains(&errors) && errors + cancelled == 12, "{errors} errors, {cancelled} cancelled");
    assert!(csv.rows.iter().filter(|r| r["status"] == "error").all(|r| r["error"].starts_with("HTTP 422")));

    // The change the line names makes the run pass.
    let file =
        s.write("fixed.toml", &exp("fixed", &srv.url, "backend = \"openai-chat\"\ndrop_fields = [\"ignore_eos\"]", ""));
    let out = run_experiment(&s.path, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "fixed").join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"));

    // A drop_fields entry sglab does not send is a config error naming the key.
    let file = s.write("bad.toml", &exp("bad", &srv.url, "drop_fields = [\"ignore_eos\"]", ""));
    let out = run_experiment(&s.path, &file, &["--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("workload.drop_fields: \"ignore_eos\" is not a field of sglab's sglang body")
            && stderr(&out).contains("sampling_params.ignore_eos"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn output_lengths_other_than_asked_are_data_and_counted() {
    let s = Scratch::new("short");
    let srv = PyServer::start("strict_server.py", &["--max-output", "5"]);
    let file = s.write("short.toml", &exp("short", &srv.url, "backend = \"openai-completions\"", ""));
    let out = run_experiment(&s.path, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("warning    12 of 12 ok requests got a different output length than requested (mean ratio 0.625"),
        "{}",
        stdout(&out)
    );
    let run = run_dir(&s.path, "short");
    let csv = read_csv(&run.join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["decode_length"] == "5" && r["finish_reason"] == "stop"));
    let t = summary(&run)["metrics"]["tokens"].clone();
    assert_eq!(
        (t["output"].as_u64(), t["output_requested"].as_u64(), t["output_length_mismatch"].as_u64()),
        (Some(60), Some(96), Some(12))
    );
    assert_eq!(t["output_length_ratio_mean"].as_f64(), Some(0.625));
    // Text prompts counted by the approximation are not compared with the server's counts.
    assert!(t["input_count_disagree"].is_null(), "{t}");
}

#[test]
fn api_keys_come_from_the_environment_and_are_never_written() {
    let s = Scratch::new("apikey");
    let log = s.path.join("requests.jsonl");
    let key = "sk-test-6f1c2a9d";
    let srv = PyServer::start("strict_server.py", &["--key", key, "--no-done", "--log", log.to_str().unwrap()]);
    let client = "[client]\napi_key_env = \"SGLAB_TEST_API_KEY\"\nheaders = { X-Team = \"lab\" }\n";
    // The file's node is replaced by --url; the [client] defaults still apply.
    let file = s.write("key.toml", &exp("key", "http://127.0.0.1:9", "backend = \"openai-chat\"", client));
    let out = sglab(&s.path)
        .args(["run", file.to_str().unwrap(), "--quiet", "--url", &srv.url])
        .env("SGLAB_TEST_API_KEY", key)
        .env("SGLAB_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_dir(&s.path, "key");
    let csv = read_csv(&run.join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok"), "{:?}", csv.rows);
    for r in json_lines(&log) {
        assert_eq!(r["headers"]["authorization"], format!("Bearer {key}"), "{} {}", r["method"], r["path"]);
        assert_eq!(r["headers"]["x-team"], "lab");
    }
    assert!(!stderr(&out).contains(key) && !stdout(&out).contains(key), "the key reached the logs");
    for entry in files_under(&run) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains(key), "the key is in {}", entry.display());
    }
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("api_key_env = \"SGLAB_TEST_API_KEY\""), "{config}");

    // Without the variable: a config error naming the key, nothing started.
    let out = sglab(&s.path)
        .args(["run", file.to_str().unwrap(), "--quiet", "--url", &srv.url])
        .env_remove("SGLAB_TEST_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("client.api_key_env: the environment variable SGLAB_TEST_API_KEY is not set"),
        "{}",
        stderr(&out)
    );
    // A wrong key: the readiness error names the node, the path and the answer.
    let short = s.write(
        "wrong.toml",
        &exp("wrong", &srv.url, "backend = \"openai-chat\"", "[client]\napi_key_env = \"SGLAB_TEST_API_KEY\"\n"),
    );
    let out = sglab(&s.path)
        .args(["run", short.to_str().unwrap(), "--quiet", "--set", "nodes.0.startup_timeout_s=1"])
        .env("SGLAB_TEST_API_KEY", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("url-0 at {}: not ready after 1 s: GET /health answered 401 Unauthorized", srv.url)),
        "{err}"
    );
}

#[test]
fn https_endpoints_with_a_trusted_certificate() {
    let s = Scratch::new("tls");
    let (ca, cert, key) = (s.path.join("ca.pem"), s.path.join("cert.pem"), s.path.join("key.pem"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(&s.path).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sglab test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    s.write("ext.cnf", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let srv = PyServer::start("strict_server.py", &["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    assert!(srv.url.starts_with("https://"));
    let file = s.write("tls.toml", &exp("tls", &srv.url, "backend = \"openai-completions\"", ""));
    let out =
        sglab(&s.path).args(["run", file.to_str().unwrap(), "--quiet"]).env("SSL_CERT_FILE", &ca).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = read_csv(&run_dir(&s.path, "tls").join("requests.csv"));
    assert!(csv.rows.iter().all(|r| r["status"] == "ok" && r["decode_length"] == "8"), "{:?}", csv.rows);
}
