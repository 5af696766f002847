//! A request's inter-token latencies in one pass: the `itl_mean` and
//! `itl_p99` of its row, and each value handed on (to the run's pool),
//! without making the list when the p99 lies among the top few values (a
//! request of up to ~700 output tokens). The record writer did three passes
//! over a list it made first; this was a third of its time.

use super::{bracket, percentile_unsorted, rank_of};
use crate::record::RequestRecord;

/// Above this many values from the top, [`percentile_unsorted`] selects;
/// at or below it (a request's ITL p99: 3 of 127 values), one pass keeps
/// the largest ones, which is several times faster than a selection.
pub(super) const TOP_SCAN: usize = 8;

/// A request's ITL mean and p99, in seconds: its row's `itl_mean` and
/// `itl_p99`, the numbers `itl()`'s mean and `percentile_unsorted(.., 99)`
/// give, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItlRow {
    /// Mean ITL.
    pub mean: f64,
    /// 99th percentile ITL.
    pub p99: f64,
}

/// `r`'s [`ItlRow`] (None without ITLs), calling `each` with every ITL in
/// the order `itl()` lists them. `scratch` holds them only when the p99
/// lies below the top [`TOP_SCAN`].
pub fn row(r: &RequestRecord, scratch: &mut Vec<f64>, mut each: impl FnMut(f64)) -> Option<ItlRow> {
    // The count as it is when the counts never go back (they only grow,
    // in practice): no pass over the events first. The pass counts them;
    // if that differs, the row is made again with the real count (the
    // values given to `each` are the same either way).
    let (Some(first), Some(last)) = (r.token_times.first(), r.token_times.last()) else { return None };
    let guess = last.1.saturating_sub(first.1) as usize;
    let (row, n) = row_for(r, guess, scratch, &mut each);
    if n == guess {
        return row;
    }
    row_for(r, n, scratch, &mut |_| {}).0
}

/// The row for `r` assuming it has `n` ITLs, and how many it has.
fn row_for(r: &RequestRecord, n: usize, scratch: &mut Vec<f64>, each: &mut impl FnMut(f64)) -> (Option<ItlRow>, usize) {
    // `Iterator::sum` of f64 starts at -0.0: the same mean, sign of zero included.
    let mut sum = -0.0f64;
    let mut seen = 0usize;
    let mut counted = |v: f64| {
        sum += v;
        seen += 1;
        each(v);
    };
    if n == 0 {
        r.for_each_itl(&mut counted);
        return (None, seen);
    }
    let rank = rank_of(99.0, n);
    let (lo, hi) = bracket(rank);
    let top = match n - lo {
        k if k <= TOP_SCAN => top_of(k, r, &mut counted),
        _ => {
            scratch.clear();
            scratch.reserve(n);
            r.for_each_itl(|v| {
                scratch.push(v);
                counted(v);
            });
            if seen != n {
                return (None, seen);
            }
            let p99 = percentile_unsorted(scratch, 99.0);
            return (Some(ItlRow { mean: sum / n as f64, p99 }), seen);
        }
    };
    if seen != n {
        return (None, seen);
    }
    (Some(ItlRow { mean: sum / n as f64, p99: interpolate(&top, n - lo, lo, hi, rank) }), seen)
}

/// What the top-k pass reads: a list, or a record's ITLs.
trait Values {
    fn each(&self, f: impl FnMut(f64));
}

impl Values for [f64] {
    #[inline(always)]
    fn each(&self, f: impl FnMut(f64)) {
        self.iter().copied().for_each(f);
    }
}

impl Values for RequestRecord {
    // Inlined, as the passes it replaced were: a call here kept the
    // network's state out of registers (+7 % of the writer).
    #[inline(always)]
    fn each(&self, f: impl FnMut(f64)) {
        self.for_each_itl(f);
    }
}

