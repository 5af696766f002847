//! One response, event by event: what a stream or a whole body says about
//! a request (first token, token events, finish reason, usage), and when a
//! stream counts as complete. Every failure is data, typed by kind.

use sglab_core::Nanos;
use sglab_core::config::Backend;
use sglab_core::record::ErrorKind;

use super::api;

pub use sglab_core::session::Attempt;

/// Parses response events into an [`Attempt`] as they arrive.
#[derive(Debug)]
pub struct StreamState {
    /// The attempt so far.
    pub attempt: Attempt,
    backend: Backend,
    done: bool,
    /// When the last event arrived (a stream without `[DONE]` ends there).
    last_at: Nanos,
    /// More output tokens than this cut the stream (`too_many_tokens`).
    max_tokens: u32,
}

impl StreamState {
    /// A fresh state for a request sent at `to_server`.
    pub fn new(backend: Backend, to_server: Nanos) -> Self {
        Self { attempt: Attempt::new(to_server), backend, done: false, last_at: to_server, max_tokens: u32::MAX }
    }

    /// Cuts the stream once the server has sent more than `max` output
    /// tokens (an endless or runaway stream becomes a `too_many_tokens` error).
    pub fn with_max_tokens(mut self, max: u32) -> Self {
        self.max_tokens = max;
        self
    }

    /// Whether it already failed (the reader stops reading).
    pub fn failed(&self) -> bool {
        self.attempt.error.is_some()
    }

    /// Handles one `data:` payload read at `at`. Returns true when it
    /// carried the first token.
    pub fn payload(&mut self, p: &[u8], at: Nanos) -> bool {
        let first = self.event(p, at);
        let n = self.attempt.decode_length;
        if !self.failed() && n > self.max_tokens {
            let msg =
                format!("too_many_tokens: the server sent {n} output tokens, over the cap of {}", self.max_tokens);
            self.fail(at, ErrorKind::TooManyTokens, msg);
        }
        first
    }

    fn event(&mut self, p: &[u8], at: Nanos) -> bool {
        if self.done || self.attempt.error.is_some() {
            return false;
        }
        if p == b"[DONE]" {
            self.done = true;
            self.attempt.finish = at;
            return false;
        }
        self.last_at = at;
        let ev = match api::parse(self.backend, p) {
            Ok(ev) => ev,
            Err(e) => {
                self.fail(at, ErrorKind::Malformed, e);
                return false;
            }
        };
        if let Some(err) = ev.error {
            self.fail(at, ErrorKind::ServerError, format!("server error in stream: {err}"));
            return false;
        }
        let a = &mut self.attempt;
        a.prompt_tokens = ev.prompt_tokens.or(a.prompt_tokens);
        a.retractions = ev.retractions.or(a.retractions);
        a.cached_tokens = ev.cached_tokens.or(a.cached_tokens);
        a.finish_reason = ev.finish_reason.or(a.finish_reason.take());
        if !ev.output_event {
            // A chunk with only `usage` (or only a finish_reason) carries no
            // token: its count corrects the total, not the token events.
            if let Some(n) = ev.completion_tokens {
                a.decode_length = a.decode_length.max(n);
            }
            return false;
        }
        // Count from the server's cumulative completion_tokens where it
        // reports them; otherwise one token per event with text.
        let tokens = match ev.completion_tokens {
            Some(n) => n.max(a.decode_length),
            None if ev.has_text => a.decode_length + 1,
            None => a.decode_length,
        };
        if tokens > a.decode_length {
            a.decode_length = tokens;
            a.token_events += 1;
            a.token_times.push((at, tokens));
            if a.first_token.is_none() {
                a.first_token = Some(at);
                return true;
            }
        }
        false
    }

    /// Ends the attempt at `at` as a failure of `kind`.
    pub fn fail(&mut self, at: Nanos, kind: ErrorKind, msg: String) {
        self.attempt.fail(at, kind, msg);
    }

    /// Closes a stream at `at`. It is complete when it ended cleanly after
    /// an event with a `finish_reason` (`[DONE]` is optional: transformers
    /// serve closes without it), and it ends at its last event or `[DONE]`.
    pub fn finish(mut self, at: Nanos, cut: bool) -> Attempt {
        if self.attempt.error.is_some() {
            return self.attempt;
        }
        let reason = self.attempt.finish_reason.is_some();
        match (cut, self.done, reason) {
            (true, _, _) => self.fail(at, ErrorKind::StreamCut, "stream ended in the middle of an event".to_owned()),
            (false, true, true) => {}
            (false, true, false) => {
                self.fail(at, ErrorKind::Truncated, "truncated: [DONE] came without a finish_reason".to_owned())
            }
            (false, false, true) => self.attempt.finish = self.last_at,
            (false, false, false) => {
                self.fail(at, ErrorKind::StreamCut, "stream ended before a finish_reason or [DONE]".to_owned())
            }
        }
        self.attempt
    }

