//! Request bodies: sglab's default body per backend, minus
//! `workload.drop_fields`, merged with `workload.extra_body`, built once per
//! run as a template; each request splices in its prompt and output length.
//! Also recognises a 400/422 answer that refuses one of those fields.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sglab_core::config::{Backend, MaxTokensField, Workload};
use sglab_core::workload::{Prompt, RequestSpec};

/// Stands for the per-request output length in the serialised template.
const SENTINEL: &str = "\u{1}sglab-max-tokens\u{1}";

/// One field of the body: its dotted path and where it came from.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    path: String,
    from_extra: bool,
}

/// A run's request body, serialised once.
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    backend: Backend,
    /// The serialised body without the prompt, split where the output
    /// length goes: `parts.join(&len.to_string())`.
    parts: Vec<String>,
    fields: Vec<Field>,
}

pub use sglab_core::session::Refusal;

/// The default body (without the prompt) for `backend`.
fn defaults(backend: Backend, model: &str, stream: bool, max_field: MaxTokensField) -> Map<String, Value> {
    let max = Value::from(SENTINEL);
    let mut v = match backend {
        Backend::Sglang => json!({
            "sampling_params": {"max_new_tokens": max, "temperature": 0.0, "ignore_eos": true},
            "stream": stream,
        }),
        Backend::OpenaiCompletions => json!({
            "model": model, "max_tokens": max, "temperature": 0.0, "ignore_eos": true, "stream": stream,
        }),
        Backend::OpenaiChat => {
            let mut v = json!({"model": model});
            if matches!(max_field, MaxTokensField::Both | MaxTokensField::MaxTokens) {
                v["max_tokens"] = max.clone();
            }
            if matches!(max_field, MaxTokensField::Both | MaxTokensField::MaxCompletionTokens) {
                v["max_completion_tokens"] = max;
            }
            v["temperature"] = json!(0.0);
            v["ignore_eos"] = json!(true);
            v["stream"] = json!(stream);
            v
        }
    };
    if stream && backend != Backend::Sglang {
        v["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("built as an object"),
    }
}

fn paths(m: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in m {
        let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        out.push(p.clone());
        if let Value::Object(inner) = v {
            paths(inner, &p, out);
        }
    }
}

fn remove(m: &mut Map<String, Value>, path: &str) -> bool {
    match path.split_once('.') {
        None => m.remove(path).is_some(),
        Some((head, rest)) => match m.get_mut(head) {
            Some(Value::Object(inner)) => remove(inner, rest),
            _ => false,
        },
    }
}

/// Merges `extra` into `base`: tables key by key, anything else replaces.
fn merge(base: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (k, v) in extra {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(e)) => merge(b, e),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl BodyTemplate {
    /// The template for `w`'s backend and settings. Errors name the
    /// `drop_fields` entry that is not in the default body.
    pub fn new(w: &Workload, model: &str) -> Result<Self, String> {
        let mut body = defaults(w.backend, model, w.stream, w.max_tokens_field);
        let mut default_paths = Vec::new();
        paths(&body, "", &mut default_paths);
        for f in &w.drop_fields {
            if !remove(&mut body, f) {
                return Err(format!(
                    "{f:?} is not a field of sglab's {} body; it sends: {}",
                    backend_name(w.backend),
                    default_paths.join(", ")
                ));
            }
        }
        merge(&mut body, &w.extra_body);
        let mut all = Vec::new();
        paths(&body, "", &mut all);
        let mut extra_paths = Vec::new();
        paths(&w.extra_body, "", &mut extra_paths);
        let fields =
            all.into_iter().map(|path| Field { from_extra: extra_paths.contains(&path), path }).collect::<Vec<_>>();
        let text = Value::Object(body).to_string();
        let quoted = Value::from(SENTINEL).to_string();
        let parts = text.split(quoted.as_str()).map(str::to_owned).collect();
        Ok(Self { backend: w.backend, parts, fields })
    }

    /// The body of one request.
    pub fn body(&self, spec: &RequestSpec) -> Bytes {
        let mut s = String::with_capacity(128 + spec.input_len as usize * 6);
        s.push('{');
        match (self.backend, &spec.prompt) {
            (Backend::Sglang, Prompt::Ids(ids)) => {
                s.push_str("\"input_ids\":");
                ids_json(&mut s, ids);
            }
            (Backend::Sglang, Prompt::Text(t)) => {
                let _ = write!(s, "\"text\":{}", Value::from(t.as_str()));
            }
            (Backend::OpenaiCompletions, Prompt::Ids(ids)) => {
                s.push_str("\"prompt\":");
                ids_json(&mut s, ids);
            }
            (Backend::OpenaiCompletions, Prompt::Text(t)) => {
                let _ = write!(s, "\"prompt\":{}", Value::from(t.as_str()));
            }
            (Backend::OpenaiChat, Prompt::Text(t)) => {
                let _ = write!(s, "\"messages\":[{{\"role\":\"user\",\"content\":{}}}]", Value::from(t.as_str()));
            }
            (Backend::OpenaiChat, Prompt::Ids(_)) => unreachable!("prompts for chat backends are text"),
        }
        let len = spec.output_len.to_string();
        let rest = self.parts.join(&len);
        // `rest` is the template object: `{}` or `{"k":...}`.
        if rest.len() > 2 {
            s.push(',');
        }
        s.push_str(&rest[1..]);
        Bytes::from(s)
    }

    /// Recognises an HTTP 400/422 answer that refuses one of the body's
    /// fields as unknown or unsupported, and names the key to change.
    pub fn refusal(&self, status: u16, answer: &str) -> Option<Refusal> {
        if status != 400 && status != 422 {
            return None;
        }
        let lower = answer.to_ascii_lowercase();
        const MARKERS: [&str; 11] = [
            "unexpected field",
            "unknown field",
            "unrecognized",
            "extra_forbidden",
            "extra inputs",
            "not permitted",
            "unsupported parameter",
            "not supported",
            "additional properties",
            "unexpected keyword",
            "unknown parameter",
        ];
        let from = MARKERS.iter().filter_map(|m| lower.find(m)).min()?;
        // The field named first after the marker, as a whole word (by its
        // full path or its last part; the longer name wins a tie): "unknown
        // field `stream_options`, expected one of `stream`, ..." names it first.
        let first_at = |name: &str, from: usize| {
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            lower.match_indices(name).map(|(i, _)| i).find(|&i| {
                i >= from && !word(lower[..i].chars().next_back()) && !word(lower[i + name.len()..].chars().next())
            })
        };
        let pick = |from: usize| {
            self.fields
                .iter()
                .filter_map(|f| {
                    let leaf = f.path.rsplit('.').next().unwrap_or(&f.path);
                    let at = [first_at(&f.path, from), first_at(leaf, from)].into_iter().flatten().min()?;
                    Some((at, std::cmp::Reverse(f.path.len()), f))
                })
                .min_by_key(|(at, len, _)| (*at, *len))
                .map(|(_, _, f)| f)
        };
        let f = pick(from).or_else(|| pick(0))?;
        let leaf = f.path.rsplit('.').next().unwrap_or(&f.path);
        let hint = if f.from_extra {
            format!("remove {} from workload.extra_body", f.path)
        } else if self.backend == Backend::OpenaiChat && matches!(leaf, "max_tokens" | "max_completion_tokens") {
            let other = if leaf == "max_tokens" { "max_completion_tokens" } else { "max_tokens" };
            format!("set workload.max_tokens_field = \"{other}\"")
        } else {
            format!("set workload.drop_fields = [\"{}\"]", f.path)
        };
        Some(Refusal { field: f.path.clone(), hint })
    }
}

fn ids_json(s: &mut String, ids: &sglab_core::workload::TokenIds) {
    s.push('[');
    for (i, t) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{t}");
    }
    s.push(']');
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sglang => "sglang",
        Backend::OpenaiCompletions => "openai-completions",
        Backend::OpenaiChat => "openai-chat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec { id: 0, prompt, input_len: 2, output_len: 3, timestamp: None, session: None, priority: 0 }
    }

    fn body(w: &Workload, p: Prompt) -> Value {
        serde_json::from_slice(&BodyTemplate::new(w, "m").unwrap().body(&spec(p))).unwrap()
    }

    #[test]
    fn default_bodies_per_backend() {
        let ids = || Prompt::Ids(vec![5, 6].into());
        let mut w = Workload::default();
        let v = body(&w, ids());
        assert_eq!(
            v,
            json!({"input_ids": [5, 6], "sampling_params": {"max_new_tokens": 3, "temperature": 0.0, "ignore_eos": true}, "stream": true})
        );
        w.backend = Backend::OpenaiCompletions;
        w.stream = false;
        let v = body(&w, ids());
        assert_eq!(
            v,
            json!({"prompt": [5, 6], "model": "m", "max_tokens": 3, "temperature": 0.0, "ignore_eos": true, "stream": false})
        );
        w.backend = Backend::OpenaiChat;
        w.stream = true;
        let v = body(&w, Prompt::Text("hi \"you\"".into()));
        assert_eq!(v["messages"][0]["content"], "hi \"you\"");
        assert_eq!((v["max_tokens"].clone(), v["max_completion_tokens"].clone()), (json!(3), json!(3)));
        assert_eq!(v["stream_options"], json!({"include_usage": true, "continuous_usage_stats": true}));
        w.max_tokens_field = MaxTokensField::MaxTokens;
        let v = body(&w, Prompt::Text("x".into()));
        assert_eq!((v["max_tokens"].clone(), v.get("max_completion_tokens")), (json!(3), None));
        w.backend = Backend::Sglang;
        assert_eq!(body(&w, Prompt::Text("t".into()))["text"], "t");
    }

    #[test]
    fn drop_fields_and_extra_body() {
        let mut w = Workload { backend: Backend::OpenaiCompletions, ..Workload::default() };
        w.drop_fields = vec!["ignore_eos".into(), "stream_options.continuous_usage_stats".into()];
        let extra: Value = json!({"min_tokens": 3, "stream_options": {"x": 1}, "temperature": 0.5});
        w.extra_body = extra.as_object().unwrap().clone();
        let v = body(&w, Prompt::Text("p".into()));
        assert_eq!(v.get("ignore_eos"), None);
        assert_eq!(v["stream_options"], json!({"include_usage": true, "x": 1}));
        assert_eq!((v["min_tokens"].clone(), v["temperature"].clone()), (json!(3), json!(0.5)));
        // SGLang extras merge into sampling_params when given as a table.
        let mut w = Workload {
            extra_body: json!({"sampling_params": {"min_new_tokens": 2}}).as_object().unwrap().clone(),
            drop_fields: vec!["sampling_params.ignore_eos".into()],
            ..Workload::default()
        };
        let v = body(&w, Prompt::Ids(vec![1].into()));
        assert_eq!(v["sampling_params"], json!({"max_new_tokens": 3, "temperature": 0.0, "min_new_tokens": 2}));
        // A path that sglab does not send is an error listing what it sends.
        w.drop_fields = vec!["ignore_eos".into()];
        let e = BodyTemplate::new(&w, "m").unwrap_err();
        assert!(e.contains("\"ignore_eos\" is not a field") && e.contains("sampling_params.ignore_eos"), "{e}");
    }

    #[test]
    fn refusals_name_the_field_and_the_key() {
        let w = Workload { backend: Backend::OpenaiChat, ..Workload::default() };
        let t = BodyTemplate::new(&w, "m").unwrap();
        // transformers serve, pydantic extra="forbid", TGI, OpenAI.
        let cases = [
            (422, r#"{"detail":"Unexpected fields in the request: {'ignore_eos'}"}"#, "ignore_eos"),
            (422, r#"{"detail":[{"type":"extra_forbidden","loc":["body","ignore_eos"]}]}"#, "ignore_eos"),
            (
                422,
                "Failed to deserialize the JSON body: unknown field `stream_options`, expected one of `max_completion_tokens`, `stream`",
                "stream_options",
            ),
            (
                400,
                "Unrecognized request argument supplied: continuous_usage_stats",
                "stream_options.continuous_usage_stats",
            ),
        ];
        for (status, answer, field) in cases {
            let r = t.refusal(status, answer).unwrap_or_else(|| panic!("{answer}"));
            assert_eq!(r.field, field, "{answer}");
            assert_eq!(r.hint, format!("set workload.drop_fields = [\"{field}\"]"));
        }
        let r = t
            .refusal(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'.",
            )
            .unwrap();
        assert_eq!(r.hint, "set workload.max_tokens_field = \"max_completion_tokens\"");
        assert_eq!(t.refusal(500, "unknown field `ignore_eos`"), None);
        assert_eq!(t.refusal(400, "prompt is too long"), None);
        assert_eq!(t.refusal(422, "unknown field `top_k`"), None, "a field sglab did not send");
        let mut w = w;
        w.extra_body = json!({"top_k": 5}).as_object().unwrap().clone();
        let t = BodyTemplate::new(&w, "m").unwrap();
        assert_eq!(t.refusal(422, "unknown field `top_k`").unwrap().hint, "remove top_k from workload.extra_body");
    }
}
