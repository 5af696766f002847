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
        while self.tokens.len() < upto {
            // One synthetic output token per position.
            let t = (self.key.wrapping_mul(0x9E37_79B9).wrapping_add(self.tokens.len() as u64) % 50_000) as u32;
            self.tokens.push(t + 100_000);
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
