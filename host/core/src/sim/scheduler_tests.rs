use super::*;
use crate::sim::cost;

const MS: Nanos = 1_000_000;

/// Step time = 1 ms + 0.01 ms per token through the GEMMs, nothing else.
fn flat_profile() -> Profile {
    Profile {
        t0_ms: 1.0,
        w_ms: 0.0,
        k_ms_per_token: 0.01,
        q_ms_per_pair: 0.0,
        v_ms_per_kv_token: 0.0,
        s_ms_per_seq: 0.0,
        ingest_ms: 0.0,
        ..cost::builtin("llama-3.1-8b-h100").unwrap()
    }
}

fn cfg() -> SchedulerConfig {
    SchedulerConfig {
        max_total_tokens: 100_000,
        max_running_requests: 64,
        chunked_prefill_size: Some(8192),
        max_prefill_tokens: 16_384,
        policy: Policy::Fcfs,
        schedule_conservativeness: 1.0,
        disable_radix_cache: false,
        context_len: 32_768,
        ingest_ns: 0,
        seed: 1,
    }
}

fn req(ids: Vec<u32>, max_new: u32) -> SimRequest {
    SimRequest { input_ids: ids, max_new_tokens: max_new, ignore_eos: true }
}

fn distinct(base: u32, n: u32) -> Vec<u32> {
    (base..base + n).collect()
}

/// Drives the engine to `until` (or until idle); returns (time, event).
fn run(e: &mut SglangEngine, until: Nanos) -> Vec<(Nanos, TokenEvent)> {
    let mut all = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = e.next_event_at() {
        if t > until {
            break;
        }
        e.advance(t, &mut buf);
        all.extend(buf.drain(..).map(|ev| (t, ev)));
    }
    all
}

fn finals(evs: &[(Nanos, TokenEvent)]) -> HashMap<u64, TokenEvent> {
    evs.iter().filter(|(_, e)| e.finished).map(|(_, e)| (e.key, e.clone())).collect()
}

#[test]
fn long_prompt_is_prefilled_in_chunks_while_decodes_stall() {
    let mut e = SglangEngine::new(SchedulerConfig { chunked_prefill_size: Some(100), ..cfg() }, flat_profile());
    e.record_steps();
    e.submit(0, 1, req(distinct(0, 10), 40));
    let mut evs = run(&mut e, 30 * MS);
    e.submit(30 * MS, 2, req(distinct(1000, 350), 5));
    evs.extend(run(&mut e, Nanos::MAX));
    let steps = e.take_steps();
    // Request 1: prefill of 10, then decode steps of 1 sequence.
    assert_eq!((steps[0].prefill_reqs, steps[0].extend_tokens), (1, 10));
    // Request 2 arrives: 4 consecutive prefill-only steps (100, 100, 100, 50),
    // then decode steps with both requests.
    let first_chunk = steps.iter().position(|s| s.extend_tokens == 100).unwrap();
    let chunks: Vec<u64> = steps[first_chunk..first_chunk + 4].iter().map(|s| s.extend_tokens).collect();
    assert_eq!(chunks, vec![100, 100, 100, 50]);
    assert!(steps[first_chunk..first_chunk + 4].iter().all(|s| s.decode_seqs == 0 && s.prefill_reqs == 1));
    assert_eq!(steps[first_chunk - 1].decode_seqs, 1);
    assert_eq!(steps[first_chunk + 4].decode_seqs, 2);
    // Request 1 produced no token while the chunks ran: its inter-token gap
    // spans the four chunk steps (4 ms fixed + 3.5 ms of tokens) plus its own decode step.
    let t1: Vec<Nanos> = evs.iter().filter(|(_, e)| e.key == 1).map(|(t, _)| *t).collect();
    let stall_end = steps[first_chunk + 3].end;
    let before = *t1.iter().filter(|&&t| t <= steps[first_chunk].start).max().unwrap();
    let after = *t1.iter().find(|&&t| t > stall_end).unwrap();
    assert_eq!(
        after - before,
        (steps[first_chunk + 4].end - steps[first_chunk].start) + (steps[first_chunk].start - before)
    );
    assert!(after - before >= 4 * MS + 3_500_000);
    let f = finals(&evs);
    assert_eq!((f[&1].completion_tokens, f[&2].completion_tokens), (40, 5));
}

