//! `sglab bench`: a one-line benchmark with SGLang `bench_serving`'s flag
//! names. The flags become an experiment file (`--save-experiment FILE`
//! keeps it), which `sglab run` then runs: the same results directory,
//! table and report. Against `--base-url` (or `--host`/`--port`), or a
//! launched `sglab sim` node when neither is given.
//!
//! Flag names and meanings follow SGLang 0.5.23's
//! `python/sglang/bench_serving.py`; `FLAG_KEYS` is the mapping.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, FromArgMatches, ValueEnum};
use serde_json::{Map, Value};
use sglab_core::config::{Backend, Dataset, Experiment, NodeSpec, Process};

/// bench_serving's `--backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    /// SGLang's native `/generate` (token ids).
    Sglang,
    /// The same as `sglang`.
    SglangNative,
    /// SGLang's OpenAI `/v1/completions`.
    SglangOai,
    /// SGLang's OpenAI `/v1/chat/completions`.
    SglangOaiChat,
    /// vLLM's `/v1/completions`.
    Vllm,
    /// vLLM's `/v1/chat/completions`.
    VllmChat,
    /// LMDeploy's `/v1/completions`.
    Lmdeploy,
    /// Any OpenAI-compatible `/v1/completions`.
    Openai,
    /// Any OpenAI-compatible `/v1/chat/completions`.
    OpenaiChat,
}

impl BenchBackend {
    fn backend(self) -> Backend {
        match self {
            Self::Sglang | Self::SglangNative => Backend::Sglang,
            Self::SglangOai | Self::Vllm | Self::Lmdeploy | Self::Openai => Backend::OpenaiCompletions,
            Self::SglangOaiChat | Self::VllmChat | Self::OpenaiChat => Backend::OpenaiChat,
        }
    }
}

/// bench_serving's `--dataset-name` values that sglab generates or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDataset {
    /// Random token ids (sglab's default; bench_serving's is sharegpt).
    Random,
    /// The same as `random` (sglab's random prompts are token ids).
    RandomIds,
    /// A ShareGPT JSON file (`--dataset-path`; nothing is downloaded).
    Sharegpt,
    /// Groups of prompts sharing a system prompt (`--gsp-*`).
    GeneratedSharedPrefix,
}

/// Arguments of `sglab bench` (bench_serving's names and defaults, except
/// the dataset: `random`, since ShareGPT needs a download).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The server's API flavour.
    #[arg(long, value_enum, default_value = "sglang")]
    pub backend: BenchBackend,
    /// The server, e.g. http://127.0.0.1:30000 (default: a launched sim node).
    #[arg(long)]
    pub base_url: Option<String>,
    /// The server's host, with --port (when --base-url is not given).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port.
    #[arg(long)]
    pub port: Option<u16>,
    /// The dataset.
    #[arg(long, value_enum, default_value = "random")]
    pub dataset_name: BenchDataset,
    /// The dataset file (sharegpt).
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// Requests to send.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: u32,
    /// Requests per second (Poisson), or `inf`: all at once.
    #[arg(long, default_value = "inf", value_parser = parse_rate)]
    pub request_rate: f64,
    /// At most this many requests in flight (a cap, as in bench_serving: the
    /// `max-concurrency` batcher), not a closed loop.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Prompt tokens of random requests.
    #[arg(long, default_value_t = 1024)]
    pub random_input_len: u32,
    /// Output tokens of random requests.
    #[arg(long, default_value_t = 1024)]
    pub random_output_len: u32,
    /// Lengths are drawn from [len * ratio, len].
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// generated-shared-prefix: groups.
    #[arg(long, default_value_t = 64)]
    pub gsp_num_groups: u32,
    /// generated-shared-prefix: prompts per group.
    #[arg(long, default_value_t = 16)]
    pub gsp_prompts_per_group: u32,
    /// generated-shared-prefix: system prompt tokens.
    #[arg(long, default_value_t = 2048)]
    pub gsp_system_prompt_len: u32,
    /// generated-shared-prefix: question tokens.
    #[arg(long, default_value_t = 128)]
    pub gsp_question_len: u32,
    /// generated-shared-prefix: output tokens.
    #[arg(long, default_value_t = 256)]
    pub gsp_output_len: u32,
    /// sharegpt: output tokens of every request, instead of the dataset's.
    #[arg(long)]
    pub sharegpt_output_len: Option<u32>,
    /// Seed of the workload and arrivals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `model` field for OpenAI backends (default: the server's first).
    #[arg(long)]
    pub model: Option<String>,
    /// A Hugging Face `tokenizer.json` to count text prompts with.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Ask for whole responses instead of streams.
    #[arg(long)]
    pub disable_stream: bool,
    /// The environment variable holding the API key (`Authorization: Bearer`).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// An extra HTTP header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Names the results directory `<output-dir>/<name>/<stamp>/`.
    #[arg(long, default_value = "bench")]
    pub name: String,
    /// The results tree.
    #[arg(long, default_value = "results")]
    pub output_dir: String,
    /// Also write the equivalent experiment file here (`sglab run FILE`
    /// repeats the run).
    #[arg(long, value_name = "FILE")]
    pub save_experiment: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() && v > 0.0 => Ok(f64::INFINITY),
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected requests per second above 0, or inf; got {s:?}")),
    }
}

