//! The HTTP client: sends one request to a node, reads the (streamed)
//! response, and stamps what happened on the run clock. Every failure is
//! returned as data, never a panic.

pub mod api;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sglab_core::Nanos;
use sglab_core::config::Backend;
use sglab_core::sse::SseDecoder;

use crate::plugin::RunClock;

/// A pooled keep-alive HTTP/1.1 client with TCP_NODELAY.
pub type Http = Client<HttpConnector, Full<Bytes>>;

/// Builds the shared client; `pool` idle connections are kept per node.
pub fn http(pool: usize) -> Http {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(pool.max(1))
        .build(conn)
}

/// What happened to one sent request.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// When sending started.
    pub to_server: Nanos,
    /// First event carrying a token.
    pub first_token: Option<Nanos>,
    /// Final event (`[DONE]`) or the failure.
    pub finish: Nanos,
    /// Output tokens (the server's count where it reports one).
    pub decode_length: u32,
    /// The server's prompt token count, if reported.
    pub prompt_tokens: Option<u32>,
    /// Prefix-cache hit tokens, if reported.
    pub cached_tokens: Option<u32>,
    /// Events that carried at least one token.
    pub token_events: u32,
    /// None when ok; else the error.
    pub error: Option<String>,
    /// The client cancelled it.
    pub cancelled: bool,
    /// The node could not be reached at all (connection refused or failed).
    pub unreachable: bool,
    /// Retractions the server reported.
    pub retractions: Option<u32>,
    /// Every token event: (time, cumulative output tokens).
    pub token_times: Vec<(Nanos, u32)>,
}

/// Parses response events into an [`Attempt`] as they arrive.
#[derive(Debug)]
pub struct StreamState {
    /// The attempt so far.
    pub attempt: Attempt,
    backend: Backend,
    done: bool,
}

impl StreamState {
    /// A fresh state for a request sent at `to_server`.
    pub fn new(backend: Backend, to_server: Nanos) -> Self {
        Self {
            attempt: Attempt {
                to_server,
                first_token: None,
                finish: to_server,
                decode_length: 0,
                prompt_tokens: None,
                cached_tokens: None,
                token_events: 0,
                error: None,
                cancelled: false,
                unreachable: false,
                retractions: None,
                token_times: Vec::new(),
            },
            backend,
            done: false,
        }
    }