    /// A whole non-streamed body read at `at`: the first token counts as
    /// arriving with the last (TTFT = latency, as SGLang's client does).
    pub fn whole(mut self, body: &[u8], at: Nanos) -> Attempt {
        self.payload(body, at);
        self.done = true;
        let a = &mut self.attempt;
        if a.error.is_none() {
            a.finish = at;
            a.first_token = Some(at);
            a.token_events = a.token_events.min(1);
            a.token_times.truncate(1);
        }
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_from_completion_token_deltas() {
        let mut st = StreamState::new(Backend::Sglang, 10);
        assert!(
            st.payload(br#"{"text":"a","meta_info":{"completion_tokens":1,"prompt_tokens":5,"cached_tokens":0}}"#, 20)
        );
        assert!(!st.payload(br#"{"text":"a","meta_info":{"completion_tokens":1}}"#, 25));
        assert!(!st.payload(
            br#"{"text":"abc","meta_info":{"completion_tokens":3,"finish_reason":{"type":"length","length":3}}}"#,
            30
        ));
        assert!(!st.payload(b"[DONE]", 40));
        let a = st.finish(41, false);
        assert_eq!((a.first_token, a.finish, a.decode_length, a.token_events), (Some(20), 40, 3, 2));
        assert_eq!((a.prompt_tokens, a.error, a.finish_reason.as_deref()), (Some(5), None, Some("length")));
    }

    #[test]
    fn openai_streams_count_chunks_then_trust_usage() {
        let mut st = StreamState::new(Backend::OpenaiChat, 0);
        assert!(!st.payload(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, 1));
        assert!(st.payload(br#"{"choices":[{"delta":{"content":" a"}}]}"#, 2));
        st.payload(br#"{"choices":[{"delta":{"content":" b c"},"finish_reason":"length"}]}"#, 3);
        st.payload(br#"{"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":4}}"#, 4);
        st.payload(b"[DONE]", 5);
        let a = st.finish(6, false);
        assert_eq!((a.first_token, a.decode_length, a.prompt_tokens, a.finish), (Some(2), 3, Some(4), 5));
        // The usage-only chunk is no token event: two events, the last at 3.
        assert_eq!(a.token_times, vec![(2, 1), (3, 2)]);
        assert_eq!(a.token_events, 2);
    }

    #[test]
    fn a_stream_may_end_without_done_after_a_finish_reason() {
        // transformers serve: the last chunk carries finish_reason and usage, then the stream closes.
        let mut st = StreamState::new(Backend::OpenaiChat, 0);
        st.payload(br#"{"choices":[{"delta":{"content":"a"}}]}"#, 2);
        st.payload(br#"{"choices":[{"delta":{"content":"b"}}]}"#, 4);
        st.payload(br#"{"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"completion_tokens":2}}"#, 5);
        let a = st.finish(9, false);
        assert_eq!((a.error, a.finish, a.decode_length, a.token_events), (None, 5, 2, 2));
        assert_eq!(a.finish_reason.as_deref(), Some("length"));
        // Without a finish_reason, a closed stream is incomplete, and [DONE] alone is a truncation.
        let mut st = StreamState::new(Backend::OpenaiChat, 0);
        st.payload(br#"{"choices":[{"delta":{"content":"a"}}]}"#, 2);
        assert_eq!(st.finish(9, false).error.as_deref(), Some("stream ended before a finish_reason or [DONE]"));
        let mut st = StreamState::new(Backend::OpenaiCompletions, 0);
        st.payload(br#"{"choices":[{"text":"a"}]}"#, 2);
        st.payload(b"[DONE]", 3);
        assert_eq!(st.finish(9, false).error.as_deref(), Some("truncated: [DONE] came without a finish_reason"));
    }

    #[test]
    fn non_streamed_bodies_set_ttft_to_latency() {
        let st = StreamState::new(Backend::OpenaiCompletions, 5);
        let a = st.whole(br#"{"choices":[{"text":" x y"}],"usage":{"completion_tokens":2,"prompt_tokens":1}}"#, 50);
        assert_eq!((a.first_token, a.finish, a.decode_length, a.error), (Some(50), 50, 2, None));
    }

    #[test]
    fn output_past_the_cap_is_cut_as_too_many_tokens() {
        let mut st = StreamState::new(Backend::OpenaiCompletions, 0).with_max_tokens(4);
        for t in 1..=4 {
            st.payload(br#"{"choices":[{"text":"a"}]}"#, t);
        }
        assert!(!st.failed(), "4 tokens are within the cap");
        st.payload(br#"{"choices":[{"text":"a"}]}"#, 5);
        assert!(st.failed());
        let a = st.finish(9, false);
        assert_eq!((a.kind, a.finish, a.decode_length), (Some(ErrorKind::TooManyTokens), 5, 5));
        assert_eq!(a.error.as_deref(), Some("too_many_tokens: the server sent 5 output tokens, over the cap of 4"));
    }

    #[test]
    fn failures_are_data() {
        let mut st = StreamState::new(Backend::Sglang, 0);
        st.payload(br#"{"meta_info":{"completion_tokens":1}}"#, 5);
        let a = st.finish(9, false);
        assert_eq!(a.error.as_deref(), Some("stream ended before a finish_reason or [DONE]"));
        assert_eq!(a.finish, 9);

        let mut st = StreamState::new(Backend::Sglang, 0);
        st.payload(b"{not json", 3);
        assert!(st.finish(4, false).error.unwrap().starts_with("malformed event"));

        let mut st = StreamState::new(Backend::Sglang, 0);
        st.payload(br#"{"error":{"message":"boom"}}"#, 3);
        st.payload(b"[DONE]", 4);
        let a = st.finish(5, false);
        assert_eq!((a.error.as_deref(), a.finish), (Some("server error in stream: boom"), 3));
    }
}
