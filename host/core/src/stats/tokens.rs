//! The token-level inputs of the summary, folded in record by record.

use super::itl;
use super::pool::Pool;
use crate::record::{RequestRecord, Status};
use crate::secs;

/// The token-level inputs of the summary (pooled ITL, output tokens per
/// second), accumulated request by request: a run keeps these instead of
/// every record's token events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenStats {
    /// Pooled inter-token latency of ok requests, one value per token after
    /// the first, in seconds as f32 (7 significant digits: 0.6 ns at 10 ms;
    /// half the memory of f64 for the run's largest collection), folded
    /// into (value, count) pairs when values repeat.
    itl: Pool,
    /// Output tokens of ok requests per 1-second bin from run start.
    per_second: Vec<u64>,
}

impl TokenStats {
    /// Adds one finished request (only ok requests count).
    pub fn add(&mut self, r: &RequestRecord) {
        if r.status == Status::Ok {
            self.add_with_row(r, &mut Vec::new());
        }
    }

    /// [`TokenStats::add`], and the record's row ITLs
    /// ([`itl::row`]) from the same pass (the record writer's way).
    pub fn add_with_row(&mut self, r: &RequestRecord, scratch: &mut Vec<f64>) -> Option<itl::ItlRow> {
        if r.status != Status::Ok {
            return itl::row(r, scratch, |_| {});
        }
        let pool = &mut self.itl;
        let row = itl::row(r, scratch, |v| pool.push(v as f32));
        self.add_per_second(r);
        row
    }

    fn add_per_second(&mut self, r: &RequestRecord) {
        let tt = &r.token_times;
        let (mut prev, mut i) = (0u32, 0);
        while let Some(&(t, n)) = tt.get(i) {
            // Whole seconds by integer division: the same bin as
            // `secs(t) as usize` below 2^52 ns (52 days), where the
            // float quotient cannot round up to the next whole second.
            let (bin, lo, hi) = if t < 1 << 52 {
                let bin = t / 1_000_000_000;
                (bin as usize, bin * 1_000_000_000, (bin + 1) * 1_000_000_000)
            } else {
                (secs(t) as usize, t, t)
            };
            // The events that follow in the same bin are counted in one
            // go: one bin lookup per second of a request instead of one
            // per token.
            let mut got = u64::from(n.saturating_sub(prev));
            prev = n;
            i += 1;
            while let Some(&(t, n)) = tt.get(i)
                && lo <= t
                && t < hi
            {
                got += u64::from(n.saturating_sub(prev));
                prev = n;
                i += 1;
            }
            if self.per_second.len() <= bin {
                self.per_second.resize(bin + 1, 0);
            }
            self.per_second[bin] += got;
        }
    }

    /// Output tokens of ok requests per 1-second bin from run start, by
    /// the time each token arrived (what `peak_output_token_throughput`
    /// is the largest of).
    pub fn per_second(&self) -> &[u64] {
        &self.per_second
    }

    /// The pooled ITLs (for the summary).
    pub(super) fn into_itl(self) -> Pool {
        self.itl
    }

    /// The token statistics of `records`.
    pub fn of(records: &[RequestRecord]) -> Self {
        let mut s = Self::default();
        for r in records {
            s.add(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_per_second_bins_every_event_by_its_own_time() {
        let mut rng = crate::rng::Rng::new(5, 1);
        for _ in 0..300 {
            let mut r = RequestRecord::unsent(0, (1, 1), None, Status::Ok, String::new());
            let (mut t, mut n) = (rng.range_inclusive(0, 3_000_000_000), 0u32);
            for _ in 0..rng.range_inclusive(0, 40) {
                // Mostly forward, sometimes back; counts mostly up.
                t = if rng.next_f64() < 0.1 {
                    t.saturating_sub(700_000_000)
                } else {
                    t + rng.range_inclusive(0, 400_000_000)
                };
                n = if rng.next_f64() < 0.1 { n.saturating_sub(2) } else { n + rng.range_inclusive(0, 3) as u32 };
                r.token_times.push((t, n));
            }
            let mut want: Vec<u64> = Vec::new();
            let mut prev = 0;
            for &(t, n) in &r.token_times {
                let bin = (t / 1_000_000_000) as usize;
                if want.len() <= bin {
                    want.resize(bin + 1, 0);
                }
                want[bin] += u64::from(n.saturating_sub(prev));
                prev = n;
            }
            let mut got = TokenStats::default();
            got.add(&r);
            assert_eq!(got.per_second(), want, "{:?}", r.token_times);
        }
    }
}
