//! `Experiment::validate`: the checks on values that types cannot express.
//! Each failure names the dotted key and the value as written.

use super::*;

fn invalid(key: impl Into<String>, value: impl ToString, reason: &str) -> InvalidValue {
    InvalidValue { key: key.into(), value: value.to_string(), reason: reason.to_owned() }
}

impl Experiment {
    /// What a virtual-time run cannot do: anything that needs a real
    /// process or real time (see docs/virtual-time.md).
    fn check_virtual(&self) -> Result<(), InvalidValue> {
        const WHY: &str = "is not available with experiment.clock = \"virtual\"";
        if self.routing.mode == RoutingMode::SglangRouter {
            return Err(invalid(
                "routing.mode",
                "\"sglang-router\"",
                &format!("{WHY} (sglang-router is a real process; use a routing plugin)"),
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let launch = n.kind();
            if launch != Launch::Sim {
                let shown = serde_json::to_value(launch).map(|v| v.to_string()).unwrap_or_default();
                return Err(invalid(
                    format!("nodes[{i}].launch"),
                    shown,
                    &format!("{WHY}: every node must be launch = \"sim\" (its engine runs in-process)"),
                ));
            }
            if let Some(a) = n.args.iter().find(|a| *a == "--time-scale" || a.starts_with("--time-scale=")) {
                return Err(invalid(
                    format!("nodes[{i}].args"),
                    format!("{a:?}"),
                    "--time-scale is meaningless in virtual time",
                ));
            }
        }
        Ok(())
    }

    /// Checks values that types cannot express. Returns the first problem.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let e = &self.experiment;
        if e.name.is_empty() || e.name.contains(['/', '\\']) || e.name == "." || e.name == ".." {
            return Err(invalid(
                "experiment.name",
                format!("{:?}", e.name),
                "must be a non-empty name without slashes",
            ));
        }
        let w = &self.workload;
        if w.num_requests == Some(0) {
            return Err(invalid("workload.num_requests", 0, "must be at least 1"));
        }
        if let Some(n) = w.num_requests.filter(|n| *n > MAX_REQUESTS) {
            return Err(invalid("workload.num_requests", n, &format!("must be at most {MAX_REQUESTS}")));
        }
        for (k, v) in [
            ("input_len", Some(w.input_len)),
            ("output_len", Some(w.output_len)),
            ("fixed_output_len", w.fixed_output_len),
            ("system_prompt_len", Some(w.system_prompt_len)),
            ("question_len", Some(w.question_len)),
            ("trace_block_tokens", Some(w.trace_block_tokens)),
        ] {
            if let Some(v) = v.filter(|v| *v > MAX_TOKENS) {
                return Err(invalid(
                    format!("workload.{k}"),
                    v,
                    &format!("must be at most {MAX_TOKENS} tokens (sglab's limit per request)"),
                ));
            }
        }
        if w.dataset == Dataset::SharedPrefix
            && u64::from(w.num_groups) * u64::from(w.prompts_per_group) > u64::from(MAX_REQUESTS)
        {
            return Err(invalid(
                "workload.num_groups",
                w.num_groups,
                &format!("times prompts_per_group ({}) must be at most {MAX_REQUESTS} requests", w.prompts_per_group),
            ));
        }
        let needs_file = matches!(w.dataset, Dataset::Sharegpt | Dataset::Jsonl | Dataset::Trace);
        if needs_file && w.path.is_none() {
            return Err(invalid(
                "workload.path",
                "(missing)",
                "this dataset reads a local file: set path = \"data.json\" (nothing is downloaded)",
            ));
        }
        if w.dataset == Dataset::SharedPrefix {
            for (k, v) in [
                ("num_groups", w.num_groups),
                ("prompts_per_group", w.prompts_per_group),
                ("system_prompt_len", w.system_prompt_len),
                ("question_len", w.question_len),
            ] {
                if v == 0 {
                    return Err(invalid(format!("workload.{k}"), 0, "must be at least 1"));
                }
            }
        }
        if w.trace_block_tokens == 0 {
            return Err(invalid("workload.trace_block_tokens", 0, "must be at least 1"));
        }
        if w.fixed_output_len == Some(0) {
            return Err(invalid("workload.fixed_output_len", 0, "must be at least 1"));
        }
        if w.input_len == 0 {
            return Err(invalid("workload.input_len", 0, "must be at least 1"));
        }
        if w.output_len == 0 {
            return Err(invalid("workload.output_len", 0, "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&w.range_ratio) {
            return Err(invalid("workload.range_ratio", w.range_ratio, "must be between 0 and 1"));
        }
        if w.vocab_size == 0 {
            return Err(invalid("workload.vocab_size", 0, "must be at least 1"));
        }
        let a = &self.arrival;
        if matches!(a.process, Process::Poisson | Process::Gamma | Process::Constant)
            && !(a.rate.is_finite() && a.rate > 0.0)
        {
            return Err(invalid("arrival.rate", a.rate, "must be a positive number of requests per second"));
        }
        if a.process == Process::Gamma && !(a.burstiness.is_finite() && a.burstiness > 0.0) {
            return Err(invalid("arrival.burstiness", a.burstiness, "must be a positive gamma shape"));
        }
        if !(a.ramp_up_s.is_finite() && a.ramp_up_s >= 0.0) {
            return Err(invalid("arrival.ramp_up_s", a.ramp_up_s, "must be zero or more seconds"));
        }
        if a.ramp_up_s > 0.0 && a.process != Process::ClosedLoop {
            return Err(invalid("arrival.ramp_up_s", a.ramp_up_s, "applies only to process = \"closed-loop\""));
        }
        if !(a.think_time_s.is_finite() && a.think_time_s >= 0.0) {
            return Err(invalid("arrival.think_time_s", a.think_time_s, "must be zero or more seconds"));
        }
        if !(a.time_scale.is_finite() && a.time_scale > 0.0) {
            return Err(invalid("arrival.time_scale", a.time_scale, "must be positive"));
        }
        if a.process == Process::Trace && !matches!(w.dataset, Dataset::Jsonl | Dataset::Trace) {
            return Err(invalid(
                "arrival.process",
                "\"trace\"",
                "replays dataset timestamps: use dataset = \"trace\" or \"jsonl\" with timestamps",
            ));
        }
        if a.process == Process::ClosedLoop && a.concurrency == 0 {
            return Err(invalid("arrival.concurrency", 0, "must be at least 1"));
        }
        if self.nodes.is_empty() {
            return Err(invalid("nodes", "[]", "at least one [[nodes]] entry (or --url) is needed"));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            match (n.kind(), &n.url) {
                (Launch::Url, None) => {
                    return Err(invalid(
                        format!("nodes[{i}].url"),
                        "(missing)",
                        "launch = \"url\" needs url = \"http://host:port\"",
                    ));
                }
                (Launch::Url, Some(u)) => {
                    if let Err(why) = check_url(u) {
                        return Err(invalid(format!("nodes[{i}].url"), format!("{u:?}"), why));
                    }
                }
                (Launch::Sim, Some(u)) => {
                    return Err(invalid(
                        format!("nodes[{i}].url"),
                        format!("{u:?}"),
                        "a launched node gets its URL from sglab; remove url or set launch = \"url\"",
                    ));
                }
                _ => {}
            }
            if n.replicas == 0 {
                return Err(invalid(format!("nodes[{i}].replicas"), 0, "must be at least 1"));
            }
            if n.kind() == Launch::Sglang && n.model_path.is_none() {
                return Err(invalid(
                    format!("nodes[{i}].model_path"),
                    "(missing)",
                    "an sglang node needs model_path = \"...\"",
                ));
            }
            if n.kind() == Launch::Command && n.command.is_empty() {
                return Err(invalid(
                    format!("nodes[{i}].command"),
                    "[]",
                    "a command node needs command = [\"argv\", \"{port}\", ...]",
                ));
            }
            if !n.gpus.is_empty() && n.gpus.len() < n.replicas as usize {
                return Err(invalid(
                    format!("nodes[{i}].gpus"),
                    format!("{:?}", n.gpus),
                    "needs one entry per replica",
                ));
            }
            if n.kind() == Launch::Url && n.replicas != 1 {
                return Err(invalid(
                    format!("nodes[{i}].replicas"),
                    n.replicas,
                    "an external url is one node; list each url as its own [[nodes]] entry",
                ));
            }
            if let Some(p) = n.ready_path.as_ref().filter(|p| !p.starts_with('/')) {
                return Err(invalid(format!("nodes[{i}].ready_path"), format!("{p:?}"), "must start with /"));
            }
            check_http_settings(&format!("nodes[{i}]"), n.api_key_env.as_deref(), &n.headers)?;
            if let Some(t) = n.startup_timeout_s.filter(|t| !(t.is_finite() && *t > 0.0)) {
                return Err(invalid(
                    format!("nodes[{i}].startup_timeout_s"),
                    t,
                    "must be a positive number of seconds",
                ));
            }
        }
        if self.batching.plugin.is_empty() {
            return Err(invalid("batching.plugin", "\"\"", "names a built-in plugin or a .wasm file"));
        }
        const POLICIES: [&str; 4] = ["random", "round_robin", "cache_aware", "power_of_two"];
        if self.routing.mode == RoutingMode::SglangRouter && !POLICIES.contains(&self.routing.policy.as_str()) {
            return Err(invalid(
                "routing.policy",
                format!("{:?}", self.routing.policy),
                "must be random, round_robin, cache_aware or power_of_two",
            ));
        }
        if self.routing.plugin.is_empty() {
            return Err(invalid("routing.plugin", "\"\"", "names a built-in plugin or a .wasm file"));
        }
        let s = &self.sandbox;
        for (key, mib) in [
            ("sandbox.memory_mib", Some(s.memory_mib)),
            ("batching.memory_mib", self.batching.memory_mib),
            ("routing.memory_mib", self.routing.memory_mib),
        ] {
            if let Some(m) = mib.filter(|&m| m == 0 || m > 4096) {
                return Err(invalid(key, m, "must be between 1 and 4096"));
            }
        }
        if s.deadline_ms == 0 {
            return Err(invalid("sandbox.deadline_ms", 0, "must be at least 1"));
        }
        if s.wall_backstop_ms < s.deadline_ms {
            return Err(invalid(
                "sandbox.wall_backstop_ms",
                s.wall_backstop_ms,
                &format!("must be at least sandbox.deadline_ms ({})", s.deadline_ms),
            ));
        }
        let c = &self.client;
        check_http_settings("client", c.api_key_env.as_deref(), &c.headers)?;
        if !(c.max_output_factor.is_finite() && c.max_output_factor >= 1.0) {
            return Err(invalid("client.max_output_factor", c.max_output_factor, "must be at least 1"));
        }
        if !(1024..=1 << 30).contains(&c.max_event_bytes) {
            return Err(invalid("client.max_event_bytes", c.max_event_bytes, "must be between 1024 and 1073741824"));
        }
        check_body_settings(w)?;
        if !(c.timeout_s.is_finite() && c.timeout_s > 0.0) {
            return Err(invalid("client.timeout_s", c.timeout_s, "must be a positive number of seconds"));
        }
        if !(c.virtual_rtt_ms.is_finite() && c.virtual_rtt_ms >= 0.0) {
            return Err(invalid("client.virtual_rtt_ms", c.virtual_rtt_ms, "must be zero or more milliseconds"));
        }
        if e.clock == Clock::Virtual {
            self.check_virtual()?;
        }
        if !(c.max_duration_s.is_finite() && c.max_duration_s >= 0.0) {
            return Err(invalid("client.max_duration_s", c.max_duration_s, "must be zero (no limit) or more seconds"));
        }
        for (k, v) in
            [("slo.ttft_ms", self.slo.ttft_ms), ("slo.tpot_ms", self.slo.tpot_ms), ("slo.e2e_ms", self.slo.e2e_ms)]
        {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(invalid(k, v, "must be a positive number of milliseconds"));
            }
        }
        let si = self.results.server_metrics_interval_s;
        if !(si.is_finite() && si >= 0.0) {
            return Err(invalid("results.server_metrics_interval_s", si, "must be zero (off) or more seconds"));
        }
        let ti = self.results.timeline_interval_s;
        if !(ti.is_finite() && ti > 0.0) {
            return Err(invalid("results.timeline_interval_s", ti, "must be a positive number of seconds"));
        }
        if !(c.max_server_step_lag_ms.is_finite() && c.max_server_step_lag_ms > 0.0) {
            return Err(invalid("client.max_server_step_lag_ms", c.max_server_step_lag_ms, "must be positive"));
        }
        if !(c.max_schedule_lag_ms.is_finite() && c.max_schedule_lag_ms > 0.0) {
            return Err(invalid("client.max_schedule_lag_ms", c.max_schedule_lag_ms, "must be positive"));
        }
        Ok(())
    }

    /// Total number of nodes after expanding replicas.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().map(|n| n.replicas as usize).sum()
    }
}

/// A node URL: `http://` or `https://`, a host, an optional port in
/// 1..=65535, an optional path; nothing else.
pub fn check_url(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not hold user info (set an API key with api_key_env)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("has an IPv6 address without its closing ]")?;
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err("has an invalid IPv6 address");
        }
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("has text after the IPv6 address")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    let v6 = authority.starts_with('[');
    if !v6 && !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
        return Err("has an invalid host name");
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(1..=65535) if p.chars().all(|c| c.is_ascii_digit()) => {}
            _ => return Err("has a port that is not a number in 1..=65535"),
        }
    }
    Ok(())
}

