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
                    let complete = r.kv_len >= r.len();
                    self.checkpoint(i);
                    if complete && !self.emit_token(i, false, out) {
                        self.running.push(i);
                    }
                }
            }
            Batch::Decode(items, _) => {
                // Prefills never run while a decode step is in flight, so
                // `running` was exactly this batch: it is rebuilt in place.
                let mut still = std::mem::take(&mut self.running);
                still.clear();
                if self.quiet {
                    self.decode_log.push(end);
                }
                for &i in &items {
                    let r = self.slots[i].as_mut().expect("live request");
                    if r.cancelled {
                        self.release(i, false);
                        continue;
                    }
                    r.kv_len += 1;
                    if !self.emit_token(i, true, out) {
                        still.push(i);
                    }
                }
                self.running = still;
                self.spare = items;
                self.window.1 += 1;
                if self.window.1 >= DECODE_LOG_INTERVAL {
                    let secs = (end - self.window.0) as f64 / 1e9;
                    self.stats.gen_throughput = if secs > 0.0 { self.window.2 as f64 / secs } else { 0.0 };
                    self.window = (end, 0, 0);
                }
            }
        }
    }

    /// Generates and emits one token (`decode`: of a decode step); returns
    /// true if that finished the request (which is then released).
    pub(super) fn emit_token(&mut self, i: usize, decode: bool, out: &mut Vec<TokenEvent>) -> bool {
        let next = self.decode_log.len() as u32;
        let r = self.slots[i].as_mut().expect("live request");
        // Its id is written out when read (`Req::materialize`).
        r.out += 1;
        let finished = r.out_len() >= r.max_new;
        // Quiet: a decode token that does not end the request is counted
        // by the request's next event instead.
        if finished || !decode || !self.quiet {
            out.push(r.event(finished, true, next));
        }
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