    /// Handles one `data:` payload read at `at`. Returns true when it
    /// carried the first token.
    pub fn payload(&mut self, p: &[u8], at: Nanos) -> bool {
        if self.done || self.attempt.error.is_some() {
            return false;
        }
        if p == b"[DONE]" {
            self.done = true;
            self.attempt.finish = at;
            return false;
        }
        let ev = match api::parse(self.backend, p) {
            Ok(ev) => ev,
            Err(e) => {
                self.fail(at, e);
                return false;
            }
        };
        if let Some(err) = ev.error {
            self.fail(at, format!("server error in stream: {err}"));
            return false;
        }
        let a = &mut self.attempt;
        a.prompt_tokens = ev.prompt_tokens.or(a.prompt_tokens);
        a.retractions = ev.retractions.or(a.retractions);
        a.cached_tokens = ev.cached_tokens.or(a.cached_tokens);
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

    fn fail(&mut self, at: Nanos, msg: String) {
        self.attempt.finish = at;
        self.attempt.error = Some(msg);
    }

    /// Closes a stream at `at`: an ok stream must have seen `[DONE]`.
    pub fn finish(mut self, at: Nanos, cut: bool) -> Attempt {
        if self.attempt.error.is_none() && (!self.done || cut) {
            self.fail(at, "stream ended before the final [DONE] event".to_owned());
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

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// How to send one request.
#[derive(Debug, Clone)]
pub struct Send {
    /// Node base URL.
    pub base: String,
    /// API.
    pub backend: Backend,
    /// Streamed response.
    pub stream: bool,
    /// Request body.
    pub body: Bytes,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Sends the request and reads the response, calling `on_first_token`
/// with (to_server, at) the moment the first token arrives.
pub async fn send(
    http: &Http,
    req: Send,
    clock: RunClock,
    mut cancel: tokio::sync::watch::Receiver<bool>,
    mut on_first_token: impl FnMut(Nanos, Nanos),
) -> Attempt {
    let to_server = clock.now_ns();
    let mut st = StreamState::new(req.backend, to_server);
    let request = Request::post(format!("{}{}", req.base, api::path(req.backend)))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(req.body))
        .expect("valid request");
    let stream = req.stream;
    let mut whole_body: Option<(Vec<u8>, Nanos)> = None;
    let work = async {
        let resp = match http.request(request).await {
            Ok(r) => r,
            Err(e) => {
                st.attempt.unreachable = e.is_connect();
                st.fail(clock.now_ns(), format!("request failed: {}", chain(&e)));
                return false;
            }
        };
        let status = resp.status();
        let mut body = resp.into_body();
        if status != StatusCode::OK {
            let mut excerpt = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    excerpt.extend_from_slice(d);
                }
                if excerpt.len() >= 300 {
                    break;
                }
            }
            excerpt.truncate(300);
            st.fail(clock.now_ns(), format!("HTTP {status}: {}", String::from_utf8_lossy(&excerpt).trim()));
            return false;
        }
        let mut sse = SseDecoder::default();
        let mut buf = Vec::new();
        loop {
            match body.frame().await {
                None if stream => return !sse.pending().is_empty(),
                None => {
                    whole_body = Some((std::mem::take(&mut buf), clock.now_ns()));
                    return false;
                }
                Some(Err(e)) => {
                    st.fail(clock.now_ns(), format!("stream broken: {}", chain(&e)));
                    return false;
                }
                Some(Ok(frame)) => {
                    let at = clock.now_ns();
                    let Some(data) = frame.data_ref() else { continue };
                    if stream {
                        sse.feed(data, |p| {
                            if st.payload(p, at) {
                                on_first_token(to_server, at);
                            }
                        });
                    } else {
                        buf.extend_from_slice(data);
                    }
                }
            }
        }
    };
    let ended = tokio::select! {
        r = tokio::time::timeout(req.timeout, work) => Some(r),
        _ = cancel.wait_for(|c| *c) => None,
    };
    let at = clock.now_ns();
    match ended {
        Some(Ok(cut)) => match whole_body {
            Some((body, at)) if st.attempt.error.is_none() => st.whole(&body, at),
            _ if !stream => st.attempt,
            _ => st.finish(at, cut),
        },
        Some(Err(_)) => {
            st.fail(at, format!("timed out after {:.1} s", req.timeout.as_secs_f64()));
            st.attempt
        }
        None => {
            st.fail(at, "cancelled: the run stopped".to_owned());
            st.attempt.cancelled = true;
            st.attempt
        }
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
        assert!(!st.payload(br#"{"text":"abc","meta_info":{"completion_tokens":3}}"#, 30));
        assert!(!st.payload(b"[DONE]", 40));
        let a = st.finish(41, false);
        assert_eq!((a.first_token, a.finish, a.decode_length, a.token_events), (Some(20), 40, 3, 2));
        assert_eq!((a.prompt_tokens, a.error), (Some(5), None));
    }

    #[test]
    fn openai_streams_count_chunks_then_trust_usage() {
        let mut st = StreamState::new(Backend::OpenaiChat, 0);
        assert!(!st.payload(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, 1));
        assert!(st.payload(br#"{"choices":[{"delta":{"content":" a"}}]}"#, 2));
        st.payload(br#"{"choices":[{"delta":{"content":" b c"}}]}"#, 3);
        st.payload(br#"{"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":4}}"#, 4);
        st.payload(b"[DONE]", 5);
        let a = st.finish(6, false);
        assert_eq!((a.first_token, a.decode_length, a.prompt_tokens, a.finish), (Some(2), 3, Some(4), 5));
    }

    #[test]
    fn non_streamed_bodies_set_ttft_to_latency() {
        let st = StreamState::new(Backend::OpenaiCompletions, 5);
        let a = st.whole(br#"{"choices":[{"text":" x y"}],"usage":{"completion_tokens":2,"prompt_tokens":1}}"#, 50);
        assert_eq!((a.first_token, a.finish, a.decode_length, a.error), (Some(50), 50, 2, None));
    }

    #[test]
    fn failures_are_data() {
        let mut st = StreamState::new(Backend::Sglang, 0);
        st.payload(br#"{"meta_info":{"completion_tokens":1}}"#, 5);
        let a = st.finish(9, false);
        assert_eq!(a.error.as_deref(), Some("stream ended before the final [DONE] event"));
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
