//! Workload generation: the requests of a run, reproducible from the seed.
//!
//! Generated datasets (`random`, `shared-prefix`) follow SGLang 0.5.23's
//! `benchmark/datasets/random.py` and `generated_shared_prefix.py`; file
//! datasets (`sharegpt`, `jsonl`, `trace`) are parsed from text the host
//! read (see [`files`]). Nothing is ever downloaded.
//!
//! Prompts are token ids where they are known exactly (the SGLang backend)
//! and text otherwise. Text is counted with a [`Tokenizer`]: a Hugging Face
//! tokenizer the host loads, or [`Approx`], which counts one token per word
//! or punctuation mark — the same rule as `sglab sim`, so counts are exact
//! against the simulator and approximate (about 25 % low for English BPE)
//! against a real model.

mod files;
mod ids;
mod routing_text;

pub use ids::{Ids, TokenIds};
pub use routing_text::RoutingTexts;

use crate::config::{Backend, Dataset, Workload};
use crate::rng::Rng;

/// Tokens per block in a request's prefix hashes.
pub const PREFIX_BLOCK_TOKENS: u32 = 16;

/// What is sent as the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Token ids (sent as `input_ids`; lengths exact).
    Ids(TokenIds),
    /// Text (lengths counted by the tokenizer).
    Text(String),
}

/// One request of the workload, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Position in the workload (0-based); the request id everywhere.
    pub id: u64,
    /// The prompt.
    pub prompt: Prompt,
    /// Prompt length in tokens.
    pub input_len: u32,
    /// `max_new_tokens` (sent with `ignore_eos`, so the server produces exactly this many).
    pub output_len: u32,
    /// When the dataset says it arrives, seconds (jsonl, trace).
    pub timestamp: Option<f64>,
    /// Session key.
    pub session: Option<u64>,
    /// Priority (larger is more urgent).
    pub priority: i32,
}

impl RequestSpec {
    /// Prompt length in tokens.
    pub fn input_len(&self) -> u32 {
        self.input_len
    }
}

/// How prompt lengths were counted (reported in the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCount {
    /// Token ids were sent: exact.
    Exact,
    /// Counted with the given `tokenizer.json`.
    Tokenizer,
    /// Counted with the one-token-per-word approximation.
    Approximate,
}

impl TokenCount {
    /// Name used in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact (token ids)",
            Self::Tokenizer => "tokenizer.json",
            Self::Approximate => "approximate (one token per word)",
        }
    }
}

/// Turns text into token ids and back.
pub trait Tokenizer {
    /// Token ids of `text`.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of `ids`.
    fn decode(&self, ids: &[u32]) -> String;
    /// Whether counts are exact for the target model.
    fn count(&self) -> TokenCount;
}

/// The built-in approximation: one token per word or punctuation mark
/// (the rule `sglab sim` tokenizes with). Decoding maps each id to a
/// two-syllable pseudo-word, which encodes back to exactly one token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Approx;

const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
const VOWELS: &[u8] = b"aeiou";

impl Tokenizer for Approx {
    fn encode(&self, text: &str) -> Vec<u32> {
        crate::sim::text::tokenize(text)
    }

    fn decode(&self, ids: &[u32]) -> String {
        let syllables = CONSONANTS.len() * VOWELS.len();
        let mut s = String::with_capacity(ids.len() * 5);
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let mut k = id as usize % (syllables * syllables);
            for _ in 0..2 {
                let syl = k % syllables;
                k /= syllables;
                s.push(CONSONANTS[syl / VOWELS.len()] as char);
                s.push(VOWELS[syl % VOWELS.len()] as char);
            }
        }
        s
    }

    fn count(&self) -> TokenCount {
        TokenCount::Approximate
    }
}

/// A dataset that could not be used; `line` is 1-based where it applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{msg}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct DatasetError {
    /// Line in the file.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