#[test]
fn kv_pressure_forces_retraction_and_the_retracted_request_completes() {
    let c = SchedulerConfig { max_total_tokens: 300, schedule_conservativeness: 0.1, ..cfg() };
    let mut e = SglangEngine::new(c, flat_profile());
    let mk = |ids: Vec<u32>| SimRequest { input_ids: ids, max_new_tokens: 200, ignore_eos: false };
    e.submit(0, 1, mk(distinct(0, 20)));
    // Submitted together, request 2 would wait: a new request reserves its
    // full output. Arriving while 1 runs, it only has to fit beside 1's
    // ratio-scaled reservation, so both are admitted.
    let mut evs = run(&mut e, 15 * MS);
    e.submit(15 * MS, 2, mk(distinct(500, 20)));
    evs.extend(run(&mut e, Nanos::MAX));
    let f = finals(&evs);
    assert_eq!(f[&1].completion_tokens, 200);
    assert_eq!(f[&2].completion_tokens, 200);
    assert!(f.values().all(|e| e.error.is_none()));
    // 2 x (20 + 200) tokens do not fit in 300: someone was retracted and re-prefilled.
    let retracted: u32 = f.values().map(|e| e.retractions).sum();
    assert!(retracted >= 1, "{f:?}");
    assert_eq!(e.stats().retracted_total, retracted as u64);
    // The victim is the one with fewer outputs at the time: the later-admitted request 2.
    assert!(f[&2].retractions >= 1);
    assert_eq!(e.active(), 0);
    assert_eq!(e.stats().num_used_tokens, 0, "everything released");
}

#[test]
fn a_shared_prefix_is_cached_and_shortens_the_prefill() {
    let mut e = SglangEngine::new(cfg(), flat_profile());
    e.record_steps();
    let shared = distinct(1, 64);
    let a = [shared.clone(), distinct(1000, 11)].concat();
    let b = [shared, distinct(2000, 11)].concat();
    e.submit(0, 1, req(a, 3));
    let mut evs = run(&mut e, 20 * MS);
    e.submit(20 * MS, 2, req(b, 3));
    evs.extend(run(&mut e, Nanos::MAX));
    let f = finals(&evs);
    assert_eq!(f[&1].cached_tokens, 0);
    assert_eq!(f[&2].cached_tokens, 64);
    let prefills: Vec<u64> = e.take_steps().iter().filter(|s| s.prefill_reqs > 0).map(|s| s.extend_tokens).collect();
    assert_eq!(prefills, vec![75, 11]);
    assert_eq!(e.stats().cached_tokens_total, 64);
}

fn completion_order(policy: Policy) -> Vec<u64> {
    let c = SchedulerConfig { policy, max_running_requests: 1, ..cfg() };
    let mut e = SglangEngine::new(c, flat_profile());
    let warm = distinct(1, 100);
    e.submit(0, 9, req(warm.clone(), 1));
    run(&mut e, 50 * MS);
    // Same arrival time; 0, 50 and 99 tokens of the cached prompt in common.
    e.submit(60 * MS, 1, req(distinct(5000, 120), 2));
    e.submit(60 * MS, 2, req([warm[..50].to_vec(), distinct(7000, 70)].concat(), 2));
    e.submit(60 * MS, 3, req([warm.clone(), distinct(9000, 20)].concat(), 2));
    let evs = run(&mut e, Nanos::MAX);
    evs.iter().filter(|(_, e)| e.finished).map(|(_, e)| e.key).collect()
}

#[test]
fn lpm_orders_by_matched_prefix_and_fcfs_by_arrival() {
    assert_eq!(completion_order(Policy::Lpm), vec![3, 2, 1]);
    assert_eq!(completion_order(Policy::Fcfs), vec![1, 2, 3]);
    assert_eq!(completion_order(Policy::Lof), vec![1, 2, 3], "equal max_new: stable order");
}

