//! What each backend's requests and responses look like: request bodies
//! and the per-event parsing of `/generate` (SGLang) and the OpenAI routes.

use std::fmt::Write as _;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sglab_core::config::Backend;
use sglab_core::workload::{Prompt, RequestSpec};

/// The route a backend posts to.
pub fn path(backend: Backend) -> &'static str {
    match backend {
        Backend::Sglang => "/generate",
        Backend::OpenaiCompletions => "/v1/completions",
        Backend::OpenaiChat => "/v1/chat/completions",
    }
}

/// The request body for `spec` (greedy, `ignore_eos`, exact `max_new_tokens`).
pub fn body(backend: Backend, spec: &RequestSpec, model: &str, stream: bool) -> Bytes {
    match backend {
        Backend::Sglang => {
            let mut s = String::with_capacity(128 + spec.input_len as usize * 6);
            match &spec.prompt {
                Prompt::Ids(ids) => {
                    s.push_str("{\"input_ids\":[");
                    for (i, t) in ids.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        let _ = write!(s, "{t}");
                    }
                    s.push(']');
                }
                Prompt::Text(t) => {
                    let _ = write!(s, "{{\"text\":{}", Value::from(t.as_str()));
                }
            }
            let _ = write!(
                s,
                ",\"sampling_params\":{{\"max_new_tokens\":{},\"temperature\":0.0,\"ignore_eos\":true}},\"stream\":{stream}}}",
                spec.output_len
            );
            Bytes::from(s)
        }
        Backend::OpenaiCompletions => {
            let prompt = match &spec.prompt {
                Prompt::Ids(ids) => json!(ids),
                Prompt::Text(t) => json!(t),
            };
            let mut v = json!({"model": model, "prompt": prompt, "max_tokens": spec.output_len,
                               "temperature": 0.0, "ignore_eos": true, "stream": stream});
            if stream {
                v["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
            }
            Bytes::from(v.to_string())
        }
        Backend::OpenaiChat => {
            let content = match &spec.prompt {
                Prompt::Text(t) => t.clone(),
                Prompt::Ids(_) => unreachable!("prompts for chat backends are text"),
            };
            let mut v = json!({"model": model, "messages": [{"role": "user", "content": content}],
                               "max_completion_tokens": spec.output_len, "temperature": 0.0, "ignore_eos": true,
                               "stream": stream});
            if stream {
                v["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
            }
            Bytes::from(v.to_string())
        }
    }
}

/// What one event (or a whole non-streamed body) says.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Cumulative output tokens, when the server reports them.
    pub completion_tokens: Option<u32>,
    /// Whether this event carried output text (used when no count is reported).
    pub has_text: bool,
    /// Prompt tokens, if reported.
    pub prompt_tokens: Option<u32>,
    /// Prefix-cache hit tokens, if reported.
    pub cached_tokens: Option<u32>,
    /// An in-band error.
    pub error: Option<String>,
    /// Retractions the server reports (SGLang `num_retractions`).
    pub retractions: Option<u32>,
}

/// Borrowed where possible: the cumulative `text` grows with every event,
/// and only its emptiness matters here.
#[derive(Deserialize)]
struct SglangEvent<'a> {
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    meta_info: Option<Meta>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    cached_tokens: Option<u32>,
    #[serde(default)]
    num_retractions: Option<u32>,
}

#[derive(Deserialize)]
struct OpenAiEvent<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    message: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens_details: Option<Value>,
}

fn error_text(err: Value) -> String {
    match &err {
        Value::String(s) => s.clone(),
        _ => err.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| err.to_string()),
    }
}

