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
                let mut still = Vec::with_capacity(items.len());
                for i in items {
                    if self.req(i).cancelled {
                        self.release(i, false);
                        continue;
                    }
                    self.req_mut(i).kv_len += 1;
                    if !self.emit_token(i, out) {
                        still.push(i);
                    }
                }
                // Prefills never run while a decode step is in flight, so
                // `running` was exactly this batch.
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

    /// Appends one synthetic output token.
    pub(super) fn generate(&mut self, i: usize) {
        let r = self.req_mut(i);
        let t = (r.key.wrapping_mul(0x9E37_79B9).wrapping_add(r.tokens.len() as u64) % 50_000) as u32 + 100_000;
        r.tokens.push(t);
        self.stats.generation_tokens_total += 1;
        self.window.2 += 1;
    }

    /// Generates and emits one token; returns true if that finished the
    /// request (which is then released).
    pub(super) fn emit_token(&mut self, i: usize, out: &mut Vec<TokenEvent>) -> bool {
        self.generate(i);
        let r = self.req(i);
        let finished = r.out_len() >= r.max_new;
        out.push(self.event(i, finished));
        if finished {
            self.stats.num_requests_total += 1;
            self.stats.prompt_tokens_total += self.req(i).input_len as u64;
            self.release(i, true);
        }
        finished
    }
}
