//! A deterministic stand-in tokenizer for text prompts, so the simulator's
//! prefix cache sees shared text as shared tokens. Pieces are runs of
//! letters/digits or single other non-space characters; each maps to a
//! stable id. It counts about one token per word, where real BPE
//! tokenizers give about 1.3 for English; token-id prompts are exact.

/// Token ids for `text`.
pub fn tokenize(text: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(text.len() / 4 + 1);
    let mut word = String::new();
    let flush = |word: &mut String, ids: &mut Vec<u32>| {
        if !word.is_empty() {
            ids.push(piece_id(word));
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut ids);
            if !c.is_whitespace() {
                ids.push(piece_id(c.encode_utf8(&mut [0; 4])));
            }
        }
    }
    flush(&mut word, &mut ids);
    ids
}

fn piece_id(piece: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in piece.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    1000 + h % 100_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_text_prefix_is_a_shared_token_prefix() {
        let a = tokenize("You are a helpful assistant. What is 2+2?");
        let b = tokenize("You are a helpful assistant. Name a color!");
        assert_eq!(a.len(), 12);
        assert_eq!(a[..6], b[..6]);
        assert_ne!(a[6], b[6]);
        assert_eq!(tokenize("  "), Vec::<u32>::new());
    }
}
