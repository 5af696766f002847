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

/// The DOM of an HTML file as headless Chromium renders it.
fn rendered(scratch: &std::path::Path, html: &std::path::Path) -> String {
    let profile = scratch.join("chromium-profile");
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    let body = "[workload]\ndataset = \"shared-prefix\"\nnum_groups = 2\nprompts_per_group = 6\nsystem_prompt_len = 256\nquestion_len = 16\noutput_len = 12\n\n[arrival]\nprocess = \"poisson\"\nrate = 30.0\n\n[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\nargs = [\"--max-running-requests\", \"4\"]\n\n[routing]\nplugin = \"least-inflight\"\n\n[client]\nmax_schedule_lag_ms = 1000.0\n\n[results]\nserver_metrics_interval_s = 0.1\n";
    let exp = s.write("exp.toml", &experiment("report", body));
    for _ in 0..2 {
        let out = run_experiment(&s.path, &exp, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        // The table says what ran above it, one labelled row each.
        let text = stdout(&out);
        let row = |k: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(k))
                .unwrap_or_else(|| panic!("no {k} row: {text}"))
                .to_owned()
        };
        assert!(text.starts_with("sglab ") && row("sglab").contains("0.1.0"), "{text}");
        assert!(row("experiment").contains("report | real clock | seed 7"), "{text}");
        assert!(
            row("workload").contains("shared-prefix, 2 groups x 6 prompts, system 256 + question 16 tokens, output 12; 12 requests via sglang (streaming)"),
            "{text}"
        );
        assert_eq!(row("arrival"), "arrival     poisson 30 req/s");
        assert!(row("nodes").ends_with("2 x sim --max-running-requests 4"), "{text}");
        assert!(row("batching").contains("immediate 0.1.0 (sha256 "), "{text}");
        assert!(row("routing").contains("least-inflight 0.1.0 (sha256 "), "{text}");
        assert_eq!(row("degraded"), "degraded    no");
    }
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(s.path.join("results/report")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    let dir = &runs[0];
    for p in PLOTS {
        let svg = std::fs::read_to_string(dir.join("plots").join(p)).unwrap();
        assert!(svg.contains("<polyline"), "{p} has no data line");
        let png = std::fs::read(dir.join("plots").join(p).with_extension("png")).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{p}: a PNG beside the SVG");
    }
    assert!(!dir.join("plots/itl_cdf.svg").exists(), "no per-token ITL CDF without token times");
    // One peak definition: the throughput plot's title and the summary's
    // peak come from the same 1-second bins (throughput_1s.csv).
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sglab"]["version"], "0.1.0");
    // The engine's version, as the server tells it (sglab sim answers as SGLang 0.5.23).
    assert_eq!(summary["nodes"][0]["engine_version"], "0.5.23 (sglab-sim)");
    let peak = summary["metrics"]["peak_output_token_throughput"].as_f64().unwrap();
    let bins = read_csv(&dir.join("throughput_1s.csv"));
    let most = bins.rows.iter().map(|r| num(r, "output_tokens")).fold(0.0, f64::max);
    assert_eq!(most, peak, "the bins are the summary's");
    let tokens: f64 = bins.rows.iter().map(|r| num(r, "output_tokens")).sum();
    assert_eq!(tokens, summary["metrics"]["tokens"]["output"].as_f64().unwrap(), "every output token binned");
    let svg = std::fs::read_to_string(dir.join("plots/throughput.svg")).unwrap();
    assert!(svg.contains(&format!("peak {peak:.0} tok/s")), "the plot names the summary's peak");
    let dom = rendered(&s.path, &dir.join("report.html"));
    for p in PLOTS {
        let at = dom.find(&format!("id=\"{p}\"")).unwrap_or_else(|| panic!("{p} missing from the rendered report"));
        let rest = &dom[at..];
        let end = rest[1..].find("class=\"plot\"").map_or(rest.len(), |e| e + 1);
        let plot = &rest[..end];
        assert!(plot.contains("<svg") && plot.contains("<polyline"), "{p} is empty in the rendered report");
    }
    assert!(dom.contains("<h2>Latency (ms)</h2>") && dom.contains("<td>ttft_total (from arrival)</td>"));
    // It says what ran and shows every headline figure.
    for want in [
        "<th>nodes</th><td>2 x sim --max-running-requests 4</td>",
        "<th>arrival</th><td>poisson 30 req/s</td>",
        "<th>degraded</th><td>no</td>",
        "<th>input tok/s</th>",
        "<th>prefix cache hit rate</th>",
        "<th>SLO attainment</th>",
        "config.toml (resolved)",
    ] {
        assert!(dom.contains(want), "{want} missing from the report");
    }
    let sha = summary["plugins"]["routing"]["sha256"].as_str().unwrap();
    assert!(dom.contains(&format!("least-inflight 0.1.0 (sha256 {})", &sha[..12])), "plugin sha256 in the report");

    let out = sglab(&s.path).arg("compare").args(&runs).args(["--out", "cmp"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("| request throughput (req/s) |") && text.contains("(1.00x)"), "{text}");
    // Counts as whole numbers, short labels, and the directories below.
    assert!(text.contains("| metric | 1. report | 2. report |"), "{text}");
    assert!(text.contains("| requests ok | 12 (1.00x) |"), "{text}");
    assert!(text.contains(&format!("- 1. report: {}", runs[0].display())), "{text}");
    // TTFT from arrival leads, and each TTFT row says where it starts.
    let total = text.find("| ttft_total mean (from arrival) (ms) |").expect("ttft_total row");
    let sent = text.find("| ttft mean (from sending) (ms) |").expect("ttft row");
    assert!(total < sent, "{text}");
    for f in ["compare.md", "ttft_total_cdf.svg", "total_latency_cdf.svg", "ttft_total_cdf.png"] {
        assert!(s.path.join("cmp").join(f).is_file(), "{f}");
    }
}

#[test]
fn a_sweep_gets_one_report_with_plots_over_what_it_varies() {
    let s = Scratch::new("sweep-report");
    // Strategies (no rate swept): bars per point and overlaid CDFs.
    let body = "[workload]\nnum_requests = 60\ninput_len = 128\noutput_len = 16\n\n[arrival]\nrate = 20.0\n\n[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\n\n[sweep]\n\"routing.plugin\" = [\"round-robin\", \"least-inflight\"]\n\"nodes.0.args\" = [[\"--max-running-requests\", \"4\"]]\n";
    let exp = s.write("strategies.toml", &experiment("strategies", body));
    let out = run_experiment(&s.path, &exp, &["--set", "experiment.clock=\"virtual\""]);
    assert!(out.status.success(), "{}", stderr(&out));
    let base = std::fs::read_dir(s.path.join("results/strategies")).unwrap().next().unwrap().unwrap().path();
    let html = base.join("report.html");
    assert!(html.is_file(), "the sweep run wrote its report");
    // `sglab report` rebuilds it from the directory.
    std::fs::remove_file(&html).unwrap();
    let out = sglab(&s.path).arg("report").arg(&base).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 points") && html.is_file(), "{}", stdout(&out));
    let dom = rendered(&s.path, &html);
    for label in ["max-running-requests=4, plugin=round-robin", "max-running-requests=4, plugin=least-inflight"] {
        assert!(dom.contains(&format!("<td class=\"label\">{label}</td>")), "{label}: a readable label in the table");
    }
    for plot in ["ttft_total_p50_by_point.svg", "total_latency_p99_by_point.svg", "ttft_total_cdf.svg"] {
        let at = dom.find(&format!("id=\"{plot}\"")).unwrap_or_else(|| panic!("{plot} missing"));
        assert!(dom[at..].contains("<svg"), "{plot} drawn");
        assert!(base.join("plots").join(plot).with_extension("png").is_file(), "{plot} as PNG");
    }
    assert!(dom.contains("href=\"000-") && dom.contains("/report.html\">report</a>"), "links to the points' reports");
    assert!(dom.contains("<th>varies</th><td>nodes.0.args, routing.plugin</td>"), "what the sweep varies");

    // A rate sweep: latency against the rate, one line per other value.
    let body = "[workload]\nnum_requests = 40\ninput_len = 128\noutput_len = 16\n\n[[nodes]]\nlaunch = \"sim\"\n\n[sweep]\n\"arrival.rate\" = [5.0, 20.0]\n";
    let exp = s.write("rates.toml", &experiment("rates", body));
    let out = run_experiment(&s.path, &exp, &["--set", "experiment.clock=\"virtual\""]);
    assert!(out.status.success(), "{}", stderr(&out));
    let base = std::fs::read_dir(s.path.join("results/rates")).unwrap().next().unwrap().unwrap().path();
    let dom = rendered(&s.path, &base.join("report.html"));
    assert!(dom.contains("id=\"ttft_total_p50_vs_rate.svg\"") && dom.contains("<circle"), "rate curves with markers");
}

#[test]
fn without_a_terminal_the_live_view_writes_plain_lines() {
    let s = Scratch::new("live-view");
    // About 7 s at 10 req/s: one plain line at 5 s.
    // A step-lag limit no engine meets: the run is flagged, and says why.
    let body = "[workload]\nnum_requests = 70\ninput_len = 64\noutput_len = 8\n\n[arrival]\nprocess = \"constant\"\nrate = 10.0\n\n[client]\nmax_schedule_lag_ms = 1000.0\nmax_server_step_lag_ms = 0.000001\n\n[[nodes]]\nlaunch = \"sim\"\n";
    let exp = s.write("exp.toml", &experiment("live", body));
    let out = sglab(&s.path).arg("run").arg(&exp).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "no escape codes: {err:?}");
    let line = err.lines().find(|l| l.starts_with("[    5.0 s] ")).unwrap_or_else(|| panic!("no 5-s line: {err}"));
    // 5 s in at 10 req/s: about 50 done, 1 or 2 in flight, nothing failed.
    let done: u32 = line["[    5.0 s] ".len()..].split('/').next().unwrap().parse().unwrap();
    assert!((40..=51).contains(&done), "{line}");
    assert!(line.contains("/70 done, ") && line.contains(" 0 errors | last 10 s: "), "{line}");
    assert!(line.contains(" req/s, ") && line.contains("ttft p50 ") && line.contains("itl p50 "), "{line}");
    let rate: f64 = line.split(" req/s").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((8.0..=10.5).contains(&rate), "rolling rate {rate} near 10 req/s: {line}");
    let doc = summary(&run_dir(&s.path, "live"));
    assert_eq!(doc["degraded"], true);
    let why = doc["degraded_reasons"][0].as_str().unwrap();
    assert!(
        why.starts_with("sim-0 step lag max ") && why.ends_with(" ms > client.max_server_step_lag_ms = 0.000001"),
        "{why}"
    );
    assert!(stdout(&out).contains(&format!("degraded    YES: {why}")), "{}", stdout(&out));
}

