use super::*;

/// Params with every filter and penalty off, at the given temperature.
fn plain(temperature: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        seed: Some(42),
        logit_bias: Vec::new(),
    }
}

fn sampler(params: SamplingParams) -> Sampler {
    Sampler::new(params).expect("valid params")
}

fn cands(logits: &[f32]) -> Vec<Candidate> {
    logits.iter().enumerate().map(|(id, &logit)| Candidate { id: id as u32, logit, p: 0.0 }).collect()
}

fn ids(cands: &[Candidate]) -> Vec<u32> {
    cands.iter().map(|c| c.id).collect()
}

/// Deterministic pseudo-random logits in [-10, 10).
fn random_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seeded(seed);
    (0..n).map(|_| (rng.next_f64() * 20.0 - 10.0) as f32).collect()
}

fn sequence(params: SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
    let mut s = sampler(params);
    (0..n).map(|_| s.sample(logits, &[])).collect()
}

#[test]
fn defaults_are_ollamas_and_valid() {
    let p = SamplingParams::default();
    assert_eq!((p.temperature, p.top_k, p.top_p, p.min_p), (0.8, 40, 0.9, 0.0));
    assert_eq!((p.repeat_penalty, p.repeat_last_n), (1.1, 64));
    assert_eq!((p.presence_penalty, p.frequency_penalty, p.seed), (0.0, 0.0, None));
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(SamplingParams::greedy().validate(), Ok(()));
}

#[test]
fn validation_names_the_bad_parameter() {
    let cases: Vec<(&str, SamplingParams)> = vec![
        ("temperature", SamplingParams { temperature: -0.1, ..plain(1.0) }),
        ("temperature", SamplingParams { temperature: f32::NAN, ..plain(1.0) }),
        ("temperature", SamplingParams { temperature: f32::INFINITY, ..plain(1.0) }),
        ("top_p", SamplingParams { top_p: 0.0, ..plain(1.0) }),
        ("top_p", SamplingParams { top_p: 1.5, ..plain(1.0) }),
        ("top_p", SamplingParams { top_p: f32::NAN, ..plain(1.0) }),
        ("min_p", SamplingParams { min_p: -0.5, ..plain(1.0) }),
        ("min_p", SamplingParams { min_p: 1.01, ..plain(1.0) }),
        ("repeat_penalty", SamplingParams { repeat_penalty: 0.0, ..plain(1.0) }),
        ("repeat_penalty", SamplingParams { repeat_penalty: f32::NAN, ..plain(1.0) }),
        ("presence_penalty", SamplingParams { presence_penalty: f32::NAN, ..plain(1.0) }),
        ("frequency_penalty", SamplingParams { frequency_penalty: f32::INFINITY, ..plain(1.0) }),
        ("logit_bias", SamplingParams { logit_bias: vec![(1, 100.5)], ..plain(1.0) }),
        ("logit_bias", SamplingParams { logit_bias: vec![(1, f32::NAN)], ..plain(1.0) }),
    ];
    for (name, params) in cases {
        let err = params.validate().expect_err(name);
        let SamplingError::InvalidParameter { name: got, .. } = &err else { panic!("{err}") };
        assert_eq!(*got, name);
        assert!(err.to_string().contains(name), "{err}");
        assert!(Sampler::new(params).is_err());
    }
    // Edges that are valid.
    for params in [
        SamplingParams { top_p: 1.0, min_p: 1.0, ..plain(0.0) },
        SamplingParams { presence_penalty: -2.0, frequency_penalty: 2.0, ..plain(1.0) },
        SamplingParams { repeat_last_n: SamplingParams::WHOLE_HISTORY, ..plain(1.0) },
    ] {
        assert_eq!(params.validate(), Ok(()));
    }
    let msg = SamplingParams { top_p: 1.5, ..plain(1.0) }.validate().unwrap_err().to_string();
    assert_eq!(msg, "invalid sampling parameter top_p = 1.5: expected a number in (0, 1] (1 = off)");
}

#[test]
fn greedy_picks_argmax_and_lowest_id_on_ties() {
    let mut s = sampler(plain(0.0));
    assert_eq!(s.sample(&[0.1, 2.5, -1.0, 2.4], &[]), 1);
    assert_eq!(s.sample(&[1.0, 3.0, 3.0, 3.0], &[]), 1);
    assert_eq!(s.sample(&[-5.0, -5.0], &[]), 0);
    assert_eq!(s.candidates(&[1.0, 3.0, 2.0], &[]), &[Candidate { id: 1, logit: 3.0, p: 1.0 }]);
}

