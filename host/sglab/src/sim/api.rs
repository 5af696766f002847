//! SGLang's HTTP API over the simulator engine (shapes from SGLang 0.5.23's
//! `srt/entrypoints/http_server.py`; see shared/reference/sglang.md §2).

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use serde_json::{Value, json};
use sglab_core::sim::{SimRequest, TokenEvent};
use tokio::sync::mpsc;

use super::engine_task::EngineHandle;

type Resp = Response<BoxBody<Bytes, Infallible>>;

/// `sampling_params` keys SGLang accepts; any other key is a 400 there too.
const SAMPLING_KEYS: &[&str] = &[
    "max_new_tokens",
    "stop",
    "stop_token_ids",
    "stop_regex",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "min_new_tokens",
    "n",
    "beam_width",
    "json_schema",
    "regex",
    "ebnf",
    "structural_tag",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "no_stop_trim",
    "stream_interval",
    "logit_bias",
    "sampling_seed",
    "custom_params",
];
/// SGLang's default `max_new_tokens`.
const DEFAULT_MAX_NEW_TOKENS: u32 = 128;
/// Text of one simulated output token.
const TOKEN_TEXT: &str = " tok";

/// Shared server state.
pub struct Server {
    engine: EngineHandle,
    model_path: String,
    served_model_name: String,
    next_key: AtomicU64,
    in_flight_rids: Mutex<HashSet<String>>,
}

impl Server {
    /// State for one server.
    pub fn new(engine: EngineHandle, model_path: String, served_model_name: String) -> Self {
        Self {
            engine,
            model_path,
            served_model_name,
            next_key: AtomicU64::new(1),
            in_flight_rids: Mutex::new(HashSet::new()),
        }
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    full(status, "application/json", v.to_string())
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &json!({"error": {"message": msg, "type": "invalid_request_error", "code": status.as_u16()}}))
}

/// Routes one request.
pub async fn handle(server: Arc<Server>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/health" | "/health_generate" | "/ready" | "/ping") => full(StatusCode::OK, "text/plain", ""),
        (&Method::GET, "/get_model_info" | "/model_info") => json_resp(
            StatusCode::OK,
            &json!({
                "model_path": server.model_path, "served_model_name": server.served_model_name,
                "tokenizer_path": server.model_path, "is_generation": true, "preferred_sampling_params": null,
                "weight_version": "default", "has_image_understanding": false, "has_audio_understanding": false,
                "model_type": "sglab-sim", "architectures": ["SglabSim"],
            }),
        ),
        (&Method::GET, "/v1/models") => json_resp(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": server.served_model_name, "object": "model", "created": 0,
                     "owned_by": "sglang", "root": server.model_path, "parent": null}]}),
        ),
        (&Method::GET, "/get_server_info" | "/server_info") => json_resp(
            StatusCode::OK,
            &json!({"model_path": server.model_path, "served_model_name": server.served_model_name,
                     "version": concat!("sglab-sim ", env!("CARGO_PKG_VERSION"))}),
        ),
        (&Method::POST | &Method::PUT, "/generate") => generate(server, req).await,
        _ => error(StatusCode::NOT_FOUND, &format!("no route for {path}")),
    };
    Ok(resp)
}

struct Parsed {
    rid: String,
    prompt_tokens: u32,
    max_new_tokens: u32,
    stream: bool,
}

fn parse_generate(body: &[u8], key: u64) -> Result<Parsed, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let prompt_tokens = match (v.get("input_ids"), v.get("text")) {
        (Some(Value::Array(ids)), _) => ids.len() as u32,
        // No tokenizer: count whitespace-separated words.
        (_, Some(Value::String(t))) => t.split_whitespace().count().max(1) as u32,
        _ => return Err("the request needs `text` or `input_ids`".to_owned()),
    };
    let mut max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
    if let Some(sp) = v.get("sampling_params") {
        let Some(sp) = sp.as_object() else { return Err("sampling_params must be an object".to_owned()) };
        if let Some(k) = sp.keys().find(|k| !SAMPLING_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown field `{k}` in sampling_params"));
        }
        if let Some(m) = sp.get("max_new_tokens").filter(|m| !m.is_null()) {
            max_new_tokens = m
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .ok_or("max_new_tokens must be a non-negative integer")?;
        }
    }
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let rid = match v.get("rid") {
        Some(Value::String(s)) => s.clone(),
        _ => format!("{key:032x}"),
    };
    Ok(Parsed { rid, prompt_tokens, max_new_tokens, stream })
}

