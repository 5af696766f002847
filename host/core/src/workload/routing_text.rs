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
}

impl RoutingTexts {
    /// The routing text of `prompt`.
    pub fn text(&mut self, prompt: &Prompt) -> String {
        let ids = match prompt {
            Prompt::Text(t) => return t.clone(),
            Prompt::Ids(ids) => ids,
        };
        let mut out = String::with_capacity(ids.len() * 6);
        let head = ids.head();
        if head.len() >= CACHED_HEAD {
            if self.heads.len() >= MAX_HEADS {
                self.heads.clear();
            }
            let key = Arc::as_ptr(head) as *const u32 as usize;
            out.push_str(self.heads.entry(key).or_insert_with(|| decimals(head.iter().copied())));
        } else {
            push_decimals(&mut out, head.iter().copied());
        }
        let mut tail = ids.tail().peekable();
        if !out.is_empty() && tail.peek().is_some() {
            out.push(' ');
        }
        push_decimals(&mut out, tail);
        out
    }
}

fn decimals(ids: impl Iterator<Item = u32>) -> String {
    let mut s = String::new();
    push_decimals(&mut s, ids);
    s
}

/// Appends `ids` as space-separated decimals (no leading or trailing space).
fn push_decimals(out: &mut String, ids: impl Iterator<Item = u32>) {
    let mut buf = [0u8; 11];
    for (i, mut v) in ids.enumerate() {
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if i > 0 {
            at -= 1;
            buf[at] = b' ';
        }
        // Only ASCII digits and a space were written.
        out.push_str(std::str::from_utf8(&buf[at..]).expect("ASCII"));
    }
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
