use super::*;

fn make(w: &Workload, seed: u64) -> Vec<RequestSpec> {
    generate(w, seed, None, &Approx).unwrap().specs
}

fn ids(r: &RequestSpec) -> Vec<u32> {
    match &r.prompt {
        Prompt::Ids(i) => i.to_vec(),
        Prompt::Text(_) => panic!("text prompt"),
    }
}

#[test]
fn random_lengths_follow_range_ratio() {
    let w =
        Workload { num_requests: Some(2000), input_len: 100, output_len: 10, range_ratio: 0.5, ..Workload::default() };
    let reqs = make(&w, 9);
    assert_eq!(reqs.len(), 2000);
    let ins: Vec<u32> = reqs.iter().map(|r| r.input_len()).collect();
    assert_eq!(*ins.iter().min().unwrap(), 50);
    assert_eq!(*ins.iter().max().unwrap(), 100);
    let mean = ins.iter().map(|&x| x as f64).sum::<f64>() / ins.len() as f64;
    assert!((mean - 75.0).abs() < 1.0, "{mean}");
    assert!(reqs.iter().all(|r| (5..=10).contains(&r.output_len)));
    assert!(reqs.iter().all(|r| ids(r).len() as u32 == r.input_len && ids(r).iter().all(|&t| t < w.vocab_size)));
}

#[test]
fn ratio_one_is_exact_and_seed_reproduces() {
    let w = Workload { num_requests: Some(5), input_len: 40, output_len: 7, range_ratio: 1.0, ..Workload::default() };
    let a = make(&w, 1);
    assert!(a.iter().all(|r| r.input_len() == 40 && r.output_len == 7));
    assert_eq!(a, make(&w, 1));
    assert_ne!(a, make(&w, 2));
    let g = generate(&w, 1, None, &Approx).unwrap();
    assert_eq!(g.prefix_hashes[0].len(), 2); // 40 tokens = 2 full blocks of 16
    assert_eq!(g.count, TokenCount::Exact);
}

#[test]
fn openai_backends_get_text_that_counts_back_exactly_under_the_approximation() {
    let w = Workload { num_requests: Some(3), input_len: 64, backend: Backend::OpenaiChat, ..Workload::default() };
    let g = generate(&w, 4, None, &Approx).unwrap();
    let (reqs, count) = (g.specs, g.count);
    assert_eq!(count, TokenCount::Approximate);
    for r in &reqs {
        let Prompt::Text(t) = &r.prompt else { panic!("want text") };
        assert_eq!(r.input_len, 64);
        assert_eq!(crate::sim::text::tokenize(t).len(), 64, "{t}");
    }
}

#[test]
fn shared_prefix_groups_share_exactly_the_system_prompt() {
    let w = Workload {
        dataset: Dataset::SharedPrefix,
        num_groups: 3,
        prompts_per_group: 4,
        system_prompt_len: 64,
        question_len: 16,
        output_len: 8,
        ..Workload::default()
    };
    let g = generate(&w, 2, None, &Approx).unwrap();
    let reqs = &g.specs;
    assert_eq!(reqs.len(), 12);
    assert!(reqs.iter().all(|r| r.input_len == 80 && r.output_len == 8));
    for (a, ha) in reqs.iter().zip(&g.prefix_hashes) {
        for (b, hb) in reqs.iter().zip(&g.prefix_hashes) {
            let same_group = a.session == b.session;
            assert_eq!(ids(a)[..64] == ids(b)[..64], same_group);
            // 64 shared tokens = 4 shared prefix blocks of 16.
            assert_eq!(ha[..4] == hb[..4], same_group);
        }
    }
    let sessions: Vec<u64> = reqs.iter().map(|r| r.session.unwrap()).collect();
    assert_ne!(
        sessions,
        {
            let mut s = sessions.clone();
            s.sort();
            s
        },
        "rows are shuffled"
    );
}

#[test]
fn a_shared_head_hashed_once_gives_every_prompt_its_own_hashes() {
    // A head of 70 ids: 4 whole blocks, and a block that straddles the tail.
    for backend in [Backend::Sglang, Backend::OpenaiCompletions] {
        let w = Workload {
            dataset: Dataset::SharedPrefix,
            num_groups: 3,
            prompts_per_group: 5,
            system_prompt_len: 70,
            question_len: 40,
            backend,
            ..Workload::default()
        };
        let g = generate(&w, 4, None, &Approx).unwrap();
        for (r, h) in g.specs.iter().zip(&g.prefix_hashes) {
            let ids = match &r.prompt {
                Prompt::Ids(i) => i.to_vec(),
                Prompt::Text(t) => Approx.encode(t),
            };
            assert_eq!(h, &prefix_hashes(&ids), "request {}", r.id);
            assert_eq!(h.len(), ids.len() / PREFIX_BLOCK_TOKENS as usize);
        }
    }
}

#[test]
fn prefix_hashes_share_exactly_the_shared_blocks() {
    let a: Vec<u32> = (0..64).collect();
    let mut b = a.clone();
    b[40] = 999; // inside block 2
    let (ha, hb) = (prefix_hashes(&a), prefix_hashes(&b));
    assert_eq!(ha.len(), 4);
    assert_eq!(ha[..2], hb[..2]);
    assert_ne!(ha[2], hb[2]);
    assert_ne!(ha[3], hb[3], "chained: a difference propagates");
}
