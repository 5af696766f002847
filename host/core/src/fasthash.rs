//! A multiplicative hash for maps keyed by one `u32` (token ids, f32 bits):
//! SipHash, the standard default, costs more than the rest of the lookups
//! these maps serve, and none of their keys come from an adversary.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher. See the module docs.
#[derive(Default)]
pub struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (u64::from(v) ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(29);
    }
}

/// A map keyed by `u32` with [`Mix`].
pub type U32Map<V> = HashMap<u32, V, BuildHasherDefault<Mix>>;

/// The length of the common prefix of `a` and `b`, 16 ids at a time (a
/// branch-free fold that compiles to vector compares, where slice `==`
/// would call `memcmp` per chunk) and then one by one.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 16 <= n && a[i..i + 16].iter().zip(&b[i..i + 16]).fold(0, |d, (x, y)| d | (x ^ y)) == 0 {
        i += 16;
    }
    i + a[i..].iter().zip(&b[i..]).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_matches_the_element_by_element_count() {
        let mut rng = crate::rng::Rng::new(3, 9);
        for _ in 0..5_000 {
            let len = rng.range_inclusive(0, 70) as usize;
            let a: Vec<u32> = (0..len).map(|_| rng.range_inclusive(0, 3) as u32).collect();
            let mut b = a.clone();
            b.truncate(rng.range_inclusive(0, len as u64) as usize);
            if !b.is_empty() && rng.next_f64() < 0.7 {
                let at = rng.range_inclusive(0, b.len() as u64 - 1) as usize;
                b[at] = b[at].wrapping_add(1 + rng.range_inclusive(0, 2) as u32);
            }
            let slow = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            assert_eq!(common_prefix(&a, &b), slow, "{a:?} {b:?}");
            assert_eq!(common_prefix(&b, &a), slow);
        }
    }
}
