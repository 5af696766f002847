//! File datasets, parsed from text the host read: ShareGPT JSON, JSONL
//! requests, and Mooncake-style traces.

use serde::Deserialize;
use serde_json::Value;

use super::{DatasetError, Draft, Prompt, Tokenizer};
use crate::config::{MAX_TOKENS, Workload};
use crate::rng::Rng;

/// ShareGPT (SGLang `benchmark/datasets/sharegpt.py`): conversations with at
/// least two turns; the first turn is the prompt and the second's length the
/// output length (unless `fixed_output_len`); rows with a prompt or reply
/// under 2 tokens are dropped; shuffled with the seed; the first
/// `num_requests` kept.
pub(crate) fn sharegpt(text: &str, w: &Workload, seed: u64, tok: &dyn Tokenizer) -> Result<Vec<Draft>, DatasetError> {
    let rows: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| DatasetError::new(Some(e.line()), format!("not a ShareGPT JSON array: {e}")))?;
    let mut convs: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| {
            let turns = r.get("conversations").or_else(|| r.get("conversation"))?.as_array()?;
            let text_of =
                |t: &Value| t.get("value").or_else(|| t.get("content")).and_then(Value::as_str).map(str::to_owned);
            if turns.len() < 2 {
                return None;
            }
            Some((text_of(&turns[0])?, text_of(&turns[1])?))
        })
        .collect();
    if convs.is_empty() {
        return Err(DatasetError::new(
            None,
            "no conversation with at least two turns (`conversations: [{from, value}, ...]`)",
        ));
    }
    let mut rng = Rng::new(seed, 6);
    for k in (1..convs.len()).rev() {
        let j = rng.range_inclusive(0, k as u64) as usize;
        convs.swap(k, j);
    }
    let limit = w.num_requests.map_or(usize::MAX, |n| n as usize);
    let mut out = Vec::new();
    for (prompt, reply) in convs {
        if out.len() >= limit {
            break;
        }
        let prompt_len = tok.encode(&prompt).len();
        let output_len = match w.fixed_output_len {
            Some(n) => n as usize,
            None => tok.encode(&reply).len(),
        };
        if prompt_len < 2 || output_len < 2 {
            continue;
        }
        out.push(Draft {
            prompt: Prompt::Text(prompt),
            output_len: output_len as u32,
            timestamp: None,
            session: None,
            priority: 0,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlRow {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    input_ids: Option<Vec<u32>>,
    #[serde(default, alias = "max_tokens")]
    output_len: Option<u32>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default)]
    session: Option<Value>,
    #[serde(default)]
    priority: Option<i32>,
}

fn session_key(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or_else(|| n.to_string().len() as u64),
        other => {
            let s = other.as_str().map(str::to_owned).unwrap_or_else(|| other.to_string());
            s.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
        }
    }
}