impl DatasetError {
    pub(crate) fn new(line: Option<usize>, msg: impl Into<String>) -> Self {
        Self { line, msg: msg.into() }
    }
}

/// Draws a length as SGLang's `compute_random_lens` does: uniform integer in
/// `[max(floor(full * ratio),1), full]`.
pub fn random_len(rng: &mut Rng, full: u32, ratio: f64) -> u32 {
    let lo = ((full as f64 * ratio).floor() as u32).max(1).min(full);
    rng.range_inclusive(lo as u64, full as u64) as u32
}

/// Chained block hashes: element i covers blocks `0..=i` of `ids`, each of
/// `PREFIX_BLOCK_TOKENS` tokens; a trailing partial block is not hashed.
/// FNV-1a over the little-endian token bytes, seeded with the previous
/// block's hash, finished with a SplitMix64 mix.
pub fn prefix_hashes(ids: &[u32]) -> Vec<u64> {
    prefix_hashes_after(ids, &[])
}

/// [`prefix_hashes`] of `ids` when `known` already holds the hashes of its
/// first `known.len()` blocks (a shared head's, hashed once per group).
fn prefix_hashes_after(ids: &[u32], known: &[u64]) -> Vec<u64> {
    let block = PREFIX_BLOCK_TOKENS as usize;
    let mut out = Vec::with_capacity(ids.len() / block);
    out.extend_from_slice(known);
    let mut prev: u64 = known.last().copied().unwrap_or(0xCBF2_9CE4_8422_2325);
    for block in ids[known.len() * block..].chunks_exact(block) {
        let mut h = prev;
        for t in block {
            for b in t.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        out.push(h);
        prev = h;
    }
    out
}

/// A draft request: prompt ids or text, before counting and hashing.
pub(crate) struct Draft {
    pub prompt: Prompt,
    pub output_len: u32,
    pub timestamp: Option<f64>,
    pub session: Option<u64>,
    pub priority: i32,
}

/// A generated workload.
#[derive(Debug)]
pub struct Generated {
    /// The requests, in workload order.
    pub specs: Vec<RequestSpec>,
    /// Each request's chained prefix-block hashes (see [`prefix_hashes`]),
    /// kept apart from the specs: the client session hands each list to the
    /// plugins when its request arrives and frees it there, so at 100,000
    /// requests they are not all held until the run ends.
    pub prefix_hashes: Vec<Vec<u64>>,
    /// How prompt lengths were counted.
    pub count: TokenCount,
}

/// Turns drafts into specs: prompts become text for OpenAI backends (ids
/// decoded by the tokenizer) and are counted and hashed once.
pub(crate) fn finish(drafts: Vec<Draft>, backend: Backend, tok: &dyn Tokenizer) -> (Vec<RequestSpec>, Vec<Vec<u64>>) {
    // A shared head's block hashes, by the head's address (the map holds
    // the head, so the address is not reused while it is a key).
    let mut heads: std::collections::HashMap<usize, (std::sync::Arc<[u32]>, Vec<u64>)> = Default::default();
    drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let prompt = match (d.prompt, backend) {
                (Prompt::Ids(ids), Backend::OpenaiCompletions | Backend::OpenaiChat) => {
                    Prompt::Text(tok.decode(&ids.to_vec()))
                }
                (p, _) => p,
            };
            // Only ids sent as they are start with their head's ids.
            let known: &[u64] = match &prompt {
                Prompt::Ids(ids) if ids.head().len() >= PREFIX_BLOCK_TOKENS as usize => {
                    let head = ids.head();
                    let key = head.as_ptr() as usize;
                    &heads.entry(key).or_insert_with(|| (head.clone(), prefix_hashes(head))).1
                }
                _ => &[],
            };
            // Counted and hashed once; generated ids are not kept.
            let ids = match &prompt {
                Prompt::Ids(ids) => ids.to_vec(),
                Prompt::Text(t) => tok.encode(t),
            };
            let spec = RequestSpec {
                id: i as u64,
                input_len: ids.len() as u32,
                prompt,
                output_len: d.output_len,
                timestamp: d.timestamp,
                session: d.session,
                priority: d.priority,
            };
            (spec, prefix_hashes_after(&ids, known))
        })
        .unzip()
}

