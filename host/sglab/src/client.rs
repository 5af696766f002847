//! The HTTP client: sends one request to a node, reads the (streamed)
//! response, and stamps what happened on the run clock. Every failure is
//! returned as data, never a panic.

pub mod api;
pub mod body;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sglab_core::Nanos;
use sglab_core::config::{self, Backend};
use sglab_core::sse::SseDecoder;

use crate::plugin::RunClock;

/// A pooled keep-alive HTTP/1.1 client (http:// and https://) with TCP_NODELAY.
pub type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// TLS settings: rustls with the system's CA certificates (`SSL_CERT_FILE`
/// and `SSL_CERT_DIR` are honoured), loaded once.
fn tls() -> rustls::ClientConfig {
    static CFG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A certificate the store cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::debug!("no CA certificates found: https:// nodes will fail certificate checks");
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    })
    .clone()
}

/// Builds the shared client; `pool` idle connections are kept per node.
pub fn http(pool: usize) -> Http {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(10)));
    conn.enforce_http(false);
    let https = HttpsConnectorBuilder::new().with_tls_config(tls()).https_or_http().enable_http1().wrap_connector(conn);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(pool.max(1))
        .build(https)
}

/// A node's base URL and the headers every request to it carries (its API
/// key among them, marked sensitive so that it is never printed).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:30000`.
    pub base: String,
    /// Sent on every request.
    pub headers: Arc<HeaderMap>,
}

impl Endpoint {
    /// An endpoint without extra headers.
    pub fn plain(base: impl Into<String>) -> Self {
        Self { base: base.into(), headers: Arc::default() }
    }

    /// A request to `path` with this endpoint's headers.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(h) = b.headers_mut() {
            h.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        b
    }
}

/// The headers of a node: `client.headers`, then the node's own, then
/// `Authorization: Bearer <key>` from the environment variable that the
/// node (or `[client]`) names. Errors are (key, message).
pub fn node_headers(
    api_key_env: Option<&str>,
    headers: &BTreeMap<String, String>,
    client: &config::Client,
    at: &str,
) -> Result<HeaderMap, (String, String)> {
    let mut out = HeaderMap::new();
    for (k, v) in client.headers.iter().map(|kv| ("client", kv)).chain(headers.iter().map(|kv| (at, kv))) {
        let (name, value) = kv_header(v.0, v.1).map_err(|m| (format!("{k}.headers.{}", v.0), m))?;
        out.insert(name, value);
    }
    let (env, key_at) = match (api_key_env, &client.api_key_env) {
        (Some(e), _) => (Some(e), format!("{at}.api_key_env")),
        (None, Some(e)) => (Some(e.as_str()), "client.api_key_env".to_owned()),
        (None, None) => (None, String::new()),
    };
    if let Some(env) = env {
        let key =
            std::env::var(env).map_err(|_| (key_at.clone(), format!("the environment variable {env} is not set")))?;
        if key.trim().is_empty() {
            return Err((key_at, format!("the environment variable {env} is empty")));
        }
        let mut v = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
            .map_err(|_| (key_at, format!("the value of {env} is not a valid header value")))?;
        v.set_sensitive(true);
        out.insert(AUTHORIZATION, v);
    }
    Ok(out)
}

fn kv_header(k: &str, v: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("{k:?} is not a valid header name"))?;
    let value = HeaderValue::from_str(v).map_err(|_| format!("{v:?} is not a valid header value"))?;
    Ok((name, value))
}

/// The most a GET/POST helper reads of an answer (metrics, model lists).
const SMALL_BODY_LIMIT: usize = 16 << 20;

/// Sends one small request (readiness, model list, metrics, cache flush)
/// and reads the whole answer. Any status is Ok; transport failures,
/// timeouts and oversized answers are errors.
pub async fn call(
    http: &Http,
    ep: &Endpoint,
    method: Method,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let req = ep.request(method, path).body(Full::new(Bytes::new()))?;
    let work = async {
        let resp = http.request(req).await.map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), SMALL_BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {:.0} s", timeout.as_secs_f64()))?
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
    /// Why the server says it stopped.
    pub finish_reason: Option<String>,
    /// The server refused a field of the request body (stops the run).
    pub refused: Option<body::Refusal>,
}

/// Parses response events into an [`Attempt`] as they arrive.
#[derive(Debug)]
pub struct StreamState {
    /// The attempt so far.
    pub attempt: Attempt,
    backend: Backend,
    done: bool,
    /// When the last event arrived (a stream without `[DONE]` ends there).
    last_at: Nanos,
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
                finish_reason: None,
                refused: None,
            },
            backend,
            done: false,
            last_at: to_server,
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
        self.last_at = at;
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

    fn fail(&mut self, at: Nanos, msg: String) {
        self.attempt.finish = at;
        self.attempt.error = Some(msg);
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
            (true, _, _) => self.fail(at, "stream ended in the middle of an event".to_owned()),
            (false, true, true) => {}
            (false, true, false) => self.fail(at, "truncated: [DONE] came without a finish_reason".to_owned()),
            (false, false, true) => self.attempt.finish = self.last_at,
            (false, false, false) => self.fail(at, "stream ended before a finish_reason or [DONE]".to_owned()),
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
    /// The node.
    pub ep: Endpoint,
    /// What the body was made from (to recognise a refused field).
    pub template: Arc<body::BodyTemplate>,
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
    let request = req
        .ep
        .request(Method::POST, api::path(req.backend))
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
            // Enough of the answer to find a refused field's name; 300
            // bytes of it go into the record.
            let mut answer = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    answer.extend_from_slice(d);
                }
                if answer.len() >= 4096 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&answer);
            st.attempt.refused = req.template.refusal(status.as_u16(), &text);
            let excerpt: String = text.trim().chars().take(300).collect();
            st.fail(clock.now_ns(), format!("HTTP {status}: {excerpt}"));
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