#[test]
fn repeats_report_mean_and_confidence_interval_per_point() {
    let s = Scratch::new("repeats");
    let body = "[workload]\nnum_requests = 40\ninput_len = 128\noutput_len = 16\nrange_ratio = 0.5\n\n[arrival]\nrate = 20.0\n\n[[nodes]]\nlaunch = \"sim\"\nreplicas = 2\n\n[sweep]\n\"routing.plugin\" = [\"round-robin\", \"least-inflight\"]\n";
    let exp = s.write("exp.toml", &experiment("rep", body));
    let out = run_experiment(&s.path, &exp, &["--clock", "virtual", "--repeats", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let base = std::fs::read_dir(s.path.join("results/rep")).unwrap().next().unwrap().unwrap().path();
    let sweep = read_csv(&base.join("sweep.csv"));
    assert_eq!(sweep.rows.len(), 6, "a row per repeat");
    let seeds: Vec<f64> = sweep.rows.iter().map(|r| num(r, "experiment.seed")).collect();
    assert_eq!(seeds, [7.0, 8.0, 9.0, 7.0, 8.0, 9.0], "seed, seed+1, seed+2 for each point");
    let rep = read_csv(&base.join("repeats.csv"));
    assert_eq!(rep.rows.len(), 2);
    for (g, row) in rep.rows.iter().enumerate() {
        assert_eq!(num(row, "repeats"), 3.0);
        let v: Vec<f64> = sweep.rows[g * 3..g * 3 + 3].iter().map(|r| num(r, "ttft_total_p99_ms")).collect();
        let mean = v.iter().sum::<f64>() / 3.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((num(row, "ttft_total_p99_ms_mean") - mean).abs() < 1e-9, "{row:?}");
        assert!((num(row, "ttft_total_p99_ms_ci95") - 4.303 * sd / 3f64.sqrt()).abs() < 1e-9, "{row:?}");
        assert!(sd > 0.0, "different seeds draw different workloads: {v:?}");
    }
    assert_eq!(rep.rows[0]["point"], "plugin=round-robin");
    let html = std::fs::read_to_string(base.join("report.html")).unwrap();
    assert!(
        html.contains("Repeats: mean ± 95 % confidence interval") && html.contains(" ± "),
        "the report's repeats table"
    );
    assert!(html.contains("plugin=round-robin (mean of 3)"), "bars are the repeats' means");
    // compare takes the sweep directory: a column per point, its repeats
    // as mean ± CI (the same numbers as repeats.csv), ratios of the means.
    let out = sglab(&s.path).arg("compare").arg(&base).args(["--out", "cmp"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("| metric | 1a. plugin=round-robin (mean of 3) | 1b. plugin=least-inflight (mean of 3) |"),
        "{text}"
    );
    let r = &rep.rows[0];
    let cell = format!(
        "| ttft_total p99 (from arrival) (ms) | {:.2} ± {:.2} (1.00x) |",
        num(r, "ttft_total_p99_ms_mean"),
        num(r, "ttft_total_p99_ms_ci95")
    );
    assert!(text.contains(&cell), "{cell} in {text}");
    // A sweep over the seed and --repeats both: refused, by name.
    let seeds = s.write(
        "seeds.toml",
        &experiment(
            "seeds",
            &body
                .replace("\"routing.plugin\"", "\"experiment.seed\"")
                .replace("[\"round-robin\", \"least-inflight\"]", "[1, 2]"),
        ),
    );
    let out = run_experiment(&s.path, &seeds, &["--repeats", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--repeats 2: the sweep already varies experiment.seed"), "{}", stderr(&out));
}
