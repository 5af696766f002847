//! One request's state inside the scheduler copy (SGLang 0.5.23's `Req`,
//! `managers/schedule_batch.py`, reduced to what the scheduler reads).

use super::CLIP_MAX_NEW_TOKENS;
use crate::sim::TokenEvent;
use crate::sim::radix::NodeId;

#[derive(Debug)]
pub(super) struct Req {
    pub(super) key: u64,
    /// Prompt followed by the tokens generated so far (`fill_ids`), up to
    /// where something read them: a generated token is a function of the
    /// key and its position, written out by [`Req::materialize`] when the
    /// tree or a re-prefill needs it (a decode step does not write to
    /// every running request's ids).
    pub(super) tokens: Vec<u32>,
    pub(super) input_len: usize,
    /// Tokens generated so far.
    pub(super) out: u32,
    pub(super) max_new: u64,
    pub(super) ignore_eos: bool,
    /// Leading tokens of `tokens` whose KV exists.
    pub(super) kv_len: usize,
    /// KV slots held privately (not in the tree).
    pub(super) private: u64,
    /// The tree node this request locks, if any.
    pub(super) lock: Option<NodeId>,
    pub(super) cached_tokens: u32,
    pub(super) admitted: bool,
    pub(super) retractions: u32,
    pub(super) cancelled: bool,
    /// Output tokens the request's events have covered so far.
    pub(super) reported: u32,
    /// Where its unreported tokens' times start in the decode log (quiet
    /// decode: from there it was in every decode step until it left the
    /// running batch).
    pub(super) silent_from: u32,
}

impl Req {
    /// A request just submitted: `tokens` is its prompt.
    pub(super) fn new(key: u64, tokens: Vec<u32>, max_new: u64, ignore_eos: bool) -> Self {
        Self {
            key,
            input_len: tokens.len(),
            tokens,
            out: 0,
            max_new,
            ignore_eos,
            kv_len: 0,
            private: 0,
            lock: None,
            cached_tokens: 0,
            admitted: false,
            retractions: 0,
            cancelled: false,
            reported: 0,
            silent_from: 0,
        }
    }

    pub(super) fn out_len(&self) -> u64 {
        u64::from(self.out)
    }
    /// Prompt plus generated tokens.
    pub(super) fn len(&self) -> usize {
        self.input_len + self.out as usize
    }
    /// Writes out the generated tokens of the first `upto` positions.
    pub(super) fn materialize(&mut self, upto: usize) {
        let upto = upto.min(self.len());
        // One synthetic output token per position: `(key * C + position) %
        // 50_000 + 100_000`. Along the positions the remainder just counts
        // up and wraps, unless the wrapping sum itself wraps past 2^64 on
        // the way (then each is computed alone): one division per call
        // instead of one per token.
        let from = self.tokens.len();
        let base = self.key.wrapping_mul(0x9E37_79B9);
        let start = base.wrapping_add(from as u64);
        if upto <= from {
            return;
        }
        if start.checked_add((upto - from) as u64).is_some() {
            let mut r = (start % 50_000) as u32;
            self.tokens.extend((from..upto).map(|_| {
                let t = r + 100_000;
                r = if r == 49_999 { 0 } else { r + 1 };
                t
            }));
        } else {
            self.tokens.extend((from..upto).map(|p| (base.wrapping_add(p as u64) % 50_000) as u32 + 100_000));
        }
    }
    /// This request's progress event. `token`: the event carries its
    /// newest token (the unreported ones before it go in `silent`);
    /// `next_decode`: the decode log's index of the next decode step.
    pub(super) fn event(&mut self, finished: bool, token: bool, next_decode: u32) -> TokenEvent {
        let out = self.out_len() as u32;
        let ev = TokenEvent {
            key: self.key,
            completion_tokens: out,
            cached_tokens: self.cached_tokens,
            retractions: self.retractions,
            finished,
            error: None,
            silent: out - self.reported - u32::from(token),
            silent_from: self.silent_from,
        };
        self.reported = out;
        self.silent_from = next_decode;
        ev
    }
    pub(super) fn remaining_new(&self) -> u64 {
        self.max_new.saturating_sub(self.out_len()).min(CLIP_MAX_NEW_TOKENS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ids_are_the_formula_at_every_position_and_key() {
        let mut rng = crate::rng::Rng::new(8, 8);
        let mut keys: Vec<u64> = (0..200).map(|_| rng.next_u64()).collect();
        keys.extend([0, 1, u64::MAX]);
        // A key with key * C = 2^64 - 5 (C is odd, so it has an inverse
        // mod 2^64, by Newton's iteration): the sum wraps inside the range.
        let inv = (0..6).fold(1u64, |x, _| x.wrapping_mul(2u64.wrapping_sub(0x9E37_79B9u64.wrapping_mul(x))));
        let wraps = 5u64.wrapping_neg().wrapping_mul(inv);
        assert_eq!(wraps.wrapping_mul(0x9E37_79B9), 5u64.wrapping_neg());
        keys.push(wraps);
        for key in keys {
            let mut r = Req::new(key, vec![7; 3], 40, true);
            r.out = 40;
            r.materialize(10);
            r.materialize(usize::MAX);
            let want: Vec<u32> =
                (3..43u64).map(|p| (key.wrapping_mul(0x9E37_79B9).wrapping_add(p) % 50_000) as u32 + 100_000).collect();
            assert_eq!(&r.tokens[3..], &want[..], "key {key}");
        }
    }
}
