//! The decode step's memory check and retraction: SGLang 0.5.23
//! `managers/scheduler.py` `update_running_batch` and
//! `managers/schedule_batch.py` `check_decode_mem`, `retract_decode`.

use super::*;

impl SglangEngine {
    /// `update_running_batch`: memory check, retraction, allocation.
    /// Returns the batch and the KV tokens it reads.
    pub(super) fn prepare_decode(&mut self, out: &mut Vec<TokenEvent>) -> Option<(Vec<usize>, u64)> {
        if self.running.is_empty() {
            return None;
        }
        let need = self.running.len() as u64;
        if self.available() < need {
            // Victims: fewest generated tokens first, then longest prompt.
            let mut order = std::mem::take(&mut self.running);
            order.sort_by(|&a, &b| {
                let (ra, rb) = (self.req(a), self.req(b));
                rb.out_len().cmp(&ra.out_len()).then(ra.input_len.cmp(&rb.input_len))
            });
            while self.available() < order.len() as u64 && order.len() > 1 {
                let v = order.pop().expect("more than one");
                self.retract(v, order.len() as u64);
            }
            self.running = order;
            let (done, max): (u64, u64) = self.running.iter().fold((0, 0), |(d, m), &i| {
                let r = self.req(i);
                (d + r.out_len(), m + r.max_new)
            });
            self.ratio = ((done + RETRACT_DECODE_STEPS * self.running.len() as u64) as f64 / (max + 1) as f64).min(1.0);
            self.batch_is_full = false;
            if self.available() < self.running.len() as u64 {
                let last = self.running.pop().expect("one left");
                self.abort(last, "KV cache is full even for one request (out of memory)", out);
                return None;
            }
        } else {
            self.ratio = (self.ratio - self.ratio_decay).max(self.ratio_min);
        }
        // One allocation for the whole batch, as SGLang's `alloc_token_slots`
        // does: it evicts what the batch lacks in one go.
        let (free, need) = (self.free(), self.running.len() as u64);
        if free < need {
            self.radix.evict(need - free);
        }
        debug_assert!(self.free() >= need, "decode allocation checked above");
        self.private_total += need;
        let mut kv_tokens = 0;
        for &i in &self.running {
            let r = self.slots[i].as_mut().expect("live request");
            r.private += 1;
            kv_tokens += r.kv_len as u64 + 1;
        }
        let mut items = std::mem::take(&mut self.spare);
        items.clear();
        items.extend_from_slice(&self.running);
        Some((items, kv_tokens))
    }

    pub(super) fn retract(&mut self, v: usize, remaining: u64) {
        self.private_total -= self.req(v).private;
        self.set_lock(v, None);
        let r = self.req_mut(v);
        // Its re-prefill matches and inserts the generated ids too.
        r.materialize(usize::MAX);
        r.private = 0;
        r.kv_len = 0;
        r.retractions += 1;
        self.radix.evict(RETRACT_DECODE_STEPS * remaining);
        self.waiting.push(v);
        self.stats.retracted_total += 1;
    }
}
