//! Prefill admission: SGLang 0.5.23 `managers/scheduler.py`
//! `_get_new_batch_prefill_raw` and `managers/schedule_policy.py`
//! (`SchedulePolicy.calc_priority`, `PrefillAdder`).

use super::*;

impl SglangEngine {
    pub(super) fn order_waiting(&mut self) {
        match self.cfg.policy {
            Policy::Fcfs => {}
            Policy::Lof => {
                let mut w = std::mem::take(&mut self.waiting);
                w.sort_by_key(|&i| std::cmp::Reverse(self.req(i).max_new));
                self.waiting = w;
            }
            Policy::Random => {
                for k in (1..self.waiting.len()).rev() {
                    let j = self.rng.range_inclusive(0, k as u64) as usize;
                    self.waiting.swap(k, j);
                }
            }
            Policy::Lpm => {
                if self.waiting.len() > LPM_FALLBACK_QUEUE || self.cfg.disable_radix_cache {
                    return;
                }
                let mut w = std::mem::take(&mut self.waiting);
                let mut keyed: Vec<(usize, usize)> = w
                    .iter()
                    .map(|&i| {
                        let t = &self.slots[i].as_ref().expect("live request").tokens;
                        (self.radix.match_prefix(t, t.len().saturating_sub(1)).0, i)
                    })
                    .collect();
                keyed.sort_by_key(|&(m, _)| std::cmp::Reverse(m));
                w.clear();
                w.extend(keyed.into_iter().map(|(_, i)| i));
                self.waiting = w;
            }
        }
    }

    /// The KV the running batch will still need: each request's remaining
    /// output, times the new-token ratio unless it ignores EOS, summed in
    /// batch order (`PrefillAdder`'s `rem_total_token_offset`).
    fn running_reserve(&self) -> f64 {
        // When every request ignores EOS the terms are integers: their sum
        // in u64 is the f64 sum exactly (every partial sum is an integer
        // below 2^53), without a chain of dependent float additions (a
        // fifth of a virtual run's engine time).
        let (mut whole, mut all_whole) = (0u64, true);
        for &i in &self.running {
            let r = self.req(i);
            whole += r.remaining_new();
            all_whole &= r.ignore_eos;
        }
        if all_whole && whole < 1 << 53 {
            return whole as f64;
        }
        self.running
            .iter()
            .map(|&i| {
                let r = self.req(i);
                r.remaining_new() as f64 * if r.ignore_eos { 1.0 } else { self.ratio }
            })
            .sum()
    }

    /// `_get_new_batch_prefill_raw` + `PrefillAdder`.
    pub(super) fn try_prefill(&mut self) -> Option<Vec<(usize, u64)>> {
        if (self.batch_is_full || self.waiting.is_empty()) && self.chunked.is_none() {
            return None;
        }
        if self.running.len() as u64 >= self.cfg.max_running_requests && self.chunked.is_none() {
            self.batch_is_full = true;
            return None;
        }
        self.order_waiting();
        let mut offset = self.running_reserve();
        let rem_total = |s: &Self, offset: f64| s.available() as f64 - offset;
        let mut rem_input = self.cfg.max_prefill_tokens as i64;
        let mut rem_chunk = self.cfg.chunked_prefill_size.map(|c| c as i64);
        let mut admitted: Vec<(usize, u64)> = Vec::new();

        if let Some(c) = self.chunked {
            let r = self.req(c);
            let remaining = (r.len() - r.kv_len) as i64;
            let chunk = rem_chunk.unwrap_or(i64::MAX);
            let total = rem_total(self, offset);
            let mut e = remaining.min(chunk).min(if total > 0.0 { total as i64 } else { chunk });
            if e <= 0 {
                e = chunk;
            }
            let last = e >= remaining;
            let e = e.min(remaining);
            offset += e as f64 + if last { 1.0 + r.remaining_new() as f64 } else { 0.0 };
            rem_input -= e;
            rem_chunk = rem_chunk.map(|c| c - e);
            admitted.push((c, e as u64));
            if last {
                self.chunked = None;
            }
        }

        let mut new_chunked = None;
        let mut i = 0;
        while i < self.waiting.len() && new_chunked.is_none() && self.chunked.is_none() {
            if rem_input <= 0 || rem_chunk.is_some_and(|c| c <= 0) || rem_total(self, offset) <= 0.0 {
                break;
            }
            if (self.running.len() + admitted.len()) as u64 >= self.cfg.max_running_requests {
                self.batch_is_full = true;
                break;
            }
            let idx = self.waiting[i];
            let (prefix, node) = if self.cfg.disable_radix_cache {
                (0, ROOT)
            } else {
                let r = self.slots[idx].as_ref().expect("live request");
                // Waiting requests are new or retracted (written out then).
                debug_assert_eq!(r.tokens.len(), r.len(), "ids of a waiting request");
                self.radix.match_prefix(&r.tokens, r.tokens.len() - 1)
            };
            let r = self.req(idx);
            let mut ext = (r.len() - prefix) as i64;
            let reserve = r.remaining_new() as f64;
            // The matched prefix is locked while checking, so it no longer counts as evictable.
            self.radix.lock(node);
            let need = ext as f64 + reserve + 1.0;
            if need >= rem_total(self, offset) {
                self.radix.unlock(node);
                if !admitted.is_empty() || !self.running.is_empty() {
                    self.batch_is_full = true;
                }
                break;
            }
            if rem_chunk.is_none() && !admitted.is_empty() && ext >= rem_input {
                self.radix.unlock(node);
                break;
            }
            let mut reserve_now = reserve;
            if let Some(c) = rem_chunk
                && ext > c
            {
                ext = c;
                reserve_now = 0.0;
                new_chunked = Some(idx);
            }
            let r = self.req_mut(idx);
            r.kv_len = prefix;
            if !r.admitted {
                r.admitted = true;
                r.cached_tokens = prefix as u32;
            }
            let old = r.lock.replace(node);
            if let Some(old) = old {
                self.radix.unlock(old);
            }
            offset += ext as f64 + 1.0 + reserve_now;
            rem_input -= ext;
            rem_chunk = rem_chunk.map(|c| c - ext);
            admitted.push((idx, ext as u64));
            self.stats.cached_tokens_total += prefix as u64;
            i += 1;
        }
        if admitted.is_empty() {
            return None;
        }
        let mut taken = vec![false; self.slots.len()];
        for &(i, _) in &admitted {
            taken[i] = true;
        }
        self.waiting.retain(|&i| !taken[i]);
        if new_chunked.is_some() {
            self.chunked = new_chunked;
        }
        // Allocate the extend tokens (evicting cache as needed).
        let mut batch = Vec::with_capacity(admitted.len());
        for (idx, ext) in admitted {
            if self.alloc(idx, ext) {
                batch.push((idx, ext));
            } else {
                // Budget accounting guarantees room; abort rather than corrupt state.
                let msg = "KV cache exhausted during prefill allocation";
                if self.chunked == Some(idx) {
                    self.chunked = None;
                }
                let mut ev = Vec::new();
                self.abort(idx, msg, &mut ev);
                self.pending_events.append(&mut ev);
            }
        }
        let (cached, computed) =
            batch.iter().fold((0u64, 0u64), |(c, e), &(i, ext)| (c + self.req(i).kv_len as u64, e + ext));
        if cached + computed > 0 {
            self.stats.cache_hit_rate = cached as f64 / (cached + computed) as f64;
        }
        Some(batch)
    }
}