/// Parses one event payload (or a whole non-streamed body).
pub fn parse(backend: Backend, payload: &[u8]) -> Result<Parsed, String> {
    match backend {
        Backend::Sglang => {
            let ev: SglangEvent<'_> = serde_json::from_slice(payload).map_err(|e| format!("malformed event: {e}"))?;
            let meta = ev.meta_info;
            Ok(Parsed {
                completion_tokens: meta.as_ref().and_then(|m| m.completion_tokens),
                has_text: ev.text.is_some_and(|t| !t.is_empty()),
                prompt_tokens: meta.as_ref().and_then(|m| m.prompt_tokens),
                cached_tokens: meta.as_ref().and_then(|m| m.cached_tokens),
                error: ev.error.map(error_text),
                retractions: meta.as_ref().and_then(|m| m.num_retractions),
            })
        }
        Backend::OpenaiCompletions | Backend::OpenaiChat => {
            let ev: OpenAiEvent<'_> = serde_json::from_slice(payload).map_err(|e| format!("malformed event: {e}"))?;
            let has_text = ev.choices.iter().any(|c| {
                let d = c.delta.as_ref().or(c.message.as_ref());
                c.text.as_deref().is_some_and(|t| !t.is_empty())
                    || d.is_some_and(|d| {
                        d.content.as_deref().is_some_and(|t| !t.is_empty())
                            || d.reasoning_content.as_deref().is_some_and(|t| !t.is_empty())
                    })
            });
            let usage = ev.usage;
            Ok(Parsed {
                completion_tokens: usage.as_ref().and_then(|u| u.completion_tokens),
                has_text,
                prompt_tokens: usage.as_ref().and_then(|u| u.prompt_tokens),
                cached_tokens: usage
                    .as_ref()
                    .and_then(|u| u.prompt_tokens_details.as_ref())
                    .and_then(|d| d.get("cached_tokens"))
                    .and_then(Value::as_u64)
                    .map(|c| c as u32),
                error: ev.error.map(error_text),
                retractions: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_per_backend() {
        let spec = RequestSpec {
            id: 0,
            prompt: Prompt::Ids(vec![5, 6].into()),
            input_len: 2,
            output_len: 3,
            prefix_hashes: vec![],
            timestamp: None,
            session: None,
            priority: 0,
        };
        let b = body(Backend::Sglang, &spec, "m", true);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["input_ids"], json!([5, 6]));
        assert_eq!(v["sampling_params"]["max_new_tokens"], 3);
        assert_eq!(v["stream"], true);
        let v: Value = serde_json::from_slice(&body(Backend::OpenaiCompletions, &spec, "m", false)).unwrap();
        assert_eq!(
            (v["prompt"].clone(), v["max_tokens"].clone(), v["stream"].clone()),
            (json!([5, 6]), json!(3), json!(false))
        );
        let chat = RequestSpec { prompt: Prompt::Text("hi \"you\"".into()), ..spec };
        let v: Value = serde_json::from_slice(&body(Backend::OpenaiChat, &chat, "m", true)).unwrap();
        assert_eq!(v["messages"][0]["content"], "hi \"you\"");
        assert_eq!(v["stream_options"]["include_usage"], true);
        let v: Value = serde_json::from_slice(&body(Backend::Sglang, &chat, "m", true)).unwrap();
        assert_eq!(v["text"], "hi \"you\"");
    }

    #[test]
    fn events_per_backend() {
        let p = parse(
            Backend::Sglang,
            br#"{"text":"a","meta_info":{"completion_tokens":2,"prompt_tokens":5,"cached_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(
            (p.completion_tokens, p.prompt_tokens, p.cached_tokens, p.has_text),
            (Some(2), Some(5), Some(1), true)
        );
        let p = parse(Backend::OpenaiCompletions, br#"{"choices":[{"text":" x"}],"usage":null}"#).unwrap();
        assert_eq!((p.completion_tokens, p.has_text), (None, true));
        let p = parse(Backend::OpenaiChat, br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert!(!p.has_text);
        let p = parse(Backend::OpenaiChat, br#"{"choices":[],"usage":{"completion_tokens":7,"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}"#).unwrap();
        assert_eq!((p.completion_tokens, p.cached_tokens), (Some(7), Some(2)));
        let p = parse(Backend::Sglang, br#"{"error":{"message":"boom"}}"#).unwrap();
        assert_eq!(p.error.as_deref(), Some("boom"));
        assert!(parse(Backend::Sglang, b"{oops").unwrap_err().starts_with("malformed event"));
    }
}