#[test]
fn max_running_requests_caps_the_batch() {
    let mut e = SglangEngine::new(SchedulerConfig { max_running_requests: 3, ..cfg() }, flat_profile());
    e.record_steps();
    for k in 0..5 {
        e.submit(0, k, req(distinct(100 * k as u32, 10), 4));
    }
    let evs = run(&mut e, Nanos::MAX);
    let steps = e.take_steps();
    assert_eq!((steps[0].prefill_reqs, steps[0].extend_tokens), (3, 30));
    assert_eq!(steps.iter().map(|s| s.decode_seqs).max(), Some(3));
    assert_eq!(steps.iter().filter(|s| s.prefill_reqs > 0).map(|s| s.prefill_reqs).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(finals(&evs).len(), 5);
}

#[test]
fn timing_follows_the_cost_model() {
    let p = cost::builtin("llama-3.1-8b-h100").unwrap();
    let mut e = SglangEngine::new(SchedulerConfig::for_profile(&p), p.clone());
    e.submit(0, 1, req(distinct(0, 1024), 3));
    let evs = run(&mut e, Nanos::MAX);
    let times: Vec<Nanos> = evs.iter().map(|(t, _)| *t).collect();
    // TTFT = ingest 0.5 ms + one 1024-token prefill (~24 ms, sim.md §2.2).
    let ttft_ms = times[0] as f64 / 1e6;
    assert!((23.0..26.5).contains(&ttft_ms), "{ttft_ms}");
    // Decode at batch 1: ~6.9 ms per token.
    let itl_ms = (times[1] - times[0]) as f64 / 1e6;
    assert!((6.8..7.1).contains(&itl_ms), "{itl_ms}");
}

#[test]
fn impossible_requests_are_aborted_with_a_reason() {
    let mut e = SglangEngine::new(SchedulerConfig { max_total_tokens: 50, ..cfg() }, flat_profile());
    e.submit(0, 1, req(distinct(0, 100), 5));
    let evs = run(&mut e, Nanos::MAX);
    assert_eq!(evs.len(), 1);
    assert!(evs[0].1.error.as_ref().unwrap().contains("longer than"), "{:?}", evs[0].1);
    e.cancel(7);
    assert_eq!(e.active(), 0);
}

/// Submits the retraction scenario's three requests (the last two 15 ms in);
/// its events up to then.
fn retraction_start(e: &mut SglangEngine) -> Vec<(Nanos, TokenEvent)> {
    let mk = |ids: Vec<u32>| SimRequest { input_ids: ids, max_new_tokens: 200, ignore_eos: false };
    e.submit(0, 1, mk(distinct(0, 20)));
    let evs = run(e, 15 * MS);
    e.submit(15 * MS, 2, mk(distinct(500, 20)));
    e.submit(15 * MS, 3, mk(distinct(900, 20)));
    evs
}

/// The retraction scenario above, with request 3 cancelled mid-stream
/// when `cancel_at` is set.
fn retraction_run(quiet: bool, cancel_at: Option<Nanos>) -> (SglangEngine, Vec<(Nanos, TokenEvent)>) {
    let c = SchedulerConfig { max_total_tokens: 300, schedule_conservativeness: 0.1, ..cfg() };
    let mut e = SglangEngine::new(c, flat_profile());
    if quiet {
        assert!(e.quiet_decode());
    }
    let mut evs = retraction_start(&mut e);
    if let Some(at) = cancel_at {
        evs.extend(run(&mut e, at));
        e.cancel(3);
    }
    evs.extend(run(&mut e, Nanos::MAX));
    (e, evs)
}

/// Every token as (time, request, completion count), silent ones filled
/// in from the decode log.
fn tokens_of(e: &SglangEngine, evs: &[(Nanos, TokenEvent)]) -> Vec<(Nanos, u64, u32)> {
    let mut out = Vec::new();
    for (t, ev) in evs {
        let times = &e.decode_times()[ev.silent_from as usize..][..ev.silent as usize];
        let before = ev.completion_tokens - ev.silent - u32::from(ev.error.is_none());
        out.extend(times.iter().zip(1..).map(|(&at, k)| (at, ev.key, before + k)));
        if ev.error.is_none() && ev.completion_tokens > 0 {
            out.push((*t, ev.key, ev.completion_tokens));
        }
    }
    out.sort_unstable();
    out
}

#[test]
fn quiet_decode_reports_every_token_at_the_same_time_across_retractions() {
    let (loud_e, loud) = retraction_run(false, None);
    let (quiet_e, quiet) = retraction_run(true, None);
    assert!(loud.iter().all(|(_, ev)| ev.silent == 0));
    assert!(finals(&loud).values().any(|ev| ev.retractions > 0), "the scenario retracts");
    assert!(quiet.len() * 10 < loud.len(), "{} quiet events, {} loud", quiet.len(), loud.len());
    assert_eq!(tokens_of(&quiet_e, &quiet), tokens_of(&loud_e, &loud));
    assert_eq!(
        finals(&quiet),
        finals(&loud)
            .into_iter()
            .map(|(k, mut ev)| {
                // A quiet final event carries what came before it.
                let q = &finals(&quiet)[&k];
                (ev.silent, ev.silent_from) = (q.silent, q.silent_from);
                (k, ev)
            })
            .collect()
    );
    assert_eq!(quiet_e.stats(), loud_e.stats());
}

#[test]
fn unreported_tokens_of_a_cancelled_request_are_the_ones_it_made() {
    let (_, loud) = retraction_run(false, None);
    // Half-way through request 3's tokens.
    let mid = loud.iter().filter(|(_, ev)| ev.key == 3).nth(60).map(|(t, _)| *t).unwrap();
    let (loud_e, loud) = retraction_run(false, Some(mid));
    let made = loud.iter().filter(|(t, ev)| ev.key == 3 && *t <= mid).count() as u32;
    let mut e = SglangEngine::new(loud_e.config().clone(), flat_profile());
    assert!(e.quiet_decode());
    let mut evs = retraction_start(&mut e);
    evs.extend(run(&mut e, mid));
    let heard: u32 = evs.iter().filter(|(_, ev)| ev.key == 3).map(|(_, ev)| ev.completion_tokens).max().unwrap();
    let (from, n) = e.unreported(3);
    assert!(n > 0);
    assert_eq!(heard + n, made);
    let times: Vec<Nanos> = e.decode_times()[from as usize..][..n as usize].to_vec();
    let loud_times: Vec<Nanos> = loud
        .iter()
        .filter(|(t, ev)| ev.key == 3 && *t <= mid && ev.completion_tokens > heard)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(times, loud_times);
    e.cancel(3);
    assert_eq!(e.unreported(3), (0, 0), "gone");
}

#[test]
fn a_retracted_requests_generated_ids_are_cached_after_it_finishes() {
    // Generated id at position p of request k (pinned: follow-up prompts hit the cache on them).
    let gen_id = |k: u64, p: usize| (k.wrapping_mul(0x9E37_79B9).wrapping_add(p as u64) % 50_000) as u32 + 100_000;
    let (mut e, evs) = retraction_run(false, None);
    let f = finals(&evs);
    let victim = *f.keys().find(|k| f[k].retractions > 0).unwrap();
    let base = [0, 0, 500, 900][victim as usize];
    // Prompt and outputs but the last (whose KV was never computed).
    let ids: Vec<u32> = distinct(base, 20).into_iter().chain((20..20 + 199).map(|p| gen_id(victim, p))).collect();
    e.submit(e.next_event_at().unwrap_or(0), 9, req([ids.clone(), distinct(40_000, 5)].concat(), 1));
    let f = finals(&run(&mut e, Nanos::MAX));
    assert_eq!(f[&9].cached_tokens, ids.len() as u32);
}
