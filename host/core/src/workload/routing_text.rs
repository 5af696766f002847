//! The text sglang-router routes on, which `host.prompt-text` gives a
//! plugin: the prompt, or for token-id prompts the ids as space-separated
//! decimals (sglang-router's `extract_text_for_routing` for `/generate`
//! with `input_ids`).
//!
//! It is made when a plugin asks for it, not for the whole workload up
//! front: 10,000 prompts of 2,300 tokens are 140 MB of text. A token prompt
//! is a shared head (a group's system prompt) and a generated tail, so the
//! head's text is made once per head and reused.

use std::collections::HashMap;
use std::sync::Arc;

use super::Prompt;

/// Heads shorter than this are formatted each time (not worth keeping).
const CACHED_HEAD: usize = 32;
/// At most this many head texts are kept; then the cache starts over.
const MAX_HEADS: usize = 256;

/// Makes routing texts, keeping the text of recently used shared heads.
#[derive(Debug, Default)]
pub struct RoutingTexts {
    /// Head text by the head's address. The prompts that own the heads
    /// outlive this cache (the plugin's grant holds them), so an address
    /// names one head for as long as it is here.
    heads: HashMap<usize, String>,
    /// The digits being formatted, reused from text to text.
    digits: Digits,
}

impl RoutingTexts {
    /// The routing text of `prompt`.
    pub fn text(&mut self, prompt: &Prompt) -> String {
        let ids = match prompt {
            Prompt::Text(t) => return t.clone(),
            Prompt::Ids(ids) => ids,
        };
        // The tail first, so that the text is allocated once at its exact
        // size (an estimate from the id count was short for six-digit ids,
        // and growing copied the whole text again).
        let tail = ids.len() - ids.head().len();
        self.digits.start(tail);
        ids.for_each_tail(|v| self.digits.push(v));
        let head = ids.head();
        let mut out;
        if head.len() >= CACHED_HEAD {
            if self.heads.len() >= MAX_HEADS {
                self.heads.clear();
            }
            let key = Arc::as_ptr(head) as *const u32 as usize;
            let text = self.heads.entry(key).or_insert_with(|| Digits::of(head).text().to_owned());
            out = String::with_capacity(text.len() + 1 + self.digits.len);
            out.push_str(text);
        } else {
            let d = Digits::of(head);
            out = String::with_capacity(d.len + 1 + self.digits.len);
            out.push_str(d.text());
        }
        if !out.is_empty() && tail > 0 {
            out.push(' ');
        }
        out.push_str(self.digits.text());
        out
    }
}

/// Ids being written as space-separated decimals into a buffer that is
/// reused: its bytes past `len` are scratch, so an id is written as a whole
/// word and the next one overwrites what lies past its end (no per-id
/// length bookkeeping, and nothing is zeroed after the first use).
#[derive(Debug, Default)]
struct Digits {
    buf: Vec<u8>,
    /// Bytes written, each id followed by a space.
    len: usize,
}

/// The most an id and its space take (ten digits and a space), plus the
/// slack an eight-byte word write needs.
const ID_ROOM: usize = 11;

impl Digits {
    /// `ids` written into a new buffer.
    fn of(ids: &[u32]) -> Self {
        let mut d = Self::default();
        d.start(ids.len());
        ids.iter().for_each(|&v| d.push(v));
        d
    }

    /// Forgets what was written and makes room for `ids` ids of up to
    /// eight digits (longer ones grow the buffer as they come).
    fn start(&mut self, ids: usize) {
        self.len = 0;
        let need = ids * 9 + ID_ROOM;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
    }

    /// Writes `v` in decimal and a space. Ids below 10^8 (every vocabulary)
    /// are formatted as eight zero-padded digits in one word, from which the
    /// leading zeros are shifted out: no loop and no branch on the digit
    /// count (a cache-aware run formats 256 fresh ids a request, and the
    /// loop over digit pairs was a tenth of its event loop).
    #[inline(always)]
    fn push(&mut self, v: u32) {
        let at = self.len;
        if self.buf.len() - at < ID_ROOM {
            // Only ids of nine or ten digits outrun `start`'s room.
            self.buf.resize(2 * self.buf.len() + ID_ROOM, 0);
        }
        if v < 100_000_000 {
            let word = eight_digits(v);
            // Leading zeros are the low bytes equal to b'0'; zero keeps one digit.
            let lead = ((word ^ 0x3030_3030_3030_3030).trailing_zeros() / 8).min(7) as usize;
            self.buf[at..at + 8].copy_from_slice(&(word >> (8 * lead)).to_le_bytes());
            self.buf[at + 8 - lead] = b' ';
            self.len = at + 9 - lead;
        } else {
            let n = write_decimal(&mut self.buf[at..at + 10], v);
            self.buf[at + n] = b' ';
            self.len = at + n + 1;
        }
    }

    /// What was written, less the last id's space.
    fn text(&self) -> &str {
        let bytes = &self.buf[..self.len.saturating_sub(1)];
        std::str::from_utf8(bytes).expect("only ASCII digits and spaces are written")
    }
}