/// The keys of the `k` (at most [`TOP_SCAN`]) largest of `values`,
/// largest first, each value also given to `each`: a network of the size
/// `k` needs, so the common p99 of a few hundred values keeps 3.
fn top_of<V: Values + ?Sized>(k: usize, values: &V, each: &mut impl FnMut(f64)) -> [i64; TOP_SCAN] {
    match k {
        1 => widen(keep::<1, V>(values, each)),
        2 => widen(keep::<2, V>(values, each)),
        3 => widen(keep::<3, V>(values, each)),
        4 => widen(keep::<4, V>(values, each)),
        _ => keep::<TOP_SCAN, V>(values, each),
    }
}

fn widen<const K: usize>(top: [i64; K]) -> [i64; TOP_SCAN] {
    let mut out = [i64::MIN; TOP_SCAN];
    out[..K].copy_from_slice(&top);
    out
}

fn keep<const K: usize, V: Values + ?Sized>(values: &V, each: &mut impl FnMut(f64)) -> [i64; K] {
    let mut top = [i64::MIN; K];
    values.each(|v| {
        insert(&mut top, v);
        each(v);
    });
    top
}

/// The percentile at `rank` (between order statistics `lo` and `hi`, both
/// within the top [`TOP_SCAN`]) from one pass that keeps the largest
/// `len - lo` values in descending order (the same order as `total_cmp`).
pub(super) fn top_percentile(values: &[f64], lo: usize, hi: usize, rank: f64) -> f64 {
    let k = values.len() - lo;
    interpolate(&top_of(k, values, &mut |_| {}), k, lo, hi, rank)
}

/// `top[j]` is order statistic `len - 1 - j`, for `j < k`.
fn interpolate(top: &[i64; TOP_SCAN], k: usize, lo: usize, hi: usize, rank: f64) -> f64 {
    let (at_lo, at_hi) = (from_key(top[k - 1]), from_key(top[k - 1 - (hi - lo)]));
    at_lo + (at_hi - at_lo) * (rank - lo as f64)
}

/// `v`'s bits as an integer whose order is `f64::total_cmp`'s (the same
/// transform `total_cmp` makes; it is its own inverse).
fn key(v: f64) -> i64 {
    let b = v.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

fn from_key(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// Passes `v` through a min/max network over `top` (largest first): no
/// branch depends on the data (ITLs that grow over a request mispredicted
/// an insertion's branches on most values).
fn insert<const K: usize>(top: &mut [i64; K], v: f64) {
    let mut x = key(v);
    for slot in top {
        let hi = (*slot).max(x);
        x = (*slot).min(x);
        *slot = hi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_gives_the_list_s_mean_and_p99_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(11, 4);
        let mut scratch = Vec::new();
        for case in 0..2_000 {
            let mut r = RequestRecord::unsent(0, (1, 1), None, crate::record::Status::Ok, String::new());
            let (mut t, mut c) = (rng.range_inclusive(0, 1 << 40), 0u32);
            // Lengths across every top-k size and the selection beyond.
            let len = if case % 10 == 0 { rng.range_inclusive(0, 2_000) } else { rng.range_inclusive(0, 300) };
            for _ in 0..len {
                // Repeats, gaps going back, events of several tokens.
                t = match rng.range_inclusive(0, 9) {
                    0 => t,
                    1 => t.saturating_sub(rng.range_inclusive(0, 5_000_000)),
                    _ => t + rng.range_inclusive(0, 30_000_000),
                };
                // Counts that go back (a guess from the ends is then wrong).
                c = match rng.range_inclusive(0, 40) {
                    0 if case % 3 == 0 => c.saturating_sub(4),
                    _ => c + [0, 1, 1, 1, 2, 5][rng.range_inclusive(0, 5) as usize],
                };
                r.token_times.push((t, c));
            }
            let itl = r.itl();
            let mut seen = Vec::new();
            let got = row(&r, &mut scratch, |v| seen.push(v));
            assert_eq!(
                seen.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                itl.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            if itl.is_empty() {
                assert_eq!(got, None);
                continue;
            }
            let mean = itl.iter().sum::<f64>() / itl.len() as f64;
            let p99 = percentile_unsorted(&mut itl.clone(), 99.0);
            let got = got.expect("ITLs");
            assert_eq!((got.mean.to_bits(), got.p99.to_bits()), (mean.to_bits(), p99.to_bits()), "{len} events");
        }
    }
}