#[test]
fn top_k_1_is_greedy() {
    let logits = random_logits(5000, 7);
    let expected = argmax(&logits).unwrap() as u32;
    let params = SamplingParams { top_k: 1, ..plain(1.5) };
    assert!(sequence(params, &logits, 50).iter().all(|&t| t == expected));
}

#[test]
fn top_k_keeps_the_k_best_with_deterministic_ties() {
    let logits = random_logits(262_144, 3);
    let mut all = cands(&logits);
    all.sort_by(rank);
    let mut got = Vec::new();
    for k in [1, 40, 1000] {
        top_k(&logits, k, &mut got);
        assert_eq!(ids(&got), ids(&all[..k]), "k = {k}");
    }

    top_k(&[1.0, 5.0, 5.0, 0.0, 5.0, f32::NAN], 2, &mut got);
    assert_eq!(ids(&got), vec![1, 2]);
    top_k(&[f32::NAN, 1.0, f32::NAN], 2, &mut got);
    assert_eq!(
        got,
        vec![Candidate { id: 1, logit: 1.0, p: 0.0 }, Candidate { id: 0, logit: f32::NEG_INFINITY, p: 0.0 }]
    );

    // Off, or at least the vocabulary: every token, unsorted.
    top_k(&[1.0, 2.0], 0, &mut got);
    assert_eq!(ids(&got), vec![0, 1]);
    top_k(&[1.0, 2.0], 10, &mut got);
    assert_eq!(ids(&got), vec![0, 1]);
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (in shuffled order).
    let logits: Vec<f32> = [0.15f32, 0.5, 0.05, 0.3].iter().map(|p| p.ln()).collect();
    for (p, expected) in [
        (0.4, vec![1]),
        (0.75, vec![1, 3]),
        (0.85, vec![1, 3, 0]),
        (0.99, vec![1, 3, 0, 2]),
        (1.0, vec![0, 1, 2, 3]), // off: untouched
    ] {
        let mut c = cands(&logits);
        top_p(&mut c, p);
        assert_eq!(ids(&c), expected, "top_p = {p}");
    }
}

#[test]
fn top_p_beyond_the_first_partial_sort() {
    // 5000 equally likely tokens: the nucleus needs several extensions of the first 256,
    // and ties must resolve to the lowest ids.
    let mut c = cands(&[0.25; 5000]);
    top_p(&mut c, 0.5001);
    assert_eq!(ids(&c), (0..2501).collect::<Vec<u32>>());
    // Distinct logits in scrambled order: the kept prefix is exactly the best tokens.
    let logits = random_logits(20_000, 17);
    let mut all = cands(&logits);
    softmax(&mut all);
    all.sort_by(rank);
    let mut c = cands(&logits);
    top_p(&mut c, 0.7);
    let mass: f64 = all[..c.len() - 1].iter().map(|c| f64::from(c.p)).sum();
    assert!(mass < 0.7 && mass + f64::from(all[c.len() - 1].p) >= 0.7);
    assert_eq!(ids(&c), ids(&all[..c.len()]));
}

#[test]
fn min_p_keeps_tokens_relative_to_the_best() {
    // Relative probabilities 1, 0.5, 0.1 (exactly at the threshold: kept), 0.05.
    let logits = [0.0, 0.5f32.ln(), 0.05f32.ln(), 0.1f32.ln()];
    let mut c = cands(&logits);
    min_p(&mut c, 0.1);
    assert_eq!(ids(&c), vec![0, 1, 3]);

    let mut c = cands(&logits);
    min_p(&mut c, 1.0);
    assert_eq!(ids(&c), vec![0]);

    let mut c = cands(&logits);
    min_p(&mut c, 0.0);
    assert_eq!(c.len(), 4);
}

