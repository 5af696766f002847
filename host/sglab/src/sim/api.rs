//! SGLang's native HTTP API over the simulator engine (shapes from SGLang
//! 0.5.23 `srt/entrypoints/http_server.py`; shared/reference/sglang.md §2).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sglab_core::rng::Rng;
use sglab_core::sim::text::tokenize;
use sglab_core::sim::{SimRequest, TokenEvent};

use super::Settings;
use super::engine_task::EngineHandle;
use super::observe::{self, Observer, Tracker};
use super::openai;
use super::stream::{BoxError, EventStream, Format, RidGuard};

/// A response with any body.
pub type Resp = Response<BoxBody<Bytes, BoxError>>;

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
pub const TOKEN_TEXT: &str = " tok";

/// Shared server state.
pub struct Server {
    pub(super) engine: EngineHandle,
    pub(super) settings: Settings,
    pub(super) observer: Observer,
    model: String,
    next_key: AtomicU64,
    rids: Mutex<HashSet<String>>,
    faults: Mutex<Rng>,
}

impl Server {
    /// State for one server.
    pub fn new(engine: EngineHandle, settings: Settings) -> Self {
        let model = settings.model_name.clone();
        let faults = Mutex::new(Rng::new(settings.args.seed, 0xFA17));
        Self {
            engine,
            settings,
            observer: Observer::default(),
            model,
            next_key: AtomicU64::new(1),
            rids: Mutex::new(HashSet::new()),
            faults,
        }
    }

    /// The served model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub(super) fn release_rid(&self, rid: &str) {
        self.rids.lock().expect("rid set").remove(rid);
    }

    /// Registers a request: fault checks, rid uniqueness, engine submit.
    /// Returns the stream of its events, or an error response.
    pub(super) async fn start<F: Format>(
        self: &Arc<Self>,
        rid: Option<String>,
        req: SimRequest,
        make_fmt: impl FnOnce(&str) -> F,
    ) -> Result<EventStream<F>, Resp> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let rid = rid.unwrap_or_else(|| format!("{key:032x}"));
        let fmt = make_fmt(&rid);
        let args = &self.settings.args;
        if args.fail_rate > 0.0 && self.faults.lock().expect("fault rng").next_f64() < args.fail_rate {
            return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "--fail-rate: injected failure"));
        }
        if !self.rids.lock().expect("rid set").insert(rid.clone()) {
            return Err(error(StatusCode::BAD_REQUEST, &format!("Duplicate request ID {rid}")));
        }
        let guard = RidGuard { server: self.clone(), rid };
        if args.stall_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.stall_ms / 1e3)).await;
        }
        let tracker = Tracker::new(self.engine.now(), req.input_ids.len() as u32);
        let events = self.engine.submit(key, req);
        Ok(EventStream::new(events, fmt, tracker, self.clone(), guard))
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).map_err(|never| match never {}).boxed())
        .expect("valid response")
}

/// A JSON response.
pub fn json_resp(status: StatusCode, v: &Value) -> Resp {
    full(status, "application/json", v.to_string())
}

/// SGLang's error shape.
pub fn error(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &json!({"error": {"message": msg, "type": "invalid_request_error", "code": status.as_u16()}}))
}

/// An SSE response over `stream`.
pub fn sse<F: Format>(stream: EventStream<F>) -> Resp {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(stream.boxed())
        .expect("valid response")
}

