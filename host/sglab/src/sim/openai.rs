//! OpenAI-compatible routes, `/v1/completions` and `/v1/chat/completions`,
//! as SGLang 0.5.23 serves them (`entrypoints/openai/serving_completions.py`,
//! `serving_chat.py`; shared/reference/sglang.md §2.3): text deltas per
//! event, `finish_reason` on the last choice chunk, and with
//! `stream_options.include_usage` a final usage chunk before `[DONE]`.

use std::fmt::Write as _;
use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sglab_core::sim::text::tokenize;
use sglab_core::sim::{SimRequest, TokenEvent};

use super::api::{Resp, Server, TOKEN_TEXT, error, json_body, json_resp, prompt_ids, sse, unix_now};
use super::observe::Tracker;
use super::stream::Format;

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Completion,
    Chat,
}

/// The OpenAI event format (incremental text).
pub struct OpenAi {
    kind: Kind,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    continuous_usage: bool,
    sent: u32,
    started: bool,
}

impl OpenAi {
    fn object(&self) -> &'static str {
        match self.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        }
    }

    fn chunk(&self, choice: Value, usage: Value) -> String {
        let choices = if choice.is_null() { json!([]) } else { json!([choice]) };
        let v = json!({"id": self.id, "object": self.object(), "created": self.created, "model": self.model,
                       "choices": choices, "usage": usage});
        format!("data: {v}\n\n")
    }

    fn usage(t: &Tracker, ev: &TokenEvent) -> Value {
        json!({"prompt_tokens": t.prompt_tokens, "completion_tokens": ev.completion_tokens,
               "total_tokens": t.prompt_tokens + ev.completion_tokens,
               "prompt_tokens_details": {"cached_tokens": ev.cached_tokens}})
    }
}

impl Format for OpenAi {
    fn event(&mut self, ev: &TokenEvent, t: &Tracker, out: &mut String) {
        if self.kind == Kind::Chat && !self.started {
            self.started = true;
            let role = json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
            out.push_str(&self.chunk(role, Value::Null));
        }
        let delta: String = TOKEN_TEXT.repeat(ev.completion_tokens.saturating_sub(self.sent) as usize);
        self.sent = ev.completion_tokens;
        let finish = if ev.finished { json!("length") } else { Value::Null };
        let choice = match self.kind {
            Kind::Completion => json!({"index": 0, "text": delta, "logprobs": null, "finish_reason": finish}),
            Kind::Chat => json!({"index": 0, "delta": {"content": delta}, "logprobs": null, "finish_reason": finish}),
        };
        let usage = if self.continuous_usage { Self::usage(t, ev) } else { Value::Null };
        out.push_str(&self.chunk(choice, usage));
    }

    fn end(&mut self, ev: &TokenEvent, t: &Tracker, out: &mut String) {
        if self.include_usage {
            out.push_str(&self.chunk(Value::Null, Self::usage(t, ev)));
        }
        out.push_str("data: [DONE]\n\n");
    }

    fn error(&mut self, msg: &str, out: &mut String) {
        let v = json!({"error": {"message": msg, "type": "invalid_request_error", "code": 400}});
        let _ = write!(out, "data: {v}\n\ndata: [DONE]\n\n");
    }
}

fn max_tokens(v: &Value, keys: &[&str], default: u32) -> Result<u32, String> {
    for k in keys {
        if let Some(m) = v.get(*k).filter(|m| !m.is_null()) {
            return m.as_u64().and_then(|m| u32::try_from(m).ok()).ok_or(format!("{k} must be a non-negative integer"));
        }
    }
    Ok(default)
}

fn chat_prompt(v: &Value) -> Result<Vec<u32>, String> {
    let msgs = v.get("messages").and_then(Value::as_array).ok_or("the request needs `messages`")?;
    let mut text = String::new();
    for m in msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        };
        // A chat template, roughly: role markers around each message.
        let _ = write!(text, "<|{role}|> {content} <|end|> ");
    }
    text.push_str("<|assistant|>");
    Ok(tokenize(&text))
}

async fn serve(server: Arc<Server>, req: Request<Incoming>, kind: Kind) -> Resp {
    let v = match json_body(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = match kind {
        Kind::Completion => prompt_ids(&v, "prompt_token_ids", "prompt")
            .or_else(|e| match v.get("prompt") {
                Some(Value::Array(ids)) if ids.iter().all(Value::is_u64) => {
                    Ok(ids.iter().filter_map(Value::as_u64).map(|t| t as u32).collect())
                }
                _ => Err(e),
            })
            .and_then(|ids| Ok((ids, max_tokens(&v, &["max_tokens"], DEFAULT_MAX_TOKENS)?))),
        Kind::Chat => chat_prompt(&v).and_then(|ids| {
            Ok((ids, max_tokens(&v, &["max_completion_tokens", "max_tokens"], DEFAULT_MAX_TOKENS * 8)?))
        }),
    };
    let (input_ids, max_new_tokens) = match parsed {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let continuous_usage =
        v.pointer("/stream_options/continuous_usage_stats").and_then(Value::as_bool).unwrap_or(false);
    let ignore_eos = v.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false);
    let model = v.get("model").and_then(Value::as_str).unwrap_or(server.model()).to_owned();
    let rid = v.get("rid").and_then(Value::as_str).map(str::to_owned);
    let req = SimRequest { input_ids, max_new_tokens, ignore_eos };
    let make = |rid: &str| OpenAi {
        kind,
        id: rid.to_owned(),
        model,
        created: unix_now() as u64,
        include_usage,
        continuous_usage,
        sent: 0,
        started: false,
    };
    let events = match server.start(rid, req, make).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if stream {
        return sse(events);
    }
    match events.collect().await {
        Ok((ev, tracker, fmt)) => {
            let text = TOKEN_TEXT.repeat(ev.completion_tokens as usize);
            let choice = match kind {
                Kind::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": "length"}),
                Kind::Chat => {
                    json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "length"})
                }
            };
            let object = if kind == Kind::Chat { "chat.completion" } else { "text_completion" };
            json_resp(
                StatusCode::OK,
                &json!({"id": fmt.id, "object": object, "created": fmt.created, "model": fmt.model,
                        "choices": [choice], "usage": OpenAi::usage(&tracker, &ev)}),
            )
        }
        Err(msg) => error(StatusCode::INTERNAL_SERVER_ERROR, &msg),
    }
}

/// `POST /v1/completions`.
pub async fn completions(server: Arc<Server>, req: Request<Incoming>) -> Resp {
    serve(server, req, Kind::Completion).await
}

/// `POST /v1/chat/completions`.
pub async fn chat(server: Arc<Server>, req: Request<Incoming>) -> Resp {
    serve(server, req, Kind::Chat).await
}