#[test]
fn filters_apply_before_temperature() {
    // Untempered probabilities ~0.67/0.24/0.09: top_p 0.6 keeps one token. A high
    // temperature would flatten them enough for top_p to keep more if it ran afterwards.
    let logits = [2.0, 1.0, 0.0];
    let params = SamplingParams { top_p: 0.6, ..plain(5.0) };
    assert_eq!(ids(sampler(params).candidates(&logits, &[])), vec![0]);

    // min_p 0.3 at temperature 1 drops token 2 (0.135 of the best); at temperature 5 it
    // would have survived (0.67 of the best).
    let params = SamplingParams { min_p: 0.3, ..plain(5.0) };
    let mut s = sampler(params);
    let c = s.candidates(&logits, &[]);
    assert_eq!(ids(c), vec![0, 1]);
    // The surviving probabilities are tempered: softmax([2, 1] / 5).
    let expected = 1.0 / (1.0 + (-0.2f32).exp());
    assert!((c[0].p - expected).abs() < 1e-6);
}

#[test]
fn penalties_change_the_right_logits_by_the_right_amounts() {
    let params = SamplingParams { repeat_penalty: 2.0, presence_penalty: 0.5, frequency_penalty: 0.25, ..plain(1.0) };
    let mut logits = vec![2.0, -2.0, 1.0, 0.5, 0.0];
    // Token 0 twice, 1 once, 3 once, 4 once; 99 is outside the vocabulary.
    apply_penalties(&mut logits, &[0, 1, 0, 3, 99, 4], &params, &mut Vec::new());
    assert_eq!(
        logits,
        vec![2.0 / 2.0 - 2.0 * 0.25 - 0.5, -2.0 * 2.0 - 0.25 - 0.5, 1.0, 0.5 / 2.0 - 0.25 - 0.5, 0.0 - 0.25 - 0.5,]
    );
}

#[test]
fn penalties_only_look_at_the_last_n_tokens() {
    let base = SamplingParams { repeat_penalty: 2.0, ..plain(1.0) };
    let history = [0, 1, 2];
    let run = |repeat_last_n| {
        let mut logits = vec![4.0; 4];
        let params = SamplingParams { repeat_last_n, ..base.clone() };
        apply_penalties(&mut logits, &history, &params, &mut Vec::new());
        logits
    };
    assert_eq!(run(2), vec![4.0, 2.0, 2.0, 4.0]);
    assert_eq!(run(SamplingParams::WHOLE_HISTORY), vec![2.0, 2.0, 2.0, 4.0]);
    assert_eq!(run(0), vec![4.0; 4]);
}

#[test]
fn penalties_steer_sampling_without_touching_the_callers_logits() {
    let logits = vec![3.0, 2.9, 0.0];
    let params = SamplingParams { repeat_penalty: 1.5, ..plain(0.0) };
    let mut s = sampler(params);
    assert_eq!(s.sample(&logits, &[]), 0);
    assert_eq!(s.sample(&logits, &[0]), 1);
    assert_eq!(logits, vec![3.0, 2.9, 0.0]);
}

#[test]
fn same_seed_same_sequence_different_seed_different_sequence() {
    let logits = random_logits(1000, 11).iter().map(|l| l * 0.2).collect::<Vec<_>>();
    let params = |seed| SamplingParams { seed: Some(seed), ..SamplingParams::default() };
    let a = sequence(params(1), &logits, 64);
    assert_eq!(a, sequence(params(1), &logits, 64));
    assert_ne!(a, sequence(params(2), &logits, 64));
    // Unseeded samplers get distinct streams.
    let unseeded = SamplingParams { seed: None, ..params(0) };
    assert_ne!(sequence(unseeded.clone(), &logits, 64), sequence(unseeded, &logits, 64));
}

#[test]
fn empirical_distribution_matches_softmax() {
    let logits = [1.0f32, 2.0, 0.5, 3.0, -1.0];
    let temperature = 0.7;
    let mut s = sampler(SamplingParams { seed: Some(1234), ..plain(temperature) });
    let draws = 100_000;
    let mut counts = [0usize; 5];
    for _ in 0..draws {
        counts[s.sample(&logits, &[]) as usize] += 1;
    }
    let exp: Vec<f64> = logits.iter().map(|&l| (f64::from(l) / f64::from(temperature)).exp()).collect();
    let total: f64 = exp.iter().sum();
    for (i, &count) in counts.iter().enumerate() {
        let expected = exp[i] / total;
        let observed = count as f64 / draws as f64;
        // The standard error here is at most 0.0016; 0.01 is generous yet still catches an
        // off-by-one-token or missing-temperature bug.
        assert!((observed - expected).abs() < 0.01, "token {i}: {observed} vs {expected}");
    }
}

