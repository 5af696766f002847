//! Token-id prompts held compactly: a shared head (a system prompt, or
//! explicit ids) followed by a tail that is regenerated from a saved random
//! generator state whenever it is read. A generated 1,024-token prompt costs
//! about 64 bytes until it is sent, instead of 4 KiB, and reads back the
//! exact ids it was drawn as.

use std::sync::Arc;

use crate::rng::Rng;

/// A prompt's token ids.
#[derive(Debug, Clone)]
pub struct TokenIds {
    head: Arc<[u32]>,
    /// The generator state the tail is drawn from, with the tail's length
    /// and the vocabulary size (ids are uniform in `0..vocab`).
    tail: Option<(Rng, u32, u32)>,
}

impl From<Vec<u32>> for TokenIds {
    fn from(ids: Vec<u32>) -> Self {
        Self { head: ids.into(), tail: None }
    }
}

impl PartialEq for TokenIds {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for TokenIds {}

/// Draws one id as every generated prompt does.
pub(crate) fn draw(rng: &mut Rng, vocab: u32) -> u32 {
    rng.range_inclusive(0, vocab as u64 - 1) as u32
}

impl TokenIds {
    /// `head` followed by `len` ids drawn from `rng` (which is advanced past
    /// them, so the caller's stream continues exactly as if they were drawn).
    pub(crate) fn generated(head: Arc<[u32]>, rng: &mut Rng, len: u32, vocab: u32) -> Self {
        let start = rng.clone();
        for _ in 0..len {
            draw(rng, vocab);
        }
        Self { head, tail: Some((start, len, vocab)) }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, |&(_, n, _)| n as usize)
    }

    /// True when there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids, in order (the tail is regenerated on the way).
    pub fn iter(&self) -> Ids<'_> {
        Ids { head: self.head.iter(), tail: self.tail.clone() }
    }

    /// The shared head (a system prompt, or all the ids).
    pub fn head(&self) -> &Arc<[u32]> {
        &self.head
    }

    /// Calls `f` with each id after the head, in order (regenerated with
    /// the generator in a local, as [`TokenIds::to_vec_with_room`] does:
    /// an iterator kept its state in memory).
    pub fn for_each_tail(&self, mut f: impl FnMut(u32)) {
        if let Some((rng, n, vocab)) = &self.tail {
            let mut rng = rng.clone();
            for _ in 0..*n {
                f(draw(&mut rng, *vocab));
            }
        }
    }

    /// The ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        self.to_vec_with_room(0)
    }

    /// The ids as a vector with capacity for `room` more (the simulator
    /// appends a request's output tokens to its prompt).
    pub fn to_vec_with_room(&self, room: usize) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.len() + room);
        v.extend_from_slice(&self.head);
        if let Some((rng, n, vocab)) = &self.tail {
            // Filled in place: `extend` kept its length bookkeeping in the
            // loop, which spilled the generator's state to the stack (this
            // is a fifth of a virtual run's event loop).
            let start = v.len();
            v.resize(start + *n as usize, 0);
            let mut rng = rng.clone();
            for slot in &mut v[start..] {
                *slot = draw(&mut rng, *vocab);
            }
        }
        v
    }
}

/// Iterator over a prompt's ids.
#[derive(Debug)]
pub struct Ids<'a> {
    head: std::slice::Iter<'a, u32>,
    tail: Option<(Rng, u32, u32)>,
}

impl Iterator for Ids<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if let Some(&t) = self.head.next() {
            return Some(t);
        }
        let (rng, left, vocab) = self.tail.as_mut()?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(draw(rng, *vocab))
    }
}

impl serde::Serialize for TokenIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_tail_reads_back_what_was_drawn() {
        let mut a = Rng::new(7, 3);
        let mut b = a.clone();
        let head: Arc<[u32]> = vec![9, 8].into();
        let ids = TokenIds::generated(head, &mut a, 5, 100);
        let drawn: Vec<u32> = (0..5).map(|_| draw(&mut b, 100)).collect();
        assert_eq!(ids.to_vec(), [&[9, 8][..], &drawn].concat());
        assert_eq!(ids.len(), 7);
        assert_eq!(ids.to_vec(), ids.to_vec(), "reading twice gives the same ids");
        let mut tail = Vec::new();
        ids.for_each_tail(|t| tail.push(t));
        assert_eq!(tail, drawn);
        // The caller's stream moved past the tail.
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(serde_json::to_string(&TokenIds::from(vec![1, 2])).unwrap(), "[1,2]");
        assert_eq!(ids, TokenIds::from(ids.to_vec()));
    }
}
