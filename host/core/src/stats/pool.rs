//! The pooled inter-token latencies of a run: one f32 per token, the run's
//! largest collection. Runs whose latencies repeat (a virtual-time run,
//! where every gap is a step duration) are kept as sorted (value, count)
//! pairs instead, which is exact: the summary computed from them is the
//! one computed from every value, bit for bit.

use super::Dist;
use crate::fasthash::U32Map;

/// Raw values are folded into runs once this many are held.
const FOLD_AT: usize = 1 << 20;

/// Slots of the counting table in front of the fold (a power of two).
const SLOTS: usize = 1 << 12;

/// The pooled values. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    raw: Vec<f32>,
    /// Sorted by value (`total_cmp`), distinct values.
    runs: Vec<(f32, u32)>,
    /// While folding: a direct-mapped table of (value bits, count), count
    /// 0 for an empty slot. A virtual-time run's ITLs are the gaps between
    /// decode steps, each shared by every request in both steps, so most
    /// values find their slot taken by themselves: one compare and an
    /// increment instead of a value held and hashed later.
    slots: Box<[(u32, u32); SLOTS]>,
    /// Entries pushed out of `slots` by another value (or a full count).
    spilled: Vec<(u32, u32)>,
    /// Values that `spilled` stands for.
    spilled_values: usize,
    /// False once folding stopped paying (values mostly distinct).
    fold: bool,
    fold_at: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self::with_fold_at(FOLD_AT)
    }
}

/// Merges sorted `values` into sorted `runs`.
fn merged(runs: &[(f32, u32)], values: &[f32]) -> Vec<(f32, u32)> {
    let mut out: Vec<(f32, u32)> = Vec::with_capacity(runs.len());
    let mut push = |v: f32, c: u32| match out.last_mut() {
        Some((last, n)) if last.total_cmp(&v).is_eq() && n.checked_add(c).is_some() => *n += c,
        _ => out.push((v, c)),
    };
    let (mut i, mut j) = (0, 0);
    while i < runs.len() || j < values.len() {
        if j == values.len() || (i < runs.len() && runs[i].0.total_cmp(&values[j]).is_le()) {
            push(runs[i].0, runs[i].1);
            i += 1;
        } else {
            push(values[j], 1);
            j += 1;
        }
    }
    out
}

fn slot_of(bits: u32) -> usize {
    // The top bits of the product: below SLOTS, so the index needs no check.
    (bits.wrapping_mul(0x9E37_79B1) >> (32 - SLOTS.trailing_zeros())) as usize & (SLOTS - 1)
}

impl Pool {
    /// A pool that folds every `n` values held (tests use a small `n`).
    pub fn with_fold_at(n: usize) -> Self {
        Self {
            raw: Vec::new(),
            runs: Vec::new(),
            slots: Box::new([(0, 0); SLOTS]),
            spilled: Vec::new(),
            spilled_values: 0,
            fold: true,
            fold_at: n.max(1),
        }
    }

    /// Adds one value.
    #[inline(always)]
    pub fn push(&mut self, v: f32) {
        if self.fold {
            let bits = v.to_bits();
            let slot = &mut self.slots[slot_of(bits)];
            // An empty slot is (0, 0): the value 0.0 counts in it as found.
            if slot.0 == bits && slot.1 < u32::MAX {
                slot.1 += 1;
                return;
            }
        }
        self.push_slow(v);
    }

    /// [`Pool::push`] of a value not counted in its slot.
    #[cold]
    #[inline(never)]
    fn push_slow(&mut self, v: f32) {
        if !self.fold {
            self.raw.push(v);
            return;
        }
        let bits = v.to_bits();
        let old = std::mem::replace(&mut self.slots[slot_of(bits)], (bits, 1));
        if old.1 > 0 {
            self.spilled.push(old);
            self.spilled_values += old.1 as usize;
            if self.spilled.len() >= self.fold_at {
                self.fold_spilled();
            }
        }
    }

    /// Empties the table into `spilled`.
    fn drain_slots(&mut self) {
        for slot in self.slots.iter_mut() {
            if slot.1 > 0 {
                self.spilled.push(*slot);
                self.spilled_values += slot.1 as usize;
                *slot = (0, 0);
            }
        }
    }

