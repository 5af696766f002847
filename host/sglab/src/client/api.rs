//! What each backend's responses look like: the route it posts to and the
//! per-event parsing of `/generate` (SGLang) and the OpenAI routes.

use serde::Deserialize;
use serde_json::Value;
use sglab_core::config::Backend;

/// The route a backend posts to.
pub fn path(backend: Backend) -> &'static str {
    match backend {
        Backend::Sglang => "/generate",
        Backend::OpenaiCompletions => "/v1/completions",
        Backend::OpenaiChat => "/v1/chat/completions",
    }
}

/// What one event (or a whole non-streamed body) says.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Cumulative output tokens, when the server reports them.
    pub completion_tokens: Option<u32>,
    /// Whether this event carried output text (used when no count is reported).
    pub has_text: bool,
    /// Whether this event can carry output tokens: SGLang events always
    /// (their count is cumulative), OpenAI chunks only with text (a chunk
    /// with only `usage` or only a `finish_reason` is no token event).
    pub output_event: bool,
    /// Why the server stopped (`length`, `stop`, ...), on the last event.
    pub finish_reason: Option<String>,
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
    /// `{"type": "length", "length": 64}` (or a plain string), null until the end.
    #[serde(default)]
    finish_reason: Option<Value>,
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
    #[serde(default)]
    finish_reason: Option<String>,
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

/// SGLang's `finish_reason` object (or a string) as its type word.
fn reason_word(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("type").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
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
                output_event: true,
                finish_reason: meta.as_ref().and_then(|m| m.finish_reason.as_ref()).and_then(reason_word),
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
                output_event: has_text,
                finish_reason: ev.choices.iter().find_map(|c| c.finish_reason.clone()),
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
        let p = parse(
            Backend::Sglang,
            br#"{"text":"ab","meta_info":{"completion_tokens":2,"finish_reason":{"type":"length","length":2}}}"#,
        )
        .unwrap();
        assert_eq!(p.finish_reason.as_deref(), Some("length"));
        let p = parse(Backend::OpenaiChat, br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!((p.finish_reason.as_deref(), p.output_event), (Some("stop"), false));
        let p = parse(Backend::Sglang, br#"{"error":{"message":"boom"}}"#).unwrap();
        assert_eq!(p.error.as_deref(), Some("boom"));
        assert!(parse(Backend::Sglang, b"{oops").unwrap_err().starts_with("malformed event"));
    }
}