/// `api_key_env` names an environment variable; header names are HTTP
/// tokens and values hold no line breaks.
fn check_http_settings(
    at: &str,
    api_key_env: Option<&str>,
    headers: &BTreeMap<String, String>,
) -> Result<(), InvalidValue> {
    if let Some(v) = api_key_env
        && (v.is_empty()
            || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || v.starts_with(|c: char| c.is_ascii_digit()))
    {
        return Err(invalid(
            format!("{at}.api_key_env"),
            format!("{v:?}"),
            "names an environment variable (letters, digits, _), not the key itself",
        ));
    }
    for (k, v) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if k.is_empty() || !k.chars().all(token) {
            return Err(invalid(format!("{at}.headers"), format!("{k:?}"), "is not a valid HTTP header name"));
        }
        if v.contains(['\r', '\n', '\0']) {
            return Err(invalid(format!("{at}.headers.{k}"), format!("{v:?}"), "holds a line break"));
        }
    }
    Ok(())
}

/// `extra_body` may not replace what sglab itself must control (the prompt,
/// the model, streaming); `drop_fields` entries are dotted paths.
fn check_body_settings(w: &Workload) -> Result<(), InvalidValue> {
    const OWN: [(&str, &str); 6] = [
        ("prompt", "the prompt comes from the dataset"),
        ("messages", "the prompt comes from the dataset"),
        ("input_ids", "the prompt comes from the dataset"),
        ("text", "the prompt comes from the dataset"),
        ("stream", "set workload.stream instead"),
        ("model", "set workload.model instead"),
    ];
    for (k, why) in OWN {
        if let Some(v) = w.extra_body.get(k) {
            return Err(invalid(format!("workload.extra_body.{k}"), v, why));
        }
    }
    for f in &w.drop_fields {
        if f.is_empty() || f.split('.').any(str::is_empty) {
            return Err(invalid(
                "workload.drop_fields",
                format!("{f:?}"),
                "must be a dotted field path, e.g. \"ignore_eos\"",
            ));
        }
    }
    Ok(())
}
