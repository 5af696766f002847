//! SGLang's own Rust benchmark client (`sglang-bench`, from the sglang
//! 0.5.23 wheel) runs against `sglab sim` unmodified.

use std::process::Command;

use sglab_tests::*;

#[test]
fn sglang_bench_measures_the_fixed_profile() {
    let node = SimNode::start(&["--profile", "fixed", "--ttft-ms", "20", "--itl-ms", "5"]);
    let s = Scratch::new("sglang-bench");
    let out_file = s.path.join("bench.jsonl");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sglang_bench.py");
    let out = Command::new(router_python())
        .arg(script)
        .args(["--backend", "sglang", "--base-url", &node.url, "--dataset-name", "random-ids"])
        .args(["--tokenizer", &std::env::temp_dir().join("sglab-sim-model").display().to_string()])
        .args([
            "--num-prompts",
            "20",
            "--random-input-len",
            "64",
            "--random-output-len",
            "16",
            "--random-range-ratio",
            "1",
        ])
        .args([
            "--max-concurrency",
            "4",
            "--tokenize-prompt",
            "--vocab-size",
            "6",
            "--disable-tqdm",
            "--disable-retokenize",
        ])
        .arg("--output-file")
        .arg(&out_file)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run sglang-bench");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "sglang-bench failed:\n{text}");
    let line = std::fs::read_to_string(&out_file).expect("result file");
    let v: serde_json::Value = serde_json::from_str(line.lines().last().expect("one result")).expect("JSON result");
    assert_eq!(v["completed"], 20, "{v}");
    assert_eq!(v["total_output_tokens"], 320, "{v}");
    let ttft = v["mean_ttft_ms"].as_f64().unwrap();
    let tpot = v["mean_tpot_ms"].as_f64().unwrap();
    assert!((20.0..23.0).contains(&ttft), "mean TTFT {ttft} ms");
    assert!((4.9..5.2).contains(&tpot), "mean TPOT {tpot} ms");
}