/// Seconds since the Unix epoch (a timestamp field, not an interval).
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Reads a JSON request body.
pub async fn json_body(req: Request<Incoming>) -> Result<Value, Resp> {
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")))?;
    serde_json::from_slice(&body.to_bytes())
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

/// Routes one request.
pub async fn handle(server: Arc<Server>, req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/health" | "/health_generate" | "/ready" | "/ping") => full(StatusCode::OK, "text/plain", ""),
        (&Method::GET, "/get_model_info" | "/model_info") => json_resp(StatusCode::OK, &model_info(&server)),
        (&Method::GET, "/v1/models") => json_resp(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": server.model, "object": "model", "created": 0,
                     "owned_by": "sglang", "root": server.settings.model_path, "parent": null,
                     "max_model_len": server.settings.profile.as_ref().map(|p| p.context_len)}]}),
        ),
        (&Method::GET, "/get_server_info" | "/server_info") => json_resp(StatusCode::OK, &server_info(&server)),
        (&Method::GET, "/v1/loads" | "/get_load") => {
            let p = server.engine.published.lock().expect("published").clone();
            let stamp = sglab_core::timefmt::rfc3339(
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            json_resp(StatusCode::OK, &observe::loads(&p, unix_now(), &stamp))
        }
        (&Method::GET, "/metrics") if server.settings.args.enable_metrics => {
            let p = server.engine.published.lock().expect("published").clone();
            full(StatusCode::OK, "text/plain; version=0.0.4", server.observer.prometheus(&p, &server.model))
        }
        (&Method::GET | &Method::POST, "/flush_cache") => match server.engine.flush().await {
            Ok(()) => full(
                StatusCode::OK,
                "text/plain",
                "Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n",
            ),
            Err(msg) => full(StatusCode::BAD_REQUEST, "text/plain", msg),
        },
        (&Method::POST | &Method::PUT, "/generate") => generate(server, req).await,
        (&Method::POST, "/v1/completions") => openai::completions(server, req).await,
        (&Method::POST, "/v1/chat/completions") => openai::chat(server, req).await,
        _ => error(StatusCode::NOT_FOUND, &format!("no route for {path}")),
    };
    Ok(resp)
}

fn model_info(s: &Server) -> Value {
    json!({
        "model_path": s.settings.model_path, "served_model_name": s.model,
        "tokenizer_path": s.settings.model_path, "is_generation": true, "preferred_sampling_params": null,
        "weight_version": "default", "load_format": "dummy", "reasoning_parser": null, "tool_call_parser": null,
        "disaggregation_mode": "null", "has_image_understanding": false, "has_audio_understanding": false,
        "model_type": "sglab-sim", "architectures": ["SglabSim"],
    })
}

fn server_info(s: &Server) -> Value {
    let a = &s.settings.args;
    let p = s.engine.published.lock().expect("published").clone();
    let sched = s.settings.scheduler.as_ref();
    let mut v = json!({
        "model_path": s.settings.model_path, "served_model_name": s.model, "host": a.host, "port": a.port,
        "tp_size": s.settings.profile.as_ref().map_or(1, |p| p.tp_size), "dp_size": 1, "page_size": 1,
        "chunked_prefill_size": sched.map_or(-1, |c| c.chunked_prefill_size.map_or(-1, |v| v as i64)),
        "max_prefill_tokens": sched.map(|c| c.max_prefill_tokens),
        "max_running_requests": a.max_running_requests,
        "schedule_policy": a.schedule_policy, "schedule_conservativeness": a.schedule_conservativeness,
        "disable_radix_cache": a.disable_radix_cache, "enable_metrics": a.enable_metrics,
        "mem_fraction_static": a.mem_fraction_static, "enable_mixed_chunk": false,
        "profile": a.profile, "time_scale": a.time_scale,
        "status": "ready", "version": "0.5.23", "frontend": "sglab-sim",
        "max_total_num_tokens": p.stats.max_total_num_tokens,
        "max_req_input_len": s.settings.profile.as_ref().map(|pr| pr.context_len.min(p.stats.max_total_num_tokens).saturating_sub(6)),
        "sglab_sim_step_lag": {"max_s": p.lag.max, "mean_s": if p.lag.count > 0 { p.lag.sum / p.lag.count as f64 } else { 0.0 },
                               "count": p.lag.count, "over_1ms": p.lag.over_1ms},
    });
    v["internal_states"] = json!([{
        "effective_max_running_requests_per_dp": p.stats.max_running_requests,
        "last_gen_throughput": p.stats.gen_throughput,
        "memory_usage": {"token_capacity": p.stats.max_total_num_tokens},
        "new_token_ratio": p.stats.new_token_ratio,
    }]);
    v
}

