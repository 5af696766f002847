//! Property tests of the parsers that read untrusted input: experiment
//! files (with `--set` overrides and `--url`s) and the servers' stream
//! events, per backend. Fixed seed and case count; every case must end in
//! data or an error that names its place, never a panic.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sglab::client::StreamState;
use sglab::client::api;
use sglab::experiment::load_points;
use sglab_core::config::Backend;

const CASES: u32 = 2000;

fn config() -> Config {
    Config { cases: CASES, rng_seed: RngSeed::Fixed(0x5_61AB), failure_persistence: None, ..Config::default() }
}

/// A TOML value of any type, sometimes absurd.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u32>().prop_map(|v| v.to_string()),
        prop_oneof![Just("nan".to_owned()), Just("inf".to_owned()), Just("-0.5".to_owned()), Just("1e300".to_owned())],
        "\"[a-z0-9:/._-]{0,16}\"",
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("[1, \"x\"]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "[ -~]{0,8}",
    ]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "name",
        "seed",
        "output_dir",
        "dataset",
        "num_requests",
        "input_len",
        "output_len",
        "range_ratio",
        "backend",
        "stream",
        "process",
        "rate",
        "concurrency",
        "launch",
        "url",
        "replicas",
        "args",
        "plugin",
        "config",
        "mode",
        "deadline_ms",
        "timeout_s",
        "drop_fields",
        "extra_body",
        "max_tokens_field",
        "api_key_env",
        "headers",
        "ready_path",
        "bogus",
    ])
}

fn table() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "[experiment]",
        "[workload]",
        "[arrival]",
        "[[nodes]]",
        "[batching]",
        "[routing]",
        "[sandbox]",
        "[client]",
        "[results]",
        "[slo]",
        "[sweep]",
        "[nope]",
    ])
}

fn experiment_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        table().prop_map(str::to_owned),
        (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..16).prop_map(|v| format!("[experiment]\nname = \"p\"\n{}\n", v.join("\n")))
}

fn event() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        r#"\{"text": "[a-z]{0,4}", "meta_info": \{"completion_tokens": [0-9]{1,3}, "finish_reason": (null|\{"type": "length"\}|"stop"|3)\}\}"#
            .prop_map(String::into_bytes),
        r#"\{"choices": \[\{"text": "[a-z]{0,3}", "finish_reason": (null|"length"|5)\}\], "usage": (null|\{"completion_tokens": -?[0-9]{1,3}\})\}"#
            .prop_map(String::into_bytes),
        r#"\{"choices": \[\{"delta": \{"content": (null|"[a-z]{0,3}")\}\}\]\}"#.prop_map(String::into_bytes),
        r#"\{"error": (\{"message": "[a-z]{0,5}"\}|"x"|7)\}"#.prop_map(String::into_bytes),
        Just(b"[DONE]".to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any experiment file, overrides and URLs: points, or one error naming the file or the override.
    #[test]
    fn experiment_files_load_or_name_the_place(
        text in experiment_text(),
        set in prop::option::of((key(), value())),
        url in prop::option::of("(http|https|ftp)://[a-z0-9.:\\[\\]]{0,12}(/[a-z]{0,3})?"),
    ) {
        let dir = std::env::temp_dir().join(format!("sglab-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        std::fs::write(&path, &text).unwrap();
        let sets: Vec<String> = set.iter().map(|(k, v)| format!("workload.{k}={v}")).collect();
        let urls: Vec<String> = url.into_iter().collect();
        match load_points(&path, &sets, &urls) {
            Ok(points) => prop_assert!(!points.is_empty()),
            Err(e) => {
                let msg = e.to_string();
                let named = msg.starts_with(&path.display().to_string()) || msg.starts_with("--set ");
                prop_assert!(named, "{}", msg);
                prop_assert!(!msg.contains('\n'), "one line: {}", msg);
            }
        }
    }

    /// Any sequence of events, on any backend: a record whose counts only grow, never a panic.
    #[test]
    fn stream_events_become_records(events in prop::collection::vec(event(), 0..20), which in 0..3usize, cut: bool) {
        let backend = [Backend::Sglang, Backend::OpenaiCompletions, Backend::OpenaiChat][which];
        for e in &events {
            let _ = api::parse(backend, e);
        }
        let mut st = StreamState::new(backend, 10).with_max_tokens(500);
        for (i, e) in events.iter().enumerate() {
            st.payload(e, 20 + i as u64);
        }
        let a = st.finish(1000, cut);
        prop_assert!(a.token_times.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        prop_assert!(a.token_events as usize == a.token_times.len());
        prop_assert!(a.error.is_some() == a.kind.is_some());
        prop_assert!(a.error.is_some() || a.finish_reason.is_some(), "ok without a finish_reason: {:?}", a);
        prop_assert!(a.finish >= 10);
    }
}
