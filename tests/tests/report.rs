//! report.html opens from disk in headless Chromium with every plot, and
//! `sglab compare` prints ratios to the first run.

use std::path::PathBuf;
use std::process::Command;

use sglab_tests::*;

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("SGLAB_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("no chromium: scripts/test.sh installs Debian's chromium package (or set SGLAB_CHROMIUM)")
}

/// The plots of a run without `results.tokens_csv`: the per-request TPOT
/// CDF stands in for the per-token ITL CDF, under its own name.
const PLOTS: [&str; 7] = [
    "ttft_cdf.svg",
    "total_latency_cdf.svg",
    "tpot_cdf.svg",
    "timeline.svg",
    "throughput.svg",
    "requests_per_s.svg",
    "node_load.svg",
];

#[test]
fn report_renders_in_headless_chromium_and_compare_prints_ratios() {
    let s = Scratch::new("report");
    let body = "[workload]\ndataset = \"shared-prefix\"\nnum_groups = 2\nprompts_per_group = 6\nsystem_prompt_len = 256\nquestion_len = 16\noutput_len = 12\n\n[arrival]\nprocess = \"poisson\"\nrate = 30.0\n\n[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\n\n[results]\nserver_metrics_interval_s = 0.1\n";
    let exp = s.write("exp.toml", &experiment("report", body));
    for _ in 0..2 {
        let out = run_experiment(&s.path, &exp, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        // The table says what ran above it.
        let text = stdout(&out);
        let head: Vec<&str> = text.lines().take(4).collect();
        assert!(
            head[0].starts_with("sglab 0.1.0") && head[0].contains("| experiment report | real clock | seed 7"),
            "{text}"
        );
        assert!(
            head[1].starts_with("workload   shared-prefix via sglang, 12 requests | arrival poisson 30 req/s"),
            "{text}"
        );
        assert!(head[2].starts_with("nodes      ") && head[3].contains("batching immediate"), "{text}");
    }
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(s.path.join("results/report")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    let dir = &runs[0];
    for p in PLOTS {
        let svg = std::fs::read_to_string(dir.join("plots").join(p)).unwrap();
        assert!(svg.contains("<polyline"), "{p} has no data line");
    }
    assert!(!dir.join("plots/itl_cdf.svg").exists(), "no per-token ITL CDF without token times");
    // One peak definition: the throughput plot's title and the summary's
    // peak come from the same 1-second bins (throughput_1s.csv).
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sglab"]["version"], "0.1.0");
    let peak = summary["metrics"]["peak_output_token_throughput"].as_f64().unwrap();
    let bins = read_csv(&dir.join("throughput_1s.csv"));
    let most = bins.rows.iter().map(|r| num(r, "output_tokens")).fold(0.0, f64::max);
    assert_eq!(most, peak, "the bins are the summary's");
    let tokens: f64 = bins.rows.iter().map(|r| num(r, "output_tokens")).sum();
    assert_eq!(tokens, summary["metrics"]["tokens"]["output"].as_f64().unwrap(), "every output token binned");
    let svg = std::fs::read_to_string(dir.join("plots/throughput.svg")).unwrap();
    assert!(svg.contains(&format!("peak {peak:.0} tok/s")), "the plot names the summary's peak");
    let profile = s.path.join("chromium-profile");
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    for p in PLOTS {
        let at = dom.find(&format!("id=\"{p}\"")).unwrap_or_else(|| panic!("{p} missing from the rendered report"));
        let rest = &dom[at..];
        let end = rest[1..].find("class=\"plot\"").map_or(rest.len(), |e| e + 1);
        let plot = &rest[..end];
        assert!(plot.contains("<svg") && plot.contains("<polyline"), "{p} is empty in the rendered report");
    }
    assert!(dom.contains("<h2>Latency (ms)</h2>") && dom.contains("<td>ttft</td>"));

    let out = sglab(&s.path).arg("compare").args(&runs).args(["--out", "cmp"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("| request throughput (req/s) |") && text.contains("(1.00x)"), "{text}");
    // TTFT from arrival leads, and each TTFT row says where it starts.
    let total = text.find("| ttft_total mean (from arrival) (ms) |").expect("ttft_total row");
    let sent = text.find("| ttft mean (from sending) (ms) |").expect("ttft row");
    assert!(total < sent, "{text}");
    for f in ["compare.md", "ttft_cdf.svg", "total_latency_cdf.svg"] {
        assert!(s.path.join("cmp").join(f).is_file(), "{f}");
    }
}
