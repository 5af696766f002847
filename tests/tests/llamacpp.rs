//! A real engine that is not SGLang: llama.cpp's OpenAI server
//! (`llama-cpp-python[server]`, installed into `.venv` by
//! scripts/python-deps.sh) serving a tiny random-weight GGUF model that the
//! test writes (tests/fixtures/make_tiny_gguf.py). Its model never picks
//! EOS, so every request must get exactly the length asked for: counting
//! its usage-less streams chunk by chunk is checked exactly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sglab_tests::*;

struct Llama {
    url: String,
    child: Child,
    log: PathBuf,
}

impl Llama {
    fn start(dir: &Path) -> Self {
        let model = dir.join("tiny.gguf");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make_tiny_gguf.py");
        let out = Command::new(router_python()).arg(&script).arg(&model).output().expect("run make_tiny_gguf.py");
        assert!(out.status.success(), "make_tiny_gguf.py: {}", stderr(&out));
        let port = free_port();
        let log = dir.join("llama.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(router_python())
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args(["--model_alias", "tiny", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--n_threads", "2", "--interrupt_requests", "False"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start llama_cpp.server");
        let me = Self { url: format!("http://127.0.0.1:{port}"), child, log };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(&me.url, "GET", "/v1/models", "").0 == 200
            {
                return me;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("llama_cpp.server not ready after 120 s:\n{}", std::fs::read_to_string(&me.log).unwrap_or_default());
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mean(rows: &[std::collections::HashMap<String, String>], col: &str) -> f64 {
    rows.iter().map(|r| num(r, col)).sum::<f64>() / rows.len() as f64
}

#[test]
fn llama_cpp_server_both_openai_backends_streamed_and_not() {
    let s = Scratch::new("llamacpp");
    let llama = Llama::start(&s.path);
    // llama.cpp has no /health (404): readiness falls back to /v1/models.
    assert_eq!(http(&llama.url, "GET", "/health", "").0, 404);
    let run = |name: &str, backend: &str, stream: bool, users: u32| {
        let file = s.write(
            &format!("{name}.toml"),
            &experiment(
                name,
                &format!(
                    "[workload]\nnum_requests = 8\ninput_len = 24\noutput_len = 12\nbackend = \"{backend}\"\nstream = {stream}\n\n\
                     [arrival]\nprocess = \"closed-loop\"\nconcurrency = {users}\n\n[[nodes]]\nurl = \"{}\"\n",
                    llama.url
                ),
            ),
        );
        let out = run_experiment(&s.path, &file, &[]);
        let log = std::fs::read_to_string(&llama.log).unwrap_or_default();
        assert!(
            out.status.success(),
            "{name}: {}\nserver log tail:\n{}",
            stderr(&out),
            &log[log.len().saturating_sub(3000)..]
        );
        let dir = run_dir(&s.path, name);
        (read_csv(&dir.join("requests.csv")).rows, summary(&dir))
    };
    for (backend, stream) in
        [("openai-completions", true), ("openai-completions", false), ("openai-chat", true), ("openai-chat", false)]
    {
        let name = format!("{}-{}", backend.trim_start_matches("openai-"), if stream { "stream" } else { "whole" });
        let (rows, sum) = run(&name, backend, stream, 1);
        assert_eq!(rows.len(), 8);
        for r in &rows {
            assert_eq!((r["status"].as_str(), r["error"].as_str()), ("ok", ""), "{name}: {r:?}");
            assert_eq!((r["decode_length"].as_str(), r["finish_reason"].as_str()), ("12", "length"), "{name}: {r:?}");
            if stream {
                // llama.cpp streams carry no usage: one chunk per token, and
                // the final finish_reason chunk (no text) is no token event.
                assert_eq!(r["token_events"], "12", "{name}: {r:?}");
                let itl = num(r, "itl_mean");
                assert!(itl > 0.0 && itl < 0.5, "{name}: itl_mean {itl}");
            } else {
                assert_eq!(num(r, "ttft"), num(r, "server_latency"), "{name}: TTFT is the latency when not streamed");
            }
            let ttft = num(r, "ttft");
            assert!(ttft > 0.0 && ttft < 5.0, "{name}: ttft {ttft}");
            // The server counts the prompt itself (and the chat template too).
            assert!(num(r, "input_length") >= 24.0, "{name}: {r:?}");
        }
        let t = &sum["metrics"]["tokens"];
        assert_eq!((t["output"].as_u64(), t["output_length_mismatch"].as_u64()), (Some(96), Some(0)), "{name}: {t}");
    }
    // llama.cpp serves one request at a time: at 4 users the streams queue
    // on the server, one decoding after the other.
    let (one, _) = run("serial-c1", "openai-completions", true, 1);
    let (four, sum) = run("serial-c4", "openai-completions", true, 4);
    assert_eq!(sum["metrics"]["max_concurrency"].as_u64(), Some(4), "four were in flight at once");
    let mut spans: Vec<(f64, f64)> = four.iter().map(|r| (num(r, "first_token_time"), num(r, "finish_time"))).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[1].0 > w[0].1, "decoding overlapped: {spans:?}");
    }
    let (t1, t4) = (mean(&one, "ttft"), mean(&four, "ttft"));
    assert!(t4 > 2.0 * t1, "mean TTFT at 4 users {t4} vs 1 user {t1}: serial queueing should show");
}