#[test]
fn nan_and_infinite_logits_never_panic() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let mut greedy = sampler(plain(0.0));
    assert_eq!(greedy.sample(&[nan, 1.0, nan, 0.5], &[]), 1);
    assert_eq!(greedy.sample(&[nan, nan], &[]), 0);
    assert_eq!(greedy.sample(&[], &[]), 0);

    for params in [plain(1.0), SamplingParams { seed: Some(9), ..SamplingParams::default() }] {
        let mut s = sampler(params);
        for _ in 0..100 {
            let t = s.sample(&[nan, inf, 1.0, inf, -inf], &[1, 3]);
            assert!(t == 1 || t == 3, "{t}");
            assert_eq!(s.sample(&[nan, 5.0, nan], &[]), 1);
            assert!(s.sample(&[nan, nan, -inf], &[0]) < 3);
            assert_eq!(s.sample(&[], &[5]), 0);
        }
    }

    // Tiny temperatures overflow finite logits to infinity; still a valid draw.
    let mut s = sampler(plain(1e-38));
    assert_eq!(s.sample(&[1.0, 30.0, 2.0], &[]), 1);
}

#[test]
fn candidate_probabilities_sum_to_one() {
    let logits = random_logits(262_144, 5);
    let mut s = sampler(SamplingParams { seed: Some(3), top_k: 0, ..SamplingParams::default() });
    let c = s.candidates(&logits, &[1, 2, 3]);
    let sum: f32 = c.iter().map(|c| c.p).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    assert!(c.windows(2).all(|w| w[0].p >= w[1].p));
}

#[test]
fn rng_is_stable_and_uniform_enough() {
    let mut a = Rng::seeded(0);
    let mut b = Rng::seeded(0);
    let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
    let mean = (0..10_000).map(|_| a.next_f64()).sum::<f64>() / 10_000.0;
    assert!((mean - 0.5).abs() < 0.02, "{mean}");
}

#[test]
fn a_mask_leaves_only_allowed_tokens_in_the_running() {
    // 40 tokens span two mask words; the best logits belong to disallowed tokens.
    let logits: Vec<f32> = (0..40).map(|i| i as f32).collect();
    let allowed = [1u32 << 3 | 1 << 7, 1 << (33 - 32)];
    let mut s = sampler(plain(0.0));
    assert_eq!(s.sample_masked(&logits, &[], Some(TokenMask(&allowed))), 33);
    let mut s = sampler(plain(1.0));
    let cands = s.candidates_masked(&logits, &[], Some(TokenMask(&allowed)));
    let mut kept: Vec<u32> = cands.iter().filter(|c| c.p > 0.0).map(|c| c.id).collect();
    kept.sort_unstable();
    assert_eq!(kept, vec![3, 7, 33]);
    for _ in 0..50 {
        assert!([3, 7, 33].contains(&s.sample_masked(&logits, &[], Some(TokenMask(&allowed)))));
    }
    // Tokens past the mask's last word are never allowed.
    let mut s = sampler(plain(0.0));
    assert_eq!(s.sample_masked(&logits, &[], Some(TokenMask(&[1 << 5]))), 5);
}

#[test]
fn the_mask_applies_before_penalties() {
    // Token 2 is the best but masked; token 1 is penalised below token 0 once repeated.
    let logits = [1.0, 1.5, 9.0];
    let params = SamplingParams { repeat_penalty: 2.0, repeat_last_n: 8, ..plain(0.0) };
    let mut s = sampler(params);
    let allowed = [0b011u32];
    assert_eq!(s.sample_masked(&logits, &[], Some(TokenMask(&allowed))), 1);
    assert_eq!(s.sample_masked(&logits, &[1], Some(TokenMask(&allowed))), 0);
}

#[test]
fn logit_bias_bans_and_forces_tokens_in_every_mode() {
    let logits = random_logits(500, 3);
    let best = argmax(&logits).unwrap() as u32;
    for temperature in [0.0, 1.0] {
        let mut banned = sampler(SamplingParams { logit_bias: vec![(best, -MAX_BIAS)], ..plain(temperature) });
        let mut forced = sampler(SamplingParams { logit_bias: vec![(7, MAX_BIAS)], ..plain(temperature) });
        for _ in 0..50 {
            assert_ne!(banned.sample(&logits, &[]), best);
            assert_eq!(forced.sample(&logits, &[]), 7);
        }
    }
}