/// `v` (below 10^8) as eight zero-padded ASCII digits, the most
/// significant in the lowest byte. The halves, pairs and digits are split
/// in lanes of one word (a multiply by a reciprocal divides every lane at
/// once), where table lookups of digit pairs took four loads and six
/// divisions an id.
#[inline(always)]
fn eight_digits(v: u32) -> u64 {
    // Four digits in each 32-bit lane: the high half first (lowest).
    let x = u64::from(v / 10_000) | (u64::from(v % 10_000) << 32);
    // x / 100 in each lane (exact below 10^4: 5243 / 2^19 is just over 1/100).
    let hundreds = ((x * 5243) >> 19) & 0x0000_007F_0000_007F;
    let x = hundreds | ((x - hundreds * 100) << 16);
    // x / 10 in each 16-bit lane (exact below 100: 103 / 2^10).
    let tens = ((x * 103) >> 10) & 0x000F_000F_000F_000F;
    let x = tens | ((x - tens * 10) << 8);
    x | 0x3030_3030_3030_3030
}

/// "00" "01" ... "99".
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes `v` in decimal at the start of `to`; returns its digit count.
fn write_decimal(to: &mut [u8], mut v: u32) -> usize {
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut at = digits;
    while v >= 100 {
        let r = (v % 100) as usize;
        v /= 100;
        at -= 2;
        to[at..at + 2].copy_from_slice(&PAIRS[2 * r..2 * r + 2]);
    }
    if v >= 10 {
        let r = v as usize;
        to[at - 2..at].copy_from_slice(&PAIRS[2 * r..2 * r + 2]);
    } else {
        to[at - 1] = b'0' + v as u8;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::workload::TokenIds;

    fn joined(p: &Prompt) -> String {
        match p {
            Prompt::Text(t) => t.clone(),
            Prompt::Ids(ids) => ids.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" "),
        }
    }

    #[test]
    fn texts_are_the_ids_joined_by_spaces_whatever_the_shape() {
        let mut rng = Rng::new(3, 1);
        let long: Arc<[u32]> = (0..100).map(|i| i * 7919 % 100_000).chain([0, u32::MAX]).collect();
        let short: Arc<[u32]> = vec![5, 0, 42].into();
        let empty: Arc<[u32]> = Vec::new().into();
        let prompts = vec![
            Prompt::Ids(TokenIds::generated(long.clone(), &mut rng, 50, 128_000)),
            Prompt::Ids(TokenIds::generated(long.clone(), &mut rng, 0, 128_000)),
            Prompt::Ids(TokenIds::generated(long, &mut rng, 7, 10)),
            Prompt::Ids(TokenIds::generated(short, &mut rng, 9, 1_000)),
            Prompt::Ids(TokenIds::generated(empty.clone(), &mut rng, 12, 32_000)),
            Prompt::Ids(TokenIds::generated(empty, &mut rng, 0, 32_000)),
            Prompt::Ids(TokenIds::from(vec![1, 20, 300])),
            Prompt::Text("the quick brown fox".to_owned()),
        ];
        let mut texts = RoutingTexts::default();
        // Twice: the second pass reads the cached heads.
        for _ in 0..2 {
            for p in &prompts {
                assert_eq!(texts.text(p), joined(p));
            }
        }
        assert_eq!(texts.heads.len(), 1, "one long head, kept once");
    }

    #[test]
    fn every_digit_count_formats_as_display_does() {
        let mut edges: Vec<u32> = vec![0, u32::MAX];
        for p in 1..10 {
            let t = 10u32.pow(p);
            edges.extend([t - 1, t, t + 1]);
        }
        let many: Vec<u32> = (0..5_000u32).map(|i| edges[i as usize % edges.len()].wrapping_add(i % 3)).collect();
        // Every digit in every position of the eight-digit word.
        let spread: Vec<u32> = (0..100_000_000).step_by(9_973).chain(99_999_000..100_000_000).collect();
        for ids in [edges, many, spread] {
            // A reused buffer: its earlier contents must not show through.
            let mut d = Digits { buf: vec![b'x'; 30], len: 0 };
            for _ in 0..2 {
                d.start(3);
                ids.iter().for_each(|&v| d.push(v));
                let want = ids.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
                assert_eq!(d.text(), want);
            }
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut rng = Rng::new(1, 1);
        // All alive at once, as a plugin's granted prompts are (an address
        // names one head only while it lives).
        let prompts: Vec<Prompt> = (0..(MAX_HEADS as u32 + 10))
            .map(|i| Prompt::Ids(TokenIds::generated((i..i + CACHED_HEAD as u32).collect(), &mut rng, 3, 100)))
            .collect();
        let mut texts = RoutingTexts::default();
        for p in prompts.iter().chain(&prompts) {
            assert_eq!(texts.text(p), joined(p));
            assert!(texts.heads.len() <= MAX_HEADS);
        }
    }
}
