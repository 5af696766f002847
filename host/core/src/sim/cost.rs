//! The per-forward-pass cost model and the named hardware profiles.
//!
//! One scheduler step (a forward pass) costs
//!
//! ```text
//! T_step = T0 + sqrt(W² + (k·N)²) + q·S_pf + v·L_dec + s·B_dec + T_tp(N) [+ T_eager]
//! ```
//!
//! where N is the tokens through the GEMMs (extend tokens + decode
//! sequences), S_pf = Σ e_i·(p_i + (e_i+1)/2) the causal prefill attention
//! pairs, L_dec the KV tokens read by decode attention, B_dec the decode
//! batch size, and T_eager applies when the decode batch exceeds the
//! CUDA-graph cap. Formula, coefficients and KV-capacity rule are from
//! shared/reference/sim.md §2 (Vidur GEMM profiles and public SGLang
//! measurements); KV capacity follows SGLang 0.5.23
//! `mem_cache/kv_cache_configurator.py` and `arg_groups/memory_hook.py`.

use serde::{Deserialize, Serialize};

/// A model × GPU profile: cost coefficients, memory, scheduler defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// What it models.
    #[serde(default)]
    pub description: String,
    /// Fixed cost per step (sampling, launch, sync), ms.
    pub t0_ms: f64,
    /// Weights-read floor of the GEMMs, ms.
    pub w_ms: f64,
    /// GEMM compute per token, ms.
    pub k_ms_per_token: f64,
    /// Prefill attention per (query, key) pair, ms.
    pub q_ms_per_pair: f64,
    /// Decode attention per KV token read, ms.
    pub v_ms_per_kv_token: f64,
    /// Per decode sequence overhead, ms.
    pub s_ms_per_seq: f64,
    /// Tensor-parallel all-reduce fixed cost per step, ms (0 for TP 1).
    #[serde(default)]
    pub tp_fixed_ms: f64,
    /// Tensor-parallel all-reduce cost per token, ms.
    #[serde(default)]
    pub tp_ms_per_token: f64,
    /// Extra cost of a decode step above the CUDA-graph batch cap, ms.
    #[serde(default)]
    pub eager_ms: f64,
    /// Largest decode batch replayed as a CUDA graph.
    pub cuda_graph_max_bs: u32,
    /// Tensor-parallel degree.
    pub tp_size: u32,
    /// GPU memory, MB (for SGLang's automatic `mem_fraction_static`).
    pub gpu_memory_mb: f64,
    /// Free GPU memory before loading weights, GiB.
    pub free_gib: f64,
    /// Weights per GPU, GiB.
    pub weights_gib: f64,
    /// KV cache bytes per token per GPU.
    pub kv_bytes_per_token: u64,
    /// Model context length.
    pub context_len: u64,
    /// Default `--chunked-prefill-size`.
    pub chunked_prefill_size: u64,
    /// Default `--max-prefill-tokens`.
    pub max_prefill_tokens: u64,
    /// Front-end delay per request before the scheduler sees it (tokenize, IPC), ms.
    #[serde(default)]
    pub ingest_ms: f64,
}

/// The shape of one forward pass, for the cost model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepShape {
    /// Extend (prefill) tokens computed.
    pub extend_tokens: u64,
    /// Σ e_i·(p_i + (e_i+1)/2).
    pub prefill_pairs: f64,
    /// Decode sequences.
    pub decode_seqs: u32,
    /// KV tokens read by decode attention.
    pub decode_kv_tokens: u64,
}

impl Profile {
    /// Step time in milliseconds.
    pub fn step_ms(&self, s: &StepShape) -> f64 {
        let n = (s.extend_tokens + s.decode_seqs as u64) as f64;
        let gemm = (self.w_ms * self.w_ms + (self.k_ms_per_token * n).powi(2)).sqrt();
        let tp = if self.tp_size > 1 { self.tp_fixed_ms + self.tp_ms_per_token * n } else { 0.0 };
        let eager = if s.decode_seqs > self.cuda_graph_max_bs { self.eager_ms } else { 0.0 };
        self.t0_ms
            + gemm
            + self.q_ms_per_pair * s.prefill_pairs
            + self.v_ms_per_kv_token * s.decode_kv_tokens as f64
            + self.s_ms_per_seq * s.decode_seqs as f64
            + tp
            + eager
    }