/// Each bench_serving flag and the experiment key it sets (documented in
/// README and docs/说明.md; a test checks it against [`experiment`]).
pub const FLAG_KEYS: &[(&str, &str)] = &[
    ("--backend", "workload.backend"),
    ("--base-url, --host, --port", "[[nodes]] url"),
    ("--dataset-name", "workload.dataset"),
    ("--dataset-path", "workload.path"),
    ("--num-prompts", "workload.num_requests"),
    ("--request-rate", "arrival.process = \"poisson\", arrival.rate (inf: arrival.process = \"burst\")"),
    ("--max-concurrency", "batching.plugin = \"max-concurrency\", batching.config.cap"),
    ("--random-input-len", "workload.input_len"),
    ("--random-output-len", "workload.output_len"),
    ("--random-range-ratio", "workload.range_ratio"),
    ("--gsp-num-groups", "workload.num_groups"),
    ("--gsp-prompts-per-group", "workload.prompts_per_group"),
    ("--gsp-system-prompt-len", "workload.system_prompt_len"),
    ("--gsp-question-len", "workload.question_len"),
    ("--gsp-output-len", "workload.output_len"),
    ("--sharegpt-output-len", "workload.fixed_output_len"),
    ("--seed", "experiment.seed"),
    ("--model", "workload.model"),
    ("--tokenizer", "workload.tokenizer"),
    ("--disable-stream", "workload.stream = false"),
    ("--api-key-env", "client.api_key_env"),
    ("--header", "client.headers"),
];