/// JSONL: one request per line — `prompt` (text) or `input_ids`,
/// `output_len` (or `max_tokens`; default `fixed_output_len`, else
/// `output_len` of the workload), optional `timestamp` (seconds), `session`
/// (string or number) and `priority`. Blank lines are skipped.
pub(crate) fn jsonl(text: &str, w: &Workload) -> Result<Vec<Draft>, DatasetError> {
    let default_out = w.fixed_output_len.unwrap_or(w.output_len);
    let limit = w.num_requests.map_or(usize::MAX, |n| n as usize);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if out.len() >= limit {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| DatasetError::new(Some(i + 1), m);
        let row: JsonlRow = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let prompt = match (row.prompt, row.input_ids) {
            (Some(p), None) => Prompt::Text(p),
            (None, Some(ids)) if !ids.is_empty() => Prompt::Ids(ids.into()),
            (None, Some(_)) => return Err(err("input_ids is empty".into())),
            (Some(_), Some(_)) => return Err(err("give either prompt or input_ids, not both".into())),
            (None, None) => return Err(err("needs prompt (text) or input_ids".into())),
        };
        if let Some(t) = row.timestamp.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(err(format!("timestamp {t} must be zero or more seconds")));
        }
        let output_len = row.output_len.unwrap_or(default_out);
        if output_len == 0 || output_len > MAX_TOKENS {
            return Err(err(format!("output_len {output_len} must be between 1 and {MAX_TOKENS}")));
        }
        out.push(Draft {
            prompt,
            output_len,
            timestamp: row.timestamp,
            session: row.session.as_ref().map(session_key),
            priority: row.priority.unwrap_or(0),
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct TraceRow {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// Token ids of one `hash_ids` block: the same id always gives the same
/// tokens, so prompts share exactly the blocks their hash ids share.
fn block_tokens(hash_id: u64, n: u32) -> impl Iterator<Item = u32> {
    let mut rng = Rng::new(hash_id, 0xB10C);
    (0..n).map(move |_| 1000 + rng.range_inclusive(0, 30_000) as u32)
}

/// Mooncake-style trace (JSONL rows `{timestamp (ms), input_length,
/// output_length, hash_ids}`), sorted by timestamp and rebased to start at
/// 0 s. Each hash id is a block of `trace_block_tokens` token ids; the
/// prompt is its blocks in order, cut or padded (with tokens unique to the
/// request) to exactly `input_length`.
pub(crate) fn trace(text: &str, w: &Workload, seed: u64) -> Result<Vec<Draft>, DatasetError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: TraceRow = serde_json::from_str(line).map_err(|e| DatasetError::new(Some(i + 1), e.to_string()))?;
        if row.input_length == 0 || row.output_length == 0 {
            return Err(DatasetError::new(Some(i + 1), "input_length and output_length must be at least 1"));
        }
        if row.input_length.max(row.output_length) > MAX_TOKENS {
            return Err(DatasetError::new(
                Some(i + 1),
                format!("input_length and output_length must be at most {MAX_TOKENS} tokens"),
            ));
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    if let Some(n) = w.num_requests {
        rows.truncate(n as usize);
    }
    let t0 = rows.first().map_or(0.0, |r| r.timestamp);
    let mut pad = Rng::new(seed, 7);
    Ok(rows
        .into_iter()
        .map(|r| {
            // Only the blocks that fit: a long hash_ids list costs nothing.
            let mut ids: Vec<u32> = r
                .hash_ids
                .iter()
                .flat_map(|&h| block_tokens(h, w.trace_block_tokens))
                .take(r.input_length as usize)
                .collect();
            while ids.len() < r.input_length as usize {
                ids.push(40_000 + pad.range_inclusive(0, 20_000) as u32);
            }
            Draft {
                prompt: Prompt::Ids(ids.into()),
                output_len: r.output_length,
                timestamp: Some((r.timestamp - t0) / 1000.0),
                session: None,
                priority: 0,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dataset;
    use crate::workload::{Approx, generate};

    #[test]
    fn sharegpt_takes_first_turns_and_reply_lengths() {
        let text = r#"[
            {"id": "a", "conversations": [{"from": "human", "value": "What is the capital of France?"}, {"from": "gpt", "value": "It is Paris, of course."}]},
            {"id": "b", "conversations": [{"from": "human", "value": "only one turn"}]},
            {"id": "c", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there friend"}]},
            {"id": "d", "conversations": [{"from": "human", "value": "Name three colors please"}, {"from": "gpt", "value": "Red, green, blue."}]}
        ]"#;
        let w = Workload { dataset: Dataset::Sharegpt, ..Workload::default() };
        let reqs = generate(&w, 1, Some(text), &Approx).unwrap().specs;
        // "b" has one turn; "c"'s prompt is one token: both dropped.
        assert_eq!(reqs.len(), 2);
        let mut lens: Vec<(u32, u32)> = reqs.iter().map(|r| (r.input_len, r.output_len)).collect();
        lens.sort();
        // "What is the capital of France ?" = 7; "It is Paris , of course ." = 7.
        // "Name three colors please" = 4; "Red , green , blue ." = 6.
        assert_eq!(lens, vec![(4, 6), (7, 7)]);
        let fixed = Workload { fixed_output_len: Some(9), ..w };
        assert!(generate(&fixed, 1, Some(text), &Approx).unwrap().specs.iter().all(|r| r.output_len == 9));
    }

    #[test]
    fn jsonl_rows_and_errors_name_the_line() {
        let text = "{\"prompt\": \"hello world\", \"output_len\": 5, \"timestamp\": 0.5, \"session\": \"u1\"}\n\n{\"input_ids\": [1,2,3], \"max_tokens\": 7, \"priority\": 2}\n";
        let w = Workload { dataset: Dataset::Jsonl, ..Workload::default() };
        let reqs = generate(&w, 1, Some(text), &Approx).unwrap().specs;
        assert_eq!(reqs.len(), 2);
        assert_eq!((reqs[0].input_len, reqs[0].output_len, reqs[0].timestamp), (2, 5, Some(0.5)));
        assert!(reqs[0].session.is_some());
        assert_eq!((reqs[1].input_len, reqs[1].output_len, reqs[1].priority), (3, 7, 2));
        let bad = "{\"prompt\": \"ok\"}\n{\"promt\": \"typo\"}\n";
        let e = generate(&w, 1, Some(bad), &Approx).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().starts_with("line 2: unknown field `promt`"), "{e}");
    }

    #[test]
    fn trace_blocks_are_shared_exactly_where_hash_ids_are() {
        let text = "{\"timestamp\": 2500, \"input_length\": 1000, \"output_length\": 10, \"hash_ids\": [7, 8]}\n\
                    {\"timestamp\": 1000, \"input_length\": 700, \"output_length\": 5, \"hash_ids\": [7, 9]}\n";
        let w = Workload { dataset: Dataset::Trace, ..Workload::default() };
        let g = generate(&w, 1, Some(text), &Approx).unwrap();
        let (reqs, hashes) = (&g.specs, &g.prefix_hashes);
        // Sorted by timestamp, rebased to 0, in seconds.
        assert_eq!((reqs[0].timestamp, reqs[1].timestamp), (Some(0.0), Some(1.5)));
        assert_eq!((reqs[0].input_len, reqs[1].input_len), (700, 1000));
        let (Prompt::Ids(a), Prompt::Ids(b)) = (&reqs[0].prompt, &reqs[1].prompt) else { panic!() };
        let (a, b) = (a.to_vec(), b.to_vec());
        assert_eq!(a[..512], b[..512], "block 7 is shared");
        assert_ne!(a[512..700], b[512..700], "blocks 9 and 8 differ");
        assert_eq!(hashes[0][..32], hashes[1][..32]);
        assert_ne!(hashes[0][32], hashes[1][32]);
    }
}