    /// SGLang's automatic `mem_fraction_static` for GPUs over 60 GB:
    /// (gpu − reserved)/gpu, reserved = max(512 + 1.5·max(chunk, 2048) +
    /// 1024·TP/8 + 2·cuda_graph_max_bs, 10240) MB.
    pub fn auto_mem_fraction(&self, chunked_prefill_size: u64) -> f64 {
        let reserved = (512.0
            + 1.5 * chunked_prefill_size.max(2048) as f64
            + 1024.0 * self.tp_size as f64 / 8.0
            + 2.0 * self.cuda_graph_max_bs as f64)
            .max(10240.0);
        (self.gpu_memory_mb - reserved) / self.gpu_memory_mb
    }

    /// KV pool capacity in tokens: (free·f − weights)·2³⁰ / bytes-per-token.
    pub fn kv_capacity(&self, mem_fraction_static: f64) -> u64 {
        let rest_gib = self.free_gib * mem_fraction_static - self.weights_gib;
        (rest_gib.max(0.0) * (1u64 << 30) as f64 / self.kv_bytes_per_token as f64).floor() as u64
    }

    /// SGLang's default `max_running_requests`:
    /// min(clamp(cap/context_len·512, 2048, 4096), cap/2).
    pub fn default_max_running(&self, capacity: u64) -> u64 {
        let by_ctx = (capacity as f64 / self.context_len as f64 * 512.0) as u64;
        by_ctx.clamp(2048, 4096).min(capacity / 2)
    }
}

/// Names of the built-in profiles (plus `fixed`, handled by the server).
pub const BUILTIN: &[&str] = &["llama-3.1-8b-h100", "qwen2.5-7b-a100", "llama-3.1-70b-h100-tp4"];