/// The experiment the flags describe.
pub fn experiment(a: &BenchArgs) -> anyhow::Result<Experiment> {
    let mut e: Experiment = toml::from_str(&format!("[experiment]\nname = {:?}\n", a.name))?;
    e.experiment.seed = a.seed;
    e.experiment.output_dir = a.output_dir.clone();
    let w = &mut e.workload;
    w.backend = a.backend.backend();
    w.num_requests = Some(a.num_prompts);
    w.stream = !a.disable_stream;
    w.model = a.model.clone();
    w.tokenizer = a.tokenizer.clone();
    match a.dataset_name {
        BenchDataset::Random | BenchDataset::RandomIds => {
            w.dataset = Dataset::Random;
            (w.input_len, w.output_len, w.range_ratio) =
                (a.random_input_len, a.random_output_len, a.random_range_ratio);
        }
        BenchDataset::Sharegpt => {
            w.dataset = Dataset::Sharegpt;
            let p = a
                .dataset_path
                .as_ref()
                .context("--dataset-name sharegpt needs --dataset-path FILE (nothing is downloaded)")?;
            let p = std::path::absolute(p).with_context(|| format!("--dataset-path {}", p.display()))?;
            w.path = Some(p.display().to_string());
            w.fixed_output_len = a.sharegpt_output_len;
        }
        BenchDataset::GeneratedSharedPrefix => {
            w.dataset = Dataset::SharedPrefix;
            (w.num_groups, w.prompts_per_group) = (a.gsp_num_groups, a.gsp_prompts_per_group);
            (w.system_prompt_len, w.question_len, w.output_len) =
                (a.gsp_system_prompt_len, a.gsp_question_len, a.gsp_output_len);
            // Its request count is groups x prompts, as in bench_serving.
            w.num_requests = None;
        }
    }
    if a.request_rate.is_infinite() {
        e.arrival.process = Process::Burst;
    } else {
        e.arrival.process = Process::Poisson;
        e.arrival.rate = a.request_rate;
    }
    if let Some(cap) = a.max_concurrency {
        e.batching.plugin = "max-concurrency".to_owned();
        e.batching.config = Map::from_iter([("cap".to_owned(), Value::from(cap))]);
    }
    let url = a.base_url.clone().or_else(|| a.port.map(|p| format!("http://{}:{p}", a.host)));
    e.nodes = vec![match url {
        Some(u) => NodeSpec::url(u.trim_end_matches('/')),
        None => toml::from_str::<NodeSpec>("launch = \"sim\"")?,
    }];
    e.client.api_key_env = a.api_key_env.clone();
    for h in &a.headers {
        let (k, v) = h.split_once(':').with_context(|| format!("--header {h:?}: expected \"Name: value\""))?;
        e.client.headers.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(e)
}

/// Runs `sglab bench`: writes the experiment, then runs it as `sglab run` would.
pub fn main(a: BenchArgs) -> ExitCode {
    let made = experiment(&a).and_then(|e| {
        let text = format!(
            "# Written by `sglab bench`; `sglab run` on this file repeats the run.\n{}",
            toml::to_string(&e).context("serialising the experiment")?
        );
        let path = match &a.save_experiment {
            Some(p) => p.clone(),
            None => std::env::temp_dir().join(format!("sglab-bench-{}.toml", std::process::id())),
        };
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    });
    let path = match made {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(p) = &a.save_experiment {
        eprintln!("experiment written to {}", p.display());
    }
    let mut argv = vec!["run".into(), path.clone().into_os_string()];
    if a.quiet {
        argv.push("--quiet".into());
    }
    let cmd = <crate::run::RunArgs as Args>::augment_args(clap::Command::new("run"));
    let run_args = crate::run::RunArgs::from_arg_matches(&cmd.get_matches_from(argv)).expect("run arguments");
    let code = crate::run::main(run_args);
    if a.save_experiment.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(flags: &[&str]) -> Experiment {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied())).expect("flags");
        experiment(&cli.args).expect("experiment")
    }

    #[test]
    fn flags_set_the_keys_the_table_names() {
        let e = parse(&[
            "--base-url",
            "http://h:1/",
            "--num-prompts",
            "200",
            "--request-rate",
            "8",
            "--random-input-len",
            "512",
            "--random-output-len",
            "128",
            "--random-range-ratio",
            "0.5",
            "--seed",
            "9",
            "--max-concurrency",
            "4",
            "--backend",
            "vllm-chat",
            "--disable-stream",
            "--header",
            "X-A: b",
            "--api-key-env",
            "KEY",
        ]);
        assert_eq!(e.nodes[0].url.as_deref(), Some("http://h:1"));
        assert_eq!((e.workload.num_requests, e.workload.input_len, e.workload.output_len), (Some(200), 512, 128));
        assert_eq!((e.workload.range_ratio, e.experiment.seed), (0.5, 9));
        assert_eq!((e.arrival.process, e.arrival.rate), (Process::Poisson, 8.0));
        assert_eq!(e.batching.plugin, "max-concurrency");
        assert_eq!(e.batching.config["cap"], 4);
        assert_eq!((e.workload.backend, e.workload.stream), (Backend::OpenaiChat, false));
        assert_eq!(e.client.headers["X-A"], "b");
        assert_eq!(e.client.api_key_env.as_deref(), Some("KEY"));
        // Every flag set above is in the table.
        for f in ["--base-url", "--num-prompts", "--request-rate", "--max-concurrency", "--backend", "--header"] {
            assert!(FLAG_KEYS.iter().any(|(k, _)| k.contains(f)), "{f}");
        }
    }

    #[test]
    fn defaults_are_bench_servings_and_inf_is_a_burst() {
        let e = parse(&[]);
        assert_eq!(e.arrival.process, Process::Burst);
        assert_eq!((e.workload.num_requests, e.workload.input_len, e.workload.output_len), (Some(1000), 1024, 1024));
        assert_eq!(e.workload.dataset, Dataset::Random);
        assert_eq!(e.nodes[0].kind(), sglab_core::config::Launch::Sim);
        assert_eq!(parse(&["--port", "30000"]).nodes[0].url.as_deref(), Some("http://127.0.0.1:30000"));
        let g = parse(&["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "3"]);
        assert_eq!(
            (g.workload.dataset, g.workload.num_groups, g.workload.num_requests),
            (Dataset::SharedPrefix, 3, None)
        );
        assert!(parse_rate("0").is_err() && parse_rate("x").is_err() && parse_rate("inf").is_ok());
    }

    #[test]
    fn the_experiment_round_trips_through_toml() {
        let e = parse(&["--request-rate", "3.5", "--max-concurrency", "2"]);
        let back: Experiment = toml::from_str(&toml::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