    fn fold_spilled(&mut self) {
        // Count by value (a hash pass, no sort of the values), then order
        // only the distinct values.
        let mut counts: U32Map<u64> = U32Map::default();
        for &(v, c) in &self.runs {
            counts.insert(v.to_bits(), u64::from(c));
        }
        for &(b, c) in &self.spilled {
            *counts.entry(b).or_insert(0) += u64::from(c);
        }
        // A pair costs two values' bytes: keep folding only while it halves them.
        let distinct = counts.len() * 4 > self.spilled_values + self.runs.len();
        if distinct || counts.values().any(|&c| c >= u64::from(u32::MAX)) {
            // Mostly distinct: back to plain values, for good. A count that
            // would overflow: the runs stay as they are, and what was not
            // folded yet (and all that comes) is kept as plain values.
            self.drain_slots();
            if distinct {
                for &(v, c) in &self.runs {
                    self.raw.extend(std::iter::repeat_n(v, c as usize));
                }
                self.runs = Vec::new();
            }
            for &(b, c) in &self.spilled {
                self.raw.extend(std::iter::repeat_n(f32::from_bits(b), c as usize));
            }
            self.spilled = Vec::new();
            self.spilled_values = 0;
            self.fold = false;
            return;
        }
        let mut runs: Vec<(f32, u32)> = counts.into_iter().map(|(b, c)| (f32::from_bits(b), c as u32)).collect();
        runs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        self.runs = runs;
        self.spilled.clear();
        self.spilled_values = 0;
    }

    /// The distribution of every value added, as [`Dist::of_f32`] gives it.
    pub fn dist(mut self) -> Option<Dist> {
        if self.fold {
            self.drain_slots();
            self.fold_spilled();
        }
        if self.runs.is_empty() {
            return Dist::of_f32(self.raw);
        }
        self.raw.sort_unstable_by(f32::total_cmp);
        let runs = merged(&self.runs, &self.raw);
        let n: u64 = runs.iter().map(|&(_, c)| u64::from(c)).sum();
        // Sums in the sorted order, one value at a time, as `of_sorted` does.
        let mut sum = 0.0f64;
        for &(v, c) in &runs {
            for _ in 0..c {
                sum += f64::from(v);
            }
        }
        let mean = sum / n as f64;
        let mut var = 0.0f64;
        for &(v, c) in &runs {
            let d = (f64::from(v) - mean).powi(2);
            for _ in 0..c {
                var += d;
            }
        }
        // Order statistic k of the pooled values, through the runs' ends.
        let ends: Vec<u64> = runs
            .iter()
            .scan(0u64, |acc, &(_, c)| {
                *acc += u64::from(c);
                Some(*acc)
            })
            .collect();
        let at = |k: u64| f64::from(runs[ends.partition_point(|&e| e <= k)].0);
        // `percentile_by`'s interpolation, on order statistics found in the runs.
        let pct = |p: f64| {
            let rank = p / 100.0 * (n - 1) as f64;
            let (lo, hi) = (rank.floor() as u64, rank.ceil() as u64);
            at(lo) + (at(hi) - at(lo)) * (rank - lo as f64)
        };
        Some(Dist {
            count: n as usize,
            mean,
            std: (var / n as f64).sqrt(),
            min: f64::from(runs[0].0),
            p50: pct(50.0),
            p90: pct(90.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: f64::from(runs[runs.len() - 1].0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(values: &[f32], fold_at: usize) -> (Option<Dist>, Option<Dist>) {
        let mut p = Pool::with_fold_at(fold_at);
        values.iter().for_each(|&v| p.push(v));
        (p.dist(), Dist::of_f32(values.to_vec()))
    }

    #[test]
    fn folded_runs_give_the_distribution_of_every_value() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        // Repeating values (virtual time): folded, and exact.
        let repeating: Vec<f32> = (0..50_000).map(|_| 0.007 + (next() % 40) as f32 * 1e-4).collect();
        let (a, b) = both(&repeating, 1000);
        assert_eq!(a, b);
        let mut p = Pool::with_fold_at(1000);
        repeating.iter().for_each(|&v| p.push(v));
        assert!(p.fold && p.raw.is_empty() && p.spilled.len() < 1000, "counted in the table");
        p.drain_slots();
        p.fold_spilled();
        assert!(p.fold && p.runs.len() <= 40, "folded to at most 40 pairs");
        // Distinct values (real time): folding stops, still exact.
        let distinct: Vec<f32> = (0..50_000).map(|_| (next() % 10_000_000) as f32 * 1e-9).collect();
        let (a, b) = both(&distinct, 1000);
        assert_eq!(a, b);
        // Repeating, then distinct, in one call: folding stops part-way
        // through it, still exact.
        let mixed: Vec<f32> = repeating.iter().chain(&distinct).copied().collect();
        let (a, b) = both(&mixed, 1000);
        assert_eq!(a, b);
        // Small and empty pools.
        for n in [0, 1, 2, 999, 1000, 1001] {
            let (a, b) = both(&repeating[..n], 1000);
            assert_eq!(a, b, "{n} values");
        }
    }
}