async fn generate(server: Arc<Server>, req: Request<Incoming>) -> Resp {
    let received = Instant::now();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
    };
    let key = server.next_key.fetch_add(1, Ordering::Relaxed);
    let p = match parse_generate(&body, key) {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    if !server.in_flight_rids.lock().expect("rid set").insert(p.rid.clone()) {
        return error(StatusCode::BAD_REQUEST, &format!("Duplicate request ID {}", p.rid));
    }
    let events = server.engine.submit(key, SimRequest { input_len: p.prompt_tokens, max_new_tokens: p.max_new_tokens });
    let guard = RidGuard { server: server.clone(), rid: p.rid.clone() };
    let stream = Stream {
        events,
        rid: p.rid,
        prompt_tokens: p.prompt_tokens,
        received,
        sent_first: false,
        done: false,
        _guard: guard,
    };
    if p.stream {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(stream.boxed())
            .expect("valid response")
    } else {
        collect(stream).await
    }
}

async fn collect(mut s: Stream) -> Resp {
    let mut last = None;
    while let Some(ev) = s.events.recv().await {
        let finished = ev.finished;
        last = Some(ev);
        if finished {
            break;
        }
    }
    match last.filter(|e| e.finished) {
        Some(ev) => full(StatusCode::OK, "application/json", s.event_json(&ev)),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the request was aborted"),
    }
}

/// Frees the rid when the response (or the client) goes away.
struct RidGuard {
    server: Arc<Server>,
    rid: String,
}

impl Drop for RidGuard {
    fn drop(&mut self) {
        self.server.in_flight_rids.lock().expect("rid set").remove(&self.rid);
    }
}

/// A `/generate` response body: SGLang's default (cumulative) SSE events.
struct Stream {
    events: mpsc::UnboundedReceiver<TokenEvent>,
    rid: String,
    prompt_tokens: u32,
    received: Instant,
    sent_first: bool,
    done: bool,
    _guard: RidGuard,
}

impl Stream {
    /// One event's JSON: cumulative `text` and `output_ids`, and `meta_info`.
    fn event_json(&mut self, ev: &TokenEvent) -> String {
        let n = ev.completion_tokens;
        let mut s = String::with_capacity(128 + n as usize * 10);
        s.push_str("{\"text\":\"");
        for _ in 0..n {
            s.push_str(TOKEN_TEXT);
        }
        s.push_str("\",\"output_ids\":[");
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{}", 1000 + i % 30_000);
        }
        let rid = serde_json::to_string(&self.rid).expect("string serialises");
        let _ = write!(s, "],\"meta_info\":{{\"id\":{rid},\"finish_reason\":");
        if ev.finished {
            let _ = write!(s, "{{\"type\":\"length\",\"length\":{n}}}");
        } else {
            s.push_str("null");
        }
        let _ = write!(
            s,
            ",\"prompt_tokens\":{},\"weight_version\":\"default\",\"num_retractions\":0,\"reasoning_tokens\":0,\"completion_tokens\":{n},\"cached_tokens\":{}",
            self.prompt_tokens, ev.cached_tokens
        );
        if !self.sent_first {
            self.sent_first = true;
            let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            let _ = write!(s, ",\"response_sent_to_client_ts\":{ts}");
        }
        if ev.finished {
            let _ = write!(s, ",\"e2e_latency\":{}", self.received.elapsed().as_secs_f64());
        }
        s.push_str("}}");
        s
    }
}

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.events.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(ev)) => {
                let mut chunk = format!("data: {}\n\n", self.event_json(&ev));
                if ev.finished {
                    chunk.push_str("data: [DONE]\n\n");
                    self.done = true;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            // The engine went away before the request finished.
            Poll::Ready(None) => {
                self.done = true;
                let err = "data: {\"error\":{\"message\":\"request aborted\",\"type\":\"invalid_request_error\",\"code\":503,\"retryable\":true}}\n\ndata: [DONE]\n\n";
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(err.as_bytes())))))
            }
        }
    }
}
