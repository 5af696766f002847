//! The simulated server's engine: when each request's tokens come out.
//!
//! The HTTP server (host, `sglab sim`) owns the clock and the sockets; an
//! [`Engine`] only answers "given these requests and this time, which tokens
//! are due". [`FixedEngine`] gives exact, configured timings (first token
//! `ttft` after arrival, then one token every `itl`), on absolute deadlines so
//! that a late wake-up never shifts later tokens. The faithful scheduler
//! engine implements the same trait.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::Nanos;

/// A request as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimRequest {
    /// Prompt tokens.
    pub input_len: u32,
    /// Tokens to generate (`max_new_tokens`; EOS is ignored).
    pub max_new_tokens: u32,
}

/// Progress of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent {
    /// The server's key for the request.
    pub key: u64,
    /// Tokens generated so far (cumulative).
    pub completion_tokens: u32,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: u32,
    /// True on the request's last event.
    pub finished: bool,
}

/// A token-timing engine driven by an external clock.
pub trait Engine {
    /// Accepts a request at `now`.
    fn submit(&mut self, now: Nanos, key: u64, req: SimRequest);
    /// Drops a request (client went away).
    fn cancel(&mut self, key: u64);
    /// When the next token is due, if any request is active.
    fn next_event_at(&self) -> Option<Nanos>;
    /// Appends every event due at or before `now`. Several tokens of one
    /// request that fell due since the last call come as one event.
    fn advance(&mut self, now: Nanos, out: &mut Vec<TokenEvent>);
    /// Requests accepted and not finished.
    fn active(&self) -> usize;
}

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
}

impl FixedEngine {
    /// First token `ttft` after arrival, then one every `itl`.
    pub fn new(ttft: Nanos, itl: Nanos) -> Self {
        Self { ttft, itl, due: BinaryHeap::new(), active: HashMap::new() }
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
            let since_first = now - (a.start + self.ttft);
            let due = match since_first.checked_div(self.itl) {
                Some(k) => (1 + k).min(a.total as Nanos) as u32,
                None => a.total,
            };
            a.emitted = due.max(a.emitted);
            let finished = a.emitted >= a.total;
            out.push(TokenEvent { key, completion_tokens: a.emitted, cached_tokens: 0, finished });
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn tokens_fall_on_absolute_deadlines() {
        let mut e = FixedEngine::new(50 * MS, 10 * MS);
        e.submit(0, 7, SimRequest { input_len: 5, max_new_tokens: 100 });
        assert_eq!(e.next_event_at(), Some(50 * MS));
        let mut out = vec![];
        e.advance(49 * MS, &mut out);
        assert!(out.is_empty());
        e.advance(50 * MS, &mut out);
        assert_eq!(out, vec![TokenEvent { key: 7, completion_tokens: 1, cached_tokens: 0, finished: false }]);
        assert_eq!(e.next_event_at(), Some(60 * MS));
        // A late wake-up (75 ms) coalesces tokens 2 and 3; token 4 stays at 80 ms.
        out.clear();
        e.advance(75 * MS, &mut out);
        assert_eq!(out[0].completion_tokens, 3);
        assert_eq!(e.next_event_at(), Some(80 * MS));
        out.clear();
        e.advance(1040 * MS, &mut out);
        assert_eq!(out, vec![TokenEvent { key: 7, completion_tokens: 100, cached_tokens: 0, finished: true }]);
        assert_eq!((e.active(), e.next_event_at()), (0, None));
    }

    #[test]
    fn cancelled_requests_emit_nothing() {
        let mut e = FixedEngine::new(MS, MS);
        e.submit(0, 1, SimRequest { input_len: 1, max_new_tokens: 3 });
        e.submit(0, 2, SimRequest { input_len: 1, max_new_tokens: 1 });
        e.cancel(1);
        let mut out = vec![];
        e.advance(10 * MS, &mut out);
        assert_eq!(out.iter().map(|e| e.key).collect::<Vec<_>>(), vec![2]);
        assert_eq!(e.active(), 0);
    }
}
