//! Workload generation: the requests of a run, reproducible from the seed.

use crate::config::{Dataset, Workload};
use crate::rng::Rng;

/// Tokens per block in a request's prefix hashes.
pub const PREFIX_BLOCK_TOKENS: u32 = 16;

/// One request of the workload, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Position in the workload (0-based); the request id everywhere.
    pub id: u64,
    /// The prompt as token ids.
    pub input_ids: Vec<u32>,
    /// `max_new_tokens` (sent with `ignore_eos`, so the server produces exactly this many).
    pub output_len: u32,
    /// Chained hashes of the prompt's full blocks (see [`prefix_hashes`]).
    pub prefix_hashes: Vec<u64>,
}

impl RequestSpec {
    /// Prompt length in tokens.
    pub fn input_len(&self) -> u32 {
        self.input_ids.len() as u32
    }
}

/// Draws a length as SGLang's `compute_random_lens` does: uniform integer in
/// `[max(floor(full * ratio), 1), full]`.
pub fn random_len(rng: &mut Rng, full: u32, ratio: f64) -> u32 {
    let lo = ((full as f64 * ratio).floor() as u32).max(1).min(full);
    rng.range_inclusive(lo as u64, full as u64) as u32
}

/// Chained block hashes: element i covers blocks `0..=i` of `ids`, each of
/// `PREFIX_BLOCK_TOKENS` tokens; a trailing partial block is not hashed.
/// FNV-1a over the little-endian token bytes, seeded with the previous
/// block's hash, finished with a SplitMix64 mix.
pub fn prefix_hashes(ids: &[u32]) -> Vec<u64> {
    let mut out = Vec::with_capacity(ids.len() / PREFIX_BLOCK_TOKENS as usize);
    let mut prev: u64 = 0xCBF2_9CE4_8422_2325;
    for block in ids.chunks_exact(PREFIX_BLOCK_TOKENS as usize) {
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

/// Generates the run's requests.
pub fn generate(w: &Workload, seed: u64) -> Vec<RequestSpec> {
    match w.dataset {
        Dataset::Random => random(w, seed),
    }
}

fn random(w: &Workload, seed: u64) -> Vec<RequestSpec> {
    // Separate streams: changing output_len does not change the prompts.
    let mut in_rng = Rng::new(seed, 1);
    let mut out_rng = Rng::new(seed, 2);
    let mut tok_rng = Rng::new(seed, 3);
    (0..w.num_requests as u64)
        .map(|id| {
            let input_len = random_len(&mut in_rng, w.input_len, w.range_ratio);
            let output_len = random_len(&mut out_rng, w.output_len, w.range_ratio);
            let input_ids: Vec<u32> =
                (0..input_len).map(|_| tok_rng.range_inclusive(0, w.vocab_size as u64 - 1) as u32).collect();
            let prefix_hashes = prefix_hashes(&input_ids);
            RequestSpec { id, input_ids, output_len, prefix_hashes }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_lengths_follow_range_ratio() {
        let w =
            Workload { num_requests: 2000, input_len: 100, output_len: 10, range_ratio: 0.5, ..Workload::default() };
        let reqs = generate(&w, 9);
        assert_eq!(reqs.len(), 2000);
        let ins: Vec<u32> = reqs.iter().map(|r| r.input_len()).collect();
        assert_eq!(*ins.iter().min().unwrap(), 50);
        assert_eq!(*ins.iter().max().unwrap(), 100);
        let mean = ins.iter().map(|&x| x as f64).sum::<f64>() / ins.len() as f64;
        assert!((mean - 75.0).abs() < 1.0, "{mean}");
        assert!(reqs.iter().all(|r| (5..=10).contains(&r.output_len)));
        assert!(reqs.iter().all(|r| r.input_ids.iter().all(|&t| t < w.vocab_size)));
    }

    #[test]
    fn ratio_one_is_exact_and_seed_reproduces() {
        let w = Workload { num_requests: 5, input_len: 40, output_len: 7, range_ratio: 1.0, ..Workload::default() };
        let a = generate(&w, 1);
        assert!(a.iter().all(|r| r.input_len() == 40 && r.output_len == 7));
        assert_eq!(a, generate(&w, 1));
        assert_ne!(a, generate(&w, 2));
        assert_eq!(a[0].prefix_hashes.len(), 2); // 40 tokens = 2 full blocks of 16
    }

    #[test]
    fn prefix_hashes_share_exactly_the_shared_blocks() {
        let a: Vec<u32> = (0..64).collect();
        let mut b = a.clone();
        b[40] = 999; // inside block 2
        let (ha, hb) = (prefix_hashes(&a), prefix_hashes(&b));
        assert_eq!(ha.len(), 4);
        assert_eq!(ha[..2], hb[..2]);
        assert_ne!(ha[2], hb[2]);
        assert_ne!(ha[3], hb[3], "chained: a difference propagates");
    }
}
