//! Server-sent-event framing for streamed responses.
//!
//! The reader stamps each network read before handing it here; this splits
//! the bytes into `data:` payloads, handling events split across reads and
//! several events in one read.

/// Incremental SSE `data:` line extractor.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    /// Feeds one read; calls `on_data` with the payload of every complete
    /// `data:` line (without the prefix and the one optional space).
    /// Comment lines, other fields and blank separators are skipped.
    pub fn feed(&mut self, chunk: &[u8], mut on_data: impl FnMut(&[u8])) {
        let mut rest = chunk;
        if !self.buf.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.buf);
                    emit(&line, &mut on_data);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(rest);
                    return;
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            emit(&rest[..i], &mut on_data);
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
    }

    /// Bytes of an unfinished line still buffered (non-empty at the end of a
    /// stream means it was cut).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

fn emit(line: &[u8], on_data: &mut impl FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(payload) = line.strip_prefix(b"data:") {
        on_data(payload.strip_prefix(b" ").unwrap_or(payload));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |p| out.push(String::from_utf8(p.to_vec()).unwrap()));
        }
        (out, d.pending().len())
    }

    #[test]
    fn table_of_splits_and_merges() {
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a str], usize);
        let cases: &[Case<'_>] = &[
            (&[b"data: {\"a\":1}\n\n"], &["{\"a\":1}"], 0),
            (&[b"data: {\"a\"", b":1}\n\ndata: [DONE]\n\n"], &["{\"a\":1}", "[DONE]"], 0),
            (&[b"data: x\n\ndata: y\n\ndata: z\n\n"], &["x", "y", "z"], 0),
            (&[b"da", b"ta", b": q", b"\r\n", b"\r\n"], &["q"], 0),
            (&[b": keep-alive\n\nevent: ping\ndata:no-space\n\n"], &["no-space"], 0),
            (&[b"data: cut-off"], &[], 13),
            (&[b"data: a\n", b"\n", b"data: b\n\n"], &["a", "b"], 0),
        ];
        for (chunks, want, pending) in cases {
            let (got, left) = run(chunks);
            assert_eq!(&got, want, "{chunks:?}");
            assert_eq!(left, *pending, "{chunks:?}");
        }
    }
}
