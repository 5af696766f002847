//! Exact configured timings, independent of load: the first token `ttft`
//! after arrival, then one token every `itl`, on absolute deadlines so that a
//! late wake-up never shifts later tokens. Used by accuracy tests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::{Engine, EngineStats, SimRequest, TokenEvent};
use crate::Nanos;

#[derive(Debug, Clone, Copy)]
struct Active {
    start: Nanos,
    emitted: u32,
    total: u32,
}

/// Exact configured timings, independent of load.
#[derive(Debug)]
pub struct FixedEngine {
    ttft: Nanos,
    itl: Nanos,
    due: BinaryHeap<Reverse<(Nanos, u64)>>,
    active: HashMap<u64, Active>,
    generated: u64,
}

impl FixedEngine {
    /// First token `ttft` after arrival, then one every `itl`.
    pub fn new(ttft: Nanos, itl: Nanos) -> Self {
        Self { ttft, itl, due: BinaryHeap::new(), active: HashMap::new(), generated: 0 }
    }

    fn deadline(&self, a: &Active, token: u32) -> Nanos {
        // Token k (1-based) is due at start + ttft + (k-1) * itl.
        a.start + self.ttft + (token.saturating_sub(1) as Nanos) * self.itl
    }
}

impl Engine for FixedEngine {
    fn submit(&mut self, now: Nanos, key: u64, req: SimRequest) {
        let a = Active { start: now, emitted: 0, total: req.max_new_tokens };
        self.due.push(Reverse((self.deadline(&a, 1), key)));
        self.active.insert(key, a);
    }

    fn cancel(&mut self, key: u64) {
        self.active.remove(&key);
    }

    fn next_event_at(&self) -> Option<Nanos> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    fn advance(&mut self, now: Nanos, out: &mut Vec<TokenEvent>) {
        while let Some(&Reverse((t, key))) = self.due.peek() {
            if t > now {
                break;
            }
            self.due.pop();
            let Some(mut a) = self.active.get(&key).copied() else { continue };
            let before = a.emitted;
            let since_first = now - (a.start + self.ttft);
            let due = match since_first.checked_div(self.itl) {
                Some(k) => (1 + k).min(a.total as Nanos) as u32,
                None => a.total,
            };
            a.emitted = due.max(a.emitted);
            let finished = a.emitted >= a.total;
            out.push(TokenEvent {
                key,
                completion_tokens: a.emitted,
                cached_tokens: 0,
                retractions: 0,
                finished,
                error: None,
                silent: 0,
                silent_from: 0,
            });
            self.generated += (a.emitted - before) as u64;
            if finished {
                self.active.remove(&key);
            } else {
                self.due.push(Reverse((self.deadline(&a, a.emitted + 1), key)));
                self.active.insert(key, a);
            }
        }
    }

    fn active(&self) -> usize {
        self.active.len()
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            num_running_reqs: self.active.len() as u64,
            generation_tokens_total: self.generated,
            ..EngineStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimRequest;

    const MS: Nanos = 1_000_000;

    #[test]
    fn tokens_fall_on_absolute_deadlines() {
        let mut e = FixedEngine::new(50 * MS, 10 * MS);
        e.submit(0, 7, SimRequest { input_ids: vec![0; 5], max_new_tokens: 100, ignore_eos: true });
        assert_eq!(e.next_event_at(), Some(50 * MS));
        let mut out = vec![];
        e.advance(49 * MS, &mut out);
        assert!(out.is_empty());
        e.advance(50 * MS, &mut out);
        assert_eq!(
            out,
            vec![TokenEvent {
                key: 7,
                completion_tokens: 1,
                cached_tokens: 0,
                retractions: 0,
                finished: false,
                error: None,
                silent: 0,
                silent_from: 0
            }]
        );
        assert_eq!(e.next_event_at(), Some(60 * MS));
        // A late wake-up (75 ms) coalesces tokens 2 and 3; token 4 stays at 80 ms.
        out.clear();
        e.advance(75 * MS, &mut out);
        assert_eq!(out[0].completion_tokens, 3);
        assert_eq!(e.next_event_at(), Some(80 * MS));
        out.clear();
        e.advance(1040 * MS, &mut out);
        assert_eq!(
            out,
            vec![TokenEvent {
                key: 7,
                completion_tokens: 100,
                cached_tokens: 0,
                retractions: 0,
                finished: true,
                error: None,
                silent: 0,
                silent_from: 0
            }]
        );
        assert_eq!((e.active(), e.next_event_at()), (0, None));
    }

    #[test]
    fn cancelled_requests_emit_nothing() {
        let mut e = FixedEngine::new(MS, MS);
        e.submit(0, 1, SimRequest { input_ids: vec![0], max_new_tokens: 3, ignore_eos: true });
        e.submit(0, 2, SimRequest { input_ids: vec![0], max_new_tokens: 1, ignore_eos: true });
        e.cancel(1);
        let mut out = vec![];
        e.advance(10 * MS, &mut out);
        assert_eq!(out.iter().map(|e| e.key).collect::<Vec<_>>(), vec![2]);
        assert_eq!(e.active(), 0);
    }
}
