//! The HTTP client: sends one request to a node, reads the (streamed)
//! response, and stamps what happened on the run clock. Every failure is
//! returned as data, never a panic.

pub mod api;
pub mod body;
mod stream;

pub use stream::{Attempt, StreamState};

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
use sglab_core::record::ErrorKind;
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
    /// Output tokens past this cut the stream (`too_many_tokens`).
    pub max_tokens: u32,
    /// The largest single event (or whole body) read, bytes (`event_too_large`).
    pub max_event_bytes: usize,
}

/// How every request of a run is sent (the run's requests and its warm-up
/// alike): the body template, the API, and the per-request limits.
#[derive(Debug, Clone)]
pub struct Sending {
    /// What bodies are made from.
    pub template: Arc<body::BodyTemplate>,
    /// API.
    pub backend: Backend,
    /// Streamed responses.
    pub stream: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Output past this many times the length asked for cuts a stream.
    pub max_output_factor: f64,
    /// The largest single event (or whole body) read, bytes.
    pub max_event_bytes: usize,
}

impl Sending {
    /// The request for `spec` to `ep` (its body is built here: call it on
    /// the request's task, not the dispatcher thread).
    pub fn request(&self, ep: Endpoint, spec: &sglab_core::workload::RequestSpec) -> Send {
        let cap = (f64::from(spec.output_len) * self.max_output_factor).ceil().min(f64::from(u32::MAX)) as u32;
        Send {
            ep,
            template: self.template.clone(),
            backend: self.backend,
            stream: self.stream,
            body: self.template.body(spec),
            timeout: self.timeout,
            max_tokens: cap,
            max_event_bytes: self.max_event_bytes,
        }
    }
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
    let mut st = StreamState::new(req.backend, to_server).with_max_tokens(req.max_tokens);
    let max_event = req.max_event_bytes;
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
                let kind = if e.is_connect() { ErrorKind::Connect } else { ErrorKind::StreamBroken };
                st.fail(clock.now_ns(), kind, format!("request failed: {}", chain(&e)));
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
            let kind = if st.attempt.refused.is_some() { ErrorKind::RefusedField } else { ErrorKind::Http };
            st.fail(clock.now_ns(), kind, format!("HTTP {status}: {excerpt}"));
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
                    st.fail(clock.now_ns(), ErrorKind::StreamBroken, format!("stream broken: {}", chain(&e)));
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
                    // An event that never ends (or a body without end) is
                    // cut at the cap rather than buffered whole.
                    let held = if stream { sse.pending().len() } else { buf.len() };
                    if held > max_event && !st.failed() {
                        let what = if stream { "one event" } else { "the response" };
                        let msg = format!("event_too_large: {what} passed {max_event} bytes (client.max_event_bytes)");
                        st.fail(at, ErrorKind::EventTooLarge, msg);
                    }
                    if st.failed() {
                        // Dropping the body closes the connection: the rest
                        // of a runaway stream is never read.
                        return false;
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
            st.fail(at, ErrorKind::Timeout, format!("timed out after {:.1} s", req.timeout.as_secs_f64()));
            st.attempt
        }
        None => {
            st.fail(at, ErrorKind::Cancelled, "cancelled: the run stopped".to_owned());
            st.attempt.cancelled = true;
            st.attempt
        }
    }
}