/// A built-in profile by name.
pub fn builtin(name: &str) -> Option<Profile> {
    let base = |name: &str, description: &str| Profile {
        name: name.to_owned(),
        description: description.to_owned(),
        t0_ms: 0.4,
        w_ms: 0.0,
        k_ms_per_token: 0.0,
        q_ms_per_pair: 0.0,
        v_ms_per_kv_token: 0.0,
        s_ms_per_seq: 0.005,
        tp_fixed_ms: 0.0,
        tp_ms_per_token: 0.0,
        eager_ms: 0.0,
        cuda_graph_max_bs: 256,
        tp_size: 1,
        gpu_memory_mb: 81_559.0,
        free_gib: 78.66,
        weights_gib: 0.0,
        kv_bytes_per_token: 0,
        context_len: 131_072,
        chunked_prefill_size: 8192,
        max_prefill_tokens: 16_384,
        ingest_ms: 0.5,
    };
    Some(match name {
        "llama-3.1-8b-h100" => Profile {
            w_ms: 6.5,
            k_ms_per_token: 0.0220,
            q_ms_per_pair: 1.17e-6,
            v_ms_per_kv_token: 4.7e-5,
            eager_ms: 1.6,
            weights_gib: 14.96,
            kv_bytes_per_token: 131_072,
            ..base(name, "Llama-3.1-8B-Instruct on 1x H100-SXM 80 GB, BF16, SGLang defaults")
        },
        "qwen2.5-7b-a100" => Profile {
            w_ms: 9.9,
            k_ms_per_token: 0.0629,
            q_ms_per_pair: 2.23e-6,
            v_ms_per_kv_token: 3.58e-5,
            eager_ms: 1.4,
            free_gib: 78.5,
            gpu_memory_mb: 81_920.0,
            weights_gib: 14.2,
            kv_bytes_per_token: 57_344,
            context_len: 32_768,
            ..base(name, "Qwen2.5-7B-Instruct on 1x A100-SXM 80 GB, BF16 (least calibrated profile)")
        },
        "llama-3.1-70b-h100-tp4" => Profile {
            t0_ms: 0.5,
            w_ms: 14.7,
            k_ms_per_token: 0.0556,
            q_ms_per_pair: 1.46e-6,
            v_ms_per_kv_token: 2.93e-5,
            tp_fixed_ms: 2.4,
            tp_ms_per_token: 0.011,
            eager_ms: 4.0,
            cuda_graph_max_bs: 512,
            tp_size: 4,
            weights_gib: 32.9,
            kv_bytes_per_token: 81_920,
            ..base(name, "Llama-3.1-70B-Instruct on 4x H100-SXM (NVLink), TP4, BF16")
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(got: f64, want: f64, pct: f64) -> bool {
        ((got - want) / want).abs() * 100.0 <= pct
    }

    #[test]
    fn llama_8b_h100_reproduces_the_anchors() {
        let p = builtin("llama-3.1-8b-h100").unwrap();
        // Decode at batch 1, context ~130: about 6.9 ms (SGLang PR #1401, docs log).
        let d1 = p.step_ms(&StepShape { decode_seqs: 1, decode_kv_tokens: 130, ..Default::default() });
        assert!(within(d1, 6.9, 5.0), "decode bs=1: {d1} ms");
        // Prefill 16 x 1024 tokens: 370.7 ms predicted, 376.8 ms measured (PR #4832): ~43k tok/s.
        let pairs = 16.0 * 1024.0 * (1025.0 / 2.0);
        let pf = p.step_ms(&StepShape { extend_tokens: 16 * 1024, prefill_pairs: pairs, ..Default::default() });
        assert!(within(pf, 376.8, 5.0), "prefill 16x1024: {pf} ms");
        let tok_s = 16.0 * 1024.0 / (pf / 1e3);
        assert!(within(tok_s, 43_400.0, 5.0), "prefill throughput {tok_s} tok/s");
        // Decode batch 32 at ctx 1280: 9.47 ms measured (PR #5211).
        let d32 = p.step_ms(&StepShape { decode_seqs: 32, decode_kv_tokens: 32 * 1280, ..Default::default() });
        assert!(within(d32, 9.47, 5.0), "decode bs=32: {d32} ms");
        // KV capacity: 444,500 tokens at mem_fraction_static 0.88 (SGLang docs log).
        assert!(within(p.kv_capacity(0.88) as f64, 444_500.0, 0.5), "{}", p.kv_capacity(0.88));
        // 0.5.x automatic fraction is about 0.83, giving about 415k tokens.
        let f = p.auto_mem_fraction(8192);
        assert!((0.82..0.84).contains(&f), "{f}");
        assert!(within(p.kv_capacity(f) as f64, 415_000.0, 1.5), "{}", p.kv_capacity(f));
        assert_eq!(p.default_max_running(p.kv_capacity(f)), 2048);
    }

    #[test]
    fn other_profiles_match_their_documented_expectations() {
        let q = builtin("qwen2.5-7b-a100").unwrap();
        let d1 = q.step_ms(&StepShape { decode_seqs: 1, decode_kv_tokens: 100, ..Default::default() });
        assert!(within(d1, 10.3, 5.0), "qwen decode bs=1: {d1}");
        assert!(within(q.kv_capacity(0.88) as f64, 1_030_000.0, 1.5), "{}", q.kv_capacity(0.88));
        assert_eq!(q.default_max_running(q.kv_capacity(0.88)), 4096);
        let l = builtin("llama-3.1-70b-h100-tp4").unwrap();
        let d1 = l.step_ms(&StepShape { decode_seqs: 1, decode_kv_tokens: 100, ..Default::default() });
        assert!(within(d1, 17.6, 5.0), "70b decode bs=1: {d1}");
        let f = l.auto_mem_fraction(8192);
        assert!(within(l.kv_capacity(f) as f64, 420_000.0, 3.0), "{} at f={f}", l.kv_capacity(f));
        assert!(builtin("nope").is_none());
    }

    #[test]
    fn profiles_round_trip_through_toml_shape() {
        let p = builtin("llama-3.1-8b-h100").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
    }
}
