//! The numbers of a `requests.csv` row, written as bytes: whole
//! nanoseconds as seconds with 9 decimals, ratios at the same precision,
//! and plain integers (the record writer's hot path: `write!`'s formatting
//! machinery was most of its time).

use std::io::Write as _;

/// A time or an interval in seconds with exactly 9 decimals, from whole
/// nanoseconds: no float noise, and `total_latency` is `finish_time -
/// arrival_time` to the digit (differences of written values are exact).
pub(super) fn fixed_ns(out: &mut Vec<u8>, v: Option<i128>) {
    if let Some(v) = v {
        if v < 0 {
            out.push(b'-');
        }
        // Differences of two u64 times: |v| fits u64 (u128 division is a
        // library call per digit, which was most of the writer's time).
        let a = u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX);
        push_uint(out, a / 1_000_000_000, 1);
        out.push(b'.');
        push_frac9(out, a % 1_000_000_000);
    }
}

/// Two ASCII digits for each of 00..=99.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

fn pair(v: u64) -> [u8; 2] {
    let i = v as usize % 100 * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// Appends the 9 digits of `v` (below 10^9) with leading zeros: every time
/// column's fraction, in fixed steps and one fixed-size copy.
fn push_frac9(out: &mut Vec<u8>, v: u64) {
    let (hi, lo) = (v / 10_000, v % 10_000);
    let (h3, h2) = (hi / 100, hi % 100);
    let [a, b] = pair(h3);
    let [c, d] = pair(h2);
    let [e, f] = pair(lo / 100);
    let [g, h] = pair(lo % 100);
    out.extend_from_slice(&[b'0' + (h3 / 100 % 10) as u8, a, b, c, d, e, f, g, h]);
}

/// Appends `v` in decimal, zero-padded to at least `width` digits (at most
/// 20), two digits at a time: the formatting machinery of `write!` was most
/// of the record writer's time.
pub(super) fn push_uint(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v >= 100 {
        let p = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if v >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[v as usize * 2..v as usize * 2 + 2]);
    } else if v > 0 {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

/// A ratio in seconds (tpot, ITL) at the same 9-decimal precision.
pub(super) fn fixed_s(out: &mut Vec<u8>, v: Option<f64>) {
    let Some(v) = v else { return };
    match nanos_rounded(v) {
        Some(n) => {
            if v.is_sign_negative() {
                out.push(b'-');
            }
            push_uint(out, n / 1_000_000_000, 1);
            out.push(b'.');
            push_frac9(out, n % 1_000_000_000);
        }
        // Writing to a Vec cannot fail.
        None => drop(write!(out, "{v:.9}")),
    }
}

/// |v| × 10^9 rounded to the nearest integer, ties to even: the digits
/// `{:.9}` writes, from integer arithmetic on the exact binary value
/// (the float formatter was a sixth of the record writer's time). None
/// for what it does not cover (not finite, or 2^64 ns and more).
fn nanos_rounded(v: f64) -> Option<u64> {
    if !v.is_finite() {
        return None;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    // |v| = m × 2^e exactly.
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | 1 << 52, exp - 1075) };
    let p = u128::from(m) * 1_000_000_000;
    let q = if e >= 0 {
        if e >= 64 {
            return None;
        }
        p.checked_shl(e as u32).filter(|q| q >> 64 == 0)?
    } else if e <= -128 {
        // p < 2^83: the product is below 2^-45, which rounds to 0.
        0
    } else {
        let s = (-e) as u32;
        let (q, r) = (p >> s, p & ((1u128 << s) - 1));
        let half = 1u128 << (s - 1);
        q + u128::from(r > half || (r == half && q & 1 == 1))
    };
    u64::try_from(q).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ns_writes_nine_decimals_at_the_extremes() {
        let w = |v: i128| {
            let mut s = Vec::new();
            fixed_ns(&mut s, Some(v));
            String::from_utf8(s).unwrap()
        };
        assert_eq!(w(0), "0.000000000");
        assert_eq!(w(5), "0.000000005");
        assert_eq!(w(-1_000_000_007), "-1.000000007");
        assert_eq!(w(123_456_789_012), "123.456789012");
        assert_eq!(w(i128::from(u64::MAX)), "18446744073.709551615");
        assert_eq!(w(-i128::from(u64::MAX)), "-18446744073.709551615");
    }

    #[test]
    fn nine_decimals_are_what_the_formatter_writes() {
        let mut rng = crate::rng::Rng::new(4, 4);
        let mut cases =
            vec![0.0, -0.0, 1e-12, -1e-12, 0.5e-9, 1.5e-9, 2.5e-9, 1e300, -1e300, f64::MAX, f64::MIN_POSITIVE];
        cases.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324, 1.844_674_407_370_955e10]);
        // Exact ties at the tenth decimal (odd multiples of 2^-10 and of
        // 2^-k beyond), and ordinary latencies.
        cases.extend((0..2_000).map(|k| (2 * k + 1) as f64 / 1024.0));
        cases.extend((0..2_000).map(|k| (2 * k + 1) as f64 / 2048.0));
        for _ in 0..200_000 {
            let v = match rng.range_inclusive(0, 3) {
                0 => rng.next_f64() * 0.05,
                1 => (rng.next_f64() - 0.5) * 2e4,
                2 => f64::from_bits(rng.next_u64()),
                _ => rng.range_inclusive(0, 1 << 40) as f64 / 1e9,
            };
            cases.push(v);
        }
        for v in cases {
            let mut out = Vec::new();
            fixed_s(&mut out, Some(v));
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v:.9}"), "{v:e}");
        }
    }

    #[test]
    fn nine_digit_fractions_are_zero_padded_decimals() {
        let mut rng = crate::rng::Rng::new(9, 9);
        let mut cases = vec![0, 1, 9, 10, 99, 100, 9_999, 10_000, 99_999_999, 100_000_000, 999_999_999];
        cases.extend((0..100_000).map(|_| rng.range_inclusive(0, 999_999_999)));
        for v in cases {
            let mut out = Vec::new();
            push_frac9(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v:09}"));
        }
    }

    #[test]
    fn push_uint_writes_what_display_writes() {
        let mut v = 1u64;
        let mut cases = vec![0, 9, 10, 99, 100, 101, 999_999_999, u64::MAX];
        while v < u64::MAX / 7 {
            cases.extend([v, v - 1, v + 1]);
            v *= 7;
        }
        for c in cases {
            for width in [1, 9, 20] {
                let mut out = Vec::new();
                push_uint(&mut out, c, width);
                assert_eq!(String::from_utf8(out).unwrap(), format!("{c:0width$}"), "{c} width {width}");
            }
        }
    }
}