/// Generates the run's requests. `file` is the dataset file's text (for
/// sharegpt, jsonl and trace).
pub fn generate(w: &Workload, seed: u64, file: Option<&str>, tok: &dyn Tokenizer) -> Result<Generated, DatasetError> {
    let text = || file.ok_or_else(|| DatasetError::new(None, "the dataset file was not read"));
    let drafts = match w.dataset {
        Dataset::Random => random(w, seed),
        Dataset::SharedPrefix => shared_prefix(w, seed),
        Dataset::Sharegpt => files::sharegpt(text()?, w, seed, tok)?,
        Dataset::Jsonl => files::jsonl(text()?, w)?,
        Dataset::Trace => files::trace(text()?, w, seed)?,
    };
    if drafts.is_empty() {
        return Err(DatasetError::new(None, "the dataset produced no requests"));
    }
    let all_ids = drafts.iter().all(|d| matches!(d.prompt, Prompt::Ids(_)));
    let count = if all_ids && w.backend == Backend::Sglang { TokenCount::Exact } else { tok.count() };
    let (specs, prefix_hashes) = finish(drafts, w.backend, tok);
    Ok(Generated { specs, prefix_hashes, count })
}

fn random_ids(rng: &mut Rng, n: u32, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| ids::draw(rng, vocab)).collect()
}

fn random(w: &Workload, seed: u64) -> Vec<Draft> {
    // Separate streams: changing output_len does not change the prompts.
    let mut in_rng = Rng::new(seed, 1);
    let mut out_rng = Rng::new(seed, 2);
    let mut tok_rng = Rng::new(seed, 3);
    let empty: std::sync::Arc<[u32]> = std::sync::Arc::new([]);
    (0..w.num_requests.unwrap_or(100))
        .map(|_| {
            let input_len = random_len(&mut in_rng, w.input_len, w.range_ratio);
            let output_len = random_len(&mut out_rng, w.output_len, w.range_ratio);
            Draft {
                prompt: Prompt::Ids(TokenIds::generated(empty.clone(), &mut tok_rng, input_len, w.vocab_size)),
                output_len,
                timestamp: None,
                session: None,
                priority: 0,
            }
        })
        .collect()
}

/// `num_groups` system prompts of `system_prompt_len` tokens, each followed
/// by `prompts_per_group` questions of `question_len` tokens; rows shuffled
/// (SGLang's `generated_shared_prefix`, ids mode).
fn shared_prefix(w: &Workload, seed: u64) -> Vec<Draft> {
    let mut rng = Rng::new(seed, 5);
    let systems: Vec<std::sync::Arc<[u32]>> =
        (0..w.num_groups).map(|_| random_ids(&mut rng, w.system_prompt_len, w.vocab_size).into()).collect();
    let mut rows = Vec::new();
    for (g, sys) in systems.iter().enumerate() {
        for _ in 0..w.prompts_per_group {
            let q_len = random_len(&mut rng, w.question_len, w.range_ratio);
            let out = random_len(&mut rng, w.output_len, w.range_ratio);
            let ids = TokenIds::generated(sys.clone(), &mut rng, q_len, w.vocab_size);
            rows.push(Draft {
                prompt: Prompt::Ids(ids),
                output_len: out,
                timestamp: None,
                session: Some(g as u64),
                priority: 0,
            });
        }
    }
    for k in (1..rows.len()).rev() {
        let j = rng.range_inclusive(0, k as u64) as usize;
        rows.swap(k, j);
    }
    if let Some(n) = w.num_requests {
        rows.truncate(n as usize);
    }
    rows
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
