//! Applying a finished forward pass: new KV, tokens, finishes (SGLang 0.5.23
//! `managers/scheduler.py` `process_batch_result`, `mem_cache/common.py`
//! `release_kv_cache`).

use super::*;

impl SglangEngine {
    /// Applies a finished step's results.
    pub(super) fn commit(&mut self, end: Nanos, batch: Batch, out: &mut Vec<TokenEvent>) {
        self.stats.steps_total += 1;
        match batch {
            Batch::Prefill(items) => {
                for (i, ext) in items {
                    if self.req(i).cancelled {
                        if self.chunked == Some(i) {
                            self.chunked = None;
                        }
                        self.release(i, false);
                        continue;
                    }
                    let r = self.req_mut(i);
                    r.kv_len += ext as usize;
                    let complete = r.kv_len >= r.tokens.len();
                    self.checkpoint(i);
                    if complete && !self.emit_token(i, out) {
                        self.running.push(i);
                    }
                }
            }
            Batch::Decode(items) => {
                // Prefills never run while a decode step is in flight, so
                // `running` was exactly this batch: it is rebuilt in place.
                let mut still = std::mem::take(&mut self.running);
                still.clear();
                for i in items {
                    let r = self.slots[i].as_mut().expect("live request");
                    if r.cancelled {
                        self.release(i, false);
                        continue;
                    }
                    r.kv_len += 1;
                    if !self.emit_token(i, out) {
                        still.push(i);
                    }
                }
                self.running = still;
                self.window.1 += 1;
                if self.window.1 >= DECODE_LOG_INTERVAL {
                    let secs = (end - self.window.0) as f64 / 1e9;
                    self.stats.gen_throughput = if secs > 0.0 { self.window.2 as f64 / secs } else { 0.0 };
                    self.window = (end, 0, 0);
                }
            }
        }
    }

    /// Generates and emits one token; returns true if that finished the
    /// request (which is then released).
    pub(super) fn emit_token(&mut self, i: usize, out: &mut Vec<TokenEvent>) -> bool {
        let r = self.slots[i].as_mut().expect("live request");
        // One synthetic output token.
        let t = (r.key.wrapping_mul(0x9E37_79B9).wrapping_add(r.tokens.len() as u64) % 50_000) as u32 + 100_000;
        r.tokens.push(t);
        let finished = r.out_len() >= r.max_new;
        out.push(r.event(finished));
        let input_len = r.input_len as u64;
        self.stats.generation_tokens_total += 1;
        self.window.2 += 1;
        if finished {
            self.stats.num_requests_total += 1;
            self.stats.prompt_tokens_total += input_len;
            self.release(i, true);
        }
        finished
    }
}