/// The prompt of a request: `input_ids`, or tokenized `text`.
pub fn prompt_ids(v: &Value, ids_key: &str, text_key: &str) -> Result<Vec<u32>, String> {
    match (v.get(ids_key), v.get(text_key)) {
        (Some(Value::Array(ids)), _) => ids
            .iter()
            .map(|t| {
                t.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or("input_ids must be a list of token ids".to_owned())
            })
            .collect(),
        (_, Some(Value::String(t))) => Ok(tokenize(t)),
        (_, Some(Value::Array(parts))) if parts.iter().all(Value::is_string) => {
            Err(format!("batched `{text_key}` lists are not supported by sglab sim; send one prompt per request"))
        }
        _ => Err(format!("the request needs `{text_key}` or `{ids_key}`")),
    }
}

fn parse_generate(v: &Value) -> Result<(Option<String>, SimRequest, bool), String> {
    let input_ids = prompt_ids(v, "input_ids", "text")?;
    let mut max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
    let mut ignore_eos = false;
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
        ignore_eos = sp.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false);
    }
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let rid = v.get("rid").and_then(Value::as_str).map(str::to_owned);
    Ok((rid, SimRequest { input_ids, max_new_tokens, ignore_eos }, stream))
}

/// `/generate`'s event format: cumulative text and ids (SGLang's default),
/// or only the new ones with `--incremental-streaming-output`.
pub struct Native {
    rid: String,
    sent_first: bool,
    incremental: bool,
    sent: u32,
}

impl Native {
    fn json(&mut self, ev: &TokenEvent, t: &Tracker) -> String {
        let n = ev.completion_tokens;
        let from = if self.incremental { self.sent.min(n) } else { 0 };
        self.sent = n;
        let mut s = String::with_capacity(160 + (n - from) as usize * 10);
        s.push_str("{\"text\":\"");
        for _ in from..n {
            s.push_str(TOKEN_TEXT);
        }
        s.push_str("\",\"output_ids\":[");
        for i in from..n {
            if i > from {
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
            ",\"prompt_tokens\":{},\"weight_version\":\"default\",\"num_retractions\":{},\"reasoning_tokens\":0,\"completion_tokens\":{n},\"cached_tokens\":{}",
            t.prompt_tokens, ev.retractions, ev.cached_tokens
        );
        if !self.sent_first {
            self.sent_first = true;
            let _ = write!(s, ",\"response_sent_to_client_ts\":{}", unix_now());
        }
        if ev.finished {
            let _ = write!(s, ",\"e2e_latency\":{}", t.e2e_s());
        }
        s.push_str("}}");
        s
    }
}

impl Format for Native {
    fn event(&mut self, ev: &TokenEvent, t: &Tracker, out: &mut String) {
        let _ = write!(out, "data: {}\n\n", self.json(ev, t));
    }
    fn end(&mut self, _: &TokenEvent, _: &Tracker, out: &mut String) {
        out.push_str("data: [DONE]\n\n");
    }
    fn error(&mut self, msg: &str, out: &mut String) {
        let m = serde_json::to_string(msg).expect("string serialises");
        let _ = write!(
            out,
            "data: {{\"error\":{{\"message\":{m},\"type\":\"invalid_request_error\",\"code\":400,\"retryable\":false}}}}\n\ndata: [DONE]\n\n"
        );
    }
}

async fn generate(server: Arc<Server>, req: Request<Incoming>) -> Resp {
    let v = match json_body(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (rid, sim_req, stream) = match parse_generate(&v) {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let incremental = stream && server.settings.args.incremental_streaming_output;
    let make = |rid: &str| Native { rid: rid.to_owned(), sent_first: false, incremental, sent: 0 };
    let events = match server.start(rid, sim_req, make).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if stream {
        return sse(events);
    }
    match events.collect().await {
        Ok((ev, tracker, mut fmt)) => full(StatusCode::OK, "application/json", fmt.json(&ev, &tracker)),
        Err(msg) => error(StatusCode::INTERNAL_SERVER_ERROR, &msg),
    }
}
