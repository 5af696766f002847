//! The HTTP client: streams one request to a node and stamps what happened
//! on the run clock. Every failure is returned as data, never a panic.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sglab_core::Nanos;
use sglab_core::sse::SseDecoder;
use sglab_core::workload::RequestSpec;

use crate::plugin::RunClock;

/// A pooled keep-alive HTTP/1.1 client with TCP_NODELAY.
pub type Http = Client<HttpConnector, Full<Bytes>>;

/// Builds the shared client.
pub fn http() -> Http {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(conn)
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
    /// Output tokens (the server's cumulative `completion_tokens`).
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
}

/// The SGLang `/generate` body for a request (token ids, exact length).
pub fn generate_body(spec: &RequestSpec) -> Bytes {
    let mut s = String::with_capacity(spec.input_ids.len() * 6 + 128);
    s.push_str("{\"input_ids\":[");
    for (i, t) in spec.input_ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{t}");
    }
    let _ = write!(
        s,
        "],\"sampling_params\":{{\"max_new_tokens\":{},\"temperature\":0.0,\"ignore_eos\":true}},\"stream\":true}}",
        spec.output_len
    );
    Bytes::from(s)
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    meta_info: Option<Meta>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    cached_tokens: Option<u32>,
}

/// Parses stream payloads into an [`Attempt`] as they arrive.
#[derive(Debug)]
pub struct StreamState {
    /// The attempt so far.
    pub attempt: Attempt,
    done: bool,
}

impl StreamState {
    /// A fresh state for a request sent at `to_server`.
    pub fn new(to_server: Nanos) -> Self {
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
            },
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
        let ev: Event = match serde_json::from_slice(p) {
            Ok(ev) => ev,
            Err(e) => {
                self.fail(at, format!("malformed stream event: {e}"));
                return false;
            }
        };
        if let Some(err) = ev.error {
            let msg = err.get("message").and_then(|m| m.as_str()).map(str::to_owned).unwrap_or_else(|| err.to_string());
            self.fail(at, format!("server error in stream: {msg}"));
            return false;
        }
        let Some(meta) = ev.meta_info else { return false };
        self.attempt.prompt_tokens = meta.prompt_tokens.or(self.attempt.prompt_tokens);
        self.attempt.cached_tokens = meta.cached_tokens.or(self.attempt.cached_tokens);
        let tokens = meta.completion_tokens.unwrap_or(self.attempt.decode_length);
        if tokens > self.attempt.decode_length {
            self.attempt.decode_length = tokens;
            self.attempt.token_events += 1;
            if self.attempt.first_token.is_none() {
                self.attempt.first_token = Some(at);
                return true;
            }
        }
        false
    }

    fn fail(&mut self, at: Nanos, msg: String) {
        self.attempt.finish = at;
        self.attempt.error = Some(msg);
    }

    /// Closes the stream at `at`: an ok stream must have seen `[DONE]`.
    pub fn finish(mut self, at: Nanos, cut: bool) -> Attempt {
        if self.attempt.error.is_none() && (!self.done || cut) {
            self.fail(at, "stream ended before the final [DONE] event".to_owned());
        }
        self.attempt
    }
}

/// Sends `body` to `{base}/generate` and reads the stream, calling
/// `on_first_token` the moment the first token arrives.
pub async fn generate(
    http: &Http,
    base: &str,
    body: Bytes,
    clock: RunClock,
    timeout: Duration,
    mut cancel: tokio::sync::watch::Receiver<bool>,
    mut on_first_token: impl FnMut(Nanos, Nanos),
) -> Attempt {
    let to_server = clock.now_ns();
    let mut st = StreamState::new(to_server);
    let req = Request::post(format!("{base}/generate"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("valid request");
    let work = async {
        let resp = match http.request(req).await {
            Ok(r) => r,
            Err(e) => {
                let mut msg = format!("request failed: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                st.fail(clock.now_ns(), msg);
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
        loop {
            match body.frame().await {
                None => return !sse.pending().is_empty(),
                Some(Err(e)) => {
                    st.fail(clock.now_ns(), format!("stream broken: {e}"));
                    return false;
                }
                Some(Ok(frame)) => {
                    let at = clock.now_ns();
                    if let Some(data) = frame.data_ref() {
                        sse.feed(data, |p| {
                            if st.payload(p, at) {
                                on_first_token(to_server, at);
                            }
                        });
                    }
                }
            }
        }
    };
    let ended = tokio::select! {
        r = tokio::time::timeout(timeout, work) => Some(r),
        _ = cancel.wait_for(|c| *c) => None,
    };
    let at = clock.now_ns();
    match ended {
        Some(Ok(cut)) => st.finish(at, cut),
        Some(Err(_)) => {
            st.fail(at, format!("timed out after {:.1} s", timeout.as_secs_f64()));
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
        let mut st = StreamState::new(10);
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
    fn failures_are_data() {
        let mut st = StreamState::new(0);
        st.payload(br#"{"meta_info":{"completion_tokens":1}}"#, 5);
        let a = st.finish(9, false);
        assert_eq!(a.error.as_deref(), Some("stream ended before the final [DONE] event"));
        assert_eq!(a.finish, 9);

        let mut st = StreamState::new(0);
        st.payload(b"{not json", 3);
        assert!(st.finish(4, false).error.unwrap().starts_with("malformed stream event"));

        let mut st = StreamState::new(0);
        st.payload(br#"{"error":{"message":"boom"}}"#, 3);
        st.payload(b"[DONE]", 4);
        let a = st.finish(5, false);
        assert_eq!((a.error.as_deref(), a.finish), (Some("server error in stream: boom"), 3));
    }
}
