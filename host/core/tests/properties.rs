//! Property tests of the parsers that read untrusted input: the SSE framer
//! and the dataset files (JSONL, trace, ShareGPT). Fixed seed and case
//! count, so a run is repeatable; every case must end in data or an error
//! that names its line, never a panic.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sglab_core::config::{Dataset, Workload};
use sglab_core::sse::SseDecoder;
use sglab_core::workload::{Approx, generate};

const CASES: u32 = 2000;

fn config() -> Config {
    Config { cases: CASES, rng_seed: RngSeed::Fixed(0x5_61AB), failure_persistence: None, ..Config::default() }
}

/// Bytes that look like SSE: data lines, comments, CRs, blank lines, noise.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "data: [a-z0-9{}\":,]{0,20}\n".prop_map(String::into_bytes),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b": keep-alive\n".to_vec()),
        Just(b"data: [DONE]\n\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn payloads(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
    let mut d = SseDecoder::default();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, |p| out.push(p.to_vec()));
    }
    (out, d.pending().len())
}

proptest! {
    #![proptest_config(config())]

    /// However a stream is cut into reads, the payloads are the same.
    #[test]
    fn sse_framing_does_not_depend_on_read_boundaries(bytes in sse_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let whole = payloads(&[&bytes]);
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for &c in &at {
            chunks.push(&bytes[prev..c]);
            prev = c;
        }
        chunks.push(&bytes[prev..]);
        prop_assert_eq!(payloads(&chunks), whole);
    }

    /// Dataset files of any content: requests or an error naming a line of the file.
    #[test]
    fn dataset_parsers_return_data_or_an_error_naming_the_line(
        lines in prop::collection::vec(prop_oneof![
            r#"\{"prompt": "[a-z ]{0,12}", "output_len": [0-9]{1,4}\}"#,
            r#"\{"input_ids": \[[0-9]{1,3}(, [0-9]{1,3}){0,4}\], "timestamp": -?[0-9]{1,3}(\.[0-9])?\}"#,
            r#"\{"timestamp": [0-9]{1,6}, "input_length": [0-9]{1,11}, "output_length": [0-9]{1,11}, "hash_ids": \[[0-9]{1,4}\]\}"#,
            r#"\[\{"conversations": \[\{"value": "[a-z ]{0,10}"\}, \{"value": "[a-z ]{0,10}"\}\]\}\]"#,
            "[ -~]{0,30}",
        ], 0..12),
        which in 0..3usize,
    ) {
        let text = lines.join("\n");
        let w = Workload {
            dataset: [Dataset::Jsonl, Dataset::Trace, Dataset::Sharegpt][which],
            path: Some("data".into()),
            num_requests: Some(50),
            ..Workload::default()
        };
        match generate(&w, 1, Some(&text), &Approx) {
            Ok(g) => {
                for s in &g.specs {
                    prop_assert!(s.output_len >= 1 && s.output_len <= sglab_core::config::MAX_TOKENS);
                    prop_assert!(s.input_len <= sglab_core::config::MAX_TOKENS);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                if let Some(rest) = msg.strip_prefix("line ") {
                    let n: usize = rest.split(':').next().unwrap().parse().unwrap();
                    prop_assert!(n >= 1 && n <= text.lines().count().max(1), "{}", msg);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Selection gives the percentile a sort gives, bit for bit.
    #[test]
    fn percentile_by_selection_equals_percentile_of_sorted(
        mut v in proptest::collection::vec(-1e3f64..1e3, 1..300),
        p in 0.0f64..=100.0,
    ) {
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let want = sglab_core::stats::percentile(&sorted, p);
        prop_assert_eq!(sglab_core::stats::percentile_unsorted(&mut v, p).to_bits(), want.to_bits());
    }

    /// The same near the top, where the largest few values are kept in one
    /// pass instead of selected, with many ties and signed zeros.
    #[test]
    fn top_percentiles_equal_percentile_of_sorted(
        mut v in proptest::collection::vec(prop_oneof![(-3i8..4).prop_map(f64::from), Just(-0.0)], 1..400),
        p in 95.0f64..=100.0,
    ) {
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let want = sglab_core::stats::percentile(&sorted, p);
        prop_assert_eq!(sglab_core::stats::percentile_unsorted(&mut v, p).to_bits(), want.to_bits());
    }
}
