//! Continuous batching on the real model: answers do not depend on what else runs, shared
//! prefixes are computed once, and cancelled or finished requests give their blocks back.

use kiln_engine::sampler::SamplingParams;
use kiln_engine::scheduler::{Event, Scheduler, SchedulerConfig, SchedulerStats};
use kiln_engine::{Engine, EngineConfig, GenerateOptions, GenerationStats, Sequence};
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;
use std::collections::HashMap;

fn engine(capacity: usize) -> Option<Engine> {
    let path = kiln_testdata::model_path(kiln_testdata::SMOLLM2)?;
    let model = Model::load(&path, &mut |_, _| {}).unwrap();
    let tokenizer = Tokenizer::from_gguf(model.file()).unwrap();
    let config = EngineConfig { n_threads: 2, num_ctx: capacity, prefill_chunk: 512 };
    Some(Engine::new(model, tokenizer, config).unwrap())
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams { repeat_penalty: 1.0, ..SamplingParams::greedy() },
        max_tokens: Some(max_tokens),
        stop: vec![],
        grammar: None,
        grammar_after: None,
        logprobs: None,
    }
}

const PROMPTS: [&str; 16] = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The three primary colours are",
    "def fibonacci(n):",
    "Water boils at a temperature of",
    "The largest planet in the solar system is",
    "To make a cup of tea, first",
    "In 1969, the first humans",
    "The quick brown fox",
    "A haiku about the sea:",
    "The recipe for pancakes needs",
    "Photosynthesis is the process by which",
    "My favourite book is",
    "The square root of 144 is",
    "Rust is a programming language that",
    "The train left the station at",
];

/// Runs every request to the end; returns each one's text and stats.
fn run_all(s: &mut Scheduler) -> HashMap<u64, (String, GenerationStats)> {
    let mut text: HashMap<u64, String> = HashMap::new();
    let mut done = HashMap::new();
    while !s.is_idle() {
        for (id, ev) in s.step() {
            match ev {
                Event::Text(t) => text.entry(id).or_default().push_str(&t),
                Event::Logprob(_) => {}
                Event::Done(st) => {
                    done.insert(id, (text.remove(&id).unwrap_or_default(), st));
                }
                Event::Failed(e) => panic!("request {id} failed: {e}"),
            }
        }
    }
    done
}

fn alone(e: &mut Engine, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let mut seq = Sequence::default();
    e.set_tokens(&mut seq, prompt).unwrap();
    let stats = e.generate(&mut seq, &greedy(max_tokens), &mut |_| true).unwrap();
    e.release(&mut seq);
    stats.generated
}

#[test]
fn answers_are_the_same_alone_and_among_fifteen_others() {
    let Some(mut single) = engine(4096) else { return };
    let tok = |p: &str| single.tokenizer().encode(p, true, true);
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| tok(p)).collect();
    let want: Vec<Vec<u32>> = prompts.iter().map(|p| alone(&mut single, p, 24)).collect();

    let mut s = Scheduler::new(engine(16 * 256).unwrap(), SchedulerConfig { max_running: 16, step_tokens: 512 });
    for (i, p) in prompts.iter().enumerate() {
        s.add(i as u64, p.clone(), &greedy(24), 4096).unwrap();
    }
    let got = run_all(&mut s);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&got[&(i as u64)].1.generated, w, "prompt {i} ({:?})", PROMPTS[i]);
    }
    assert_eq!(s.stats().blocks_used, 0, "finished requests hold no blocks");
}

#[test]
fn a_small_cache_preempts_and_every_request_still_completes() {
    let Some(mut single) = engine(4096) else { return };
    let prompts: Vec<Vec<u32>> = PROMPTS[..6].iter().map(|p| single.tokenizer().encode(p, true, true)).collect();
    let want: Vec<Vec<u32>> = prompts.iter().map(|p| alone(&mut single, p, 40)).collect();
    // Eight blocks of 16 tokens: not enough for six sequences of ~50 tokens at once.
    let mut s = Scheduler::new(engine(8 * 16).unwrap(), SchedulerConfig { max_running: 6, step_tokens: 64 });
    for (i, p) in prompts.iter().enumerate() {
        s.add(i as u64, p.clone(), &greedy(40), 4096).unwrap();
    }
    let got = run_all(&mut s);
    let preempted: Vec<usize> = (0..prompts.len()).filter(|i| got[&(*i as u64)].1.preemptions > 0).collect();
    assert!(!preempted.is_empty() && preempted.len() < prompts.len(), "preempted: {preempted:?}");
    for (i, w) in want.iter().enumerate() {
        let st = &got[&(i as u64)].1;
        assert_eq!(st.generated.len(), w.len(), "prompt {i} runs to its limit");
        // A preempted sequence is recomputed by a prompt pass, whose sums run in another order
        // than the token-by-token pass it replaces (as in llama.cpp); a near-tie may then
        // resolve differently later on. The sequences never preempted must not change at all.
        if st.preemptions == 0 {
            assert_eq!(&st.generated, w, "prompt {i}");
        }
    }
}

#[test]
fn a_shared_prefix_is_computed_once_and_its_blocks_are_shared() {
    let Some(e) = engine(4096) else { return };
    let system: String = (0..40).map(|i| format!("Rule {i}: answer briefly and politely. ")).collect();
    let ask = |q: &str| e.tokenizer().encode(&format!("{system}\nQuestion: {q}\nAnswer:"), true, true);
    let (a, b, c) = (ask("What is two plus two?"), ask("Name a colour."), ask("Name an animal."));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert!(common > 300, "the prompts share {common} tokens");
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 4, step_tokens: 512 });

    s.add(1, a.clone(), &greedy(4), 4096).unwrap();
    let first = run_all(&mut s)[&1].1.clone();
    assert_eq!((first.prompt_cached, first.prompt_eval_count), (0, a.len()));

    // The second request computes only what follows the cached full blocks.
    s.add(2, b.clone(), &greedy(4), 4096).unwrap();
    let second = run_all(&mut s)[&2].1.clone();
    let cached = common / 16 * 16;
    assert_eq!(second.prompt_cached, cached);
    assert_eq!(second.prompt_eval_count, b.len() - cached);

    // Two at once share the prefix's blocks instead of holding copies.
    s.add(3, b.clone(), &greedy(4), 4096).unwrap();
    s.add(4, c.clone(), &greedy(4), 4096).unwrap();
    s.step();
    let SchedulerStats { blocks_used, running, .. } = s.stats();
    assert_eq!(running, 2);
    let own = |p: &[u32]| p.len().div_ceil(16) - cached / 16;
    assert_eq!(blocks_used, cached / 16 + own(&b) + own(&c));
    let (hits, lookups) = (s.stats().prefix_hits, s.stats().prefix_lookups);
    assert!(hits > 0 && hits <= lookups);
    run_all(&mut s);
}

#[test]
fn cancelling_frees_blocks_at_once_and_bad_requests_fail_early() {
    let Some(e) = engine(1024) else { return };
    let prompt = e.tokenizer().encode("Once upon a time, in a land far away, there lived", true, true);
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 2, step_tokens: 512 });
    s.add(7, prompt.clone(), &greedy(500), 1024).unwrap();
    s.step();
    s.step();
    assert!(s.stats().blocks_used > 0);
    s.cancel(7);
    assert_eq!((s.stats().blocks_used, s.stats().running), (0, 0));
    assert!(s.is_idle());

    let long: Vec<u32> = std::iter::repeat_n(prompt[1], 2000).collect();
    assert!(matches!(s.add(8, long, &greedy(1), 4096), Err(kiln_engine::EngineError::PromptTooLong { .. })));
    assert!(matches!(s.add(9, vec![], &greedy(1), 4096), Err(kiln_engine::EngineError::EmptyPrompt)));
    let bad =
        GenerateOptions { sampling: SamplingParams { temperature: -1.0, ..SamplingParams::default() }, ..greedy(1) };
    assert!(s.add(10, prompt, &bad, 1024).is_err());
    assert!(s.is_idle());
}

#[test]
fn constrained_answers_match_their_grammar_and_leave_the_others_unchanged() {
    use kiln_engine::constraint::Grammar;
    let Some(mut single) = engine(4096) else { return };
    let tok = |p: &str| single.tokenizer().encode(p, true, true);
    let free: Vec<Vec<u32>> = PROMPTS[..4].iter().map(|p| tok(p)).collect();
    let constrained_prompt = tok("The capital of France, as JSON:");
    let want: Vec<Vec<u32>> = free.iter().map(|p| alone(&mut single, p, 24)).collect();
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "city": { "type": "string", "maxLength": 12 }, "rank": { "type": "integer", "minimum": 1, "maximum": 9 } },
        "required": ["city", "rank"],
        "additionalProperties": false
    });
    let constrained = [
        Grammar::JsonSchema { schema, strict: true },
        Grammar::Regex("[0-9]{4}-[0-9]{2}-[0-9]{2}".into()),
        Grammar::Choice(vec!["Paris".into(), "Rome".into()]),
    ];

    let mut s = Scheduler::new(engine(8 * 256).unwrap(), SchedulerConfig { max_running: 8, step_tokens: 512 });
    for (i, p) in free.iter().enumerate() {
        s.add(i as u64, p.clone(), &greedy(24), 4096).unwrap();
    }
    for (i, g) in constrained.iter().enumerate() {
        let opts = GenerateOptions { grammar: Some(g.clone()), ..greedy(48) };
        s.add(100 + i as u64, constrained_prompt.clone(), &opts, 4096).unwrap();
    }
    let got = run_all(&mut s);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&got[&(i as u64)].1.generated, w, "prompt {i} changed beside constrained requests");
    }
    let (json, st) = &got[&100];
    assert_eq!(st.done_reason, kiln_engine::DoneReason::Stop, "{json}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json:?}: {e}"));
    assert!(v["city"].as_str().is_some_and(|c| c.chars().count() <= 12), "{v}");
    assert!(v["rank"].as_i64().is_some_and(|r| (1..=9).contains(&r)), "{v}");
    let date = &got[&101].0;
    assert!(
        date.len() == 10
            && date.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() }),
        "{date:?}"
    );
    assert!(["Paris", "Rome"].contains(&got[&102].0.as_str()), "{:?}", got[&102].0);
    assert_eq!(s.stats().blocks_used, 0);
}

#[test]
fn an_invalid_grammar_is_refused_when_the_request_is_added() {
    use kiln_engine::constraint::{ConstraintError, Grammar};
    let Some(e) = engine(256) else { return };
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 1, step_tokens: 512 });
    let opts = GenerateOptions { grammar: Some(Grammar::Regex("(".into())), ..greedy(4) };
    let err = s.add(0, vec![1, 2, 3], &opts, 256).unwrap_err();
    assert!(matches!(err, kiln_engine::EngineError::Constraint(ConstraintError::Invalid(_))), "{err}");
    assert!(s.is_idle());
}

#[test]
fn a_grammar_after_a_closing_text_leaves_what_comes_before_free() {
    use kiln_engine::constraint::Grammar;
    let Some(mut e) = engine(1024) else { return };
    let prompt = e.tokenizer().encode("The capital of France is", true, true);
    let free = alone(&mut e, &prompt, 8);
    // The free answer's first two tokens stand for a thinking block and its closing tag.
    let closing = e.tokenizer().decode(&free[..2], false);
    let opts = GenerateOptions {
        grammar: Some(Grammar::Regex("[0-9]{3}".into())),
        grammar_after: Some(closing.clone()),
        ..greedy(16)
    };
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 1, step_tokens: 512 });
    s.add(0, prompt, &opts, 1024).unwrap();
    let got = run_all(&mut s);
    let (text, st) = &got[&0];
    assert_eq!(st.generated[..2], free[..2], "the text before the closing one is the free answer");
    let rest =
        text.strip_prefix(closing.as_str()).unwrap_or_else(|| panic!("{text:?} does not start with {closing:?}"));
    assert!(rest.len() == 3 && rest.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
    assert_eq!(st.done_reason, kiln_engine::DoneReason::Stop);
}

/// Log-softmax computed here, in f64, independently of the engine's.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln();
    logits.iter().map(|&l| l as f64 - lse).collect()
}

#[test]
fn reported_logprobs_are_the_log_softmax_of_the_logits_at_each_position() {
    let Some(e) = engine(1024) else { return };
    let prompt = e.tokenizer().encode("The three primary colours are", true, true);
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 1, step_tokens: 512 });
    // Sampled, with penalties: the logprobs still describe the raw logits.
    let sampling = SamplingParams { seed: Some(7), ..SamplingParams::default() };
    let opts = GenerateOptions { sampling, logprobs: Some(5), ..greedy(12) };
    s.add(0, prompt.clone(), &opts, 1024).unwrap();
    let mut reported = Vec::new();
    let mut generated = Vec::new();
    while !s.is_idle() {
        for (_, ev) in s.step() {
            match ev {
                Event::Logprob(lp) => reported.push(lp),
                Event::Done(st) => generated = st.generated,
                Event::Text(_) => {}
                Event::Failed(e) => panic!("{e}"),
            }
        }
    }
    assert!(!generated.is_empty());
    assert_eq!(reported.iter().map(|lp| lp.chosen.token).collect::<Vec<_>>(), generated);

    // Recompute the logits the way the scheduler did (the prompt in one chunk, then one token
    // per step): a teacher-forced pass over everything at once sums in another order, and its
    // logits differ by more than the check should allow.
    let mut e = s.into_engine();
    let mut seq = Sequence::default();
    e.set_tokens(&mut seq, &prompt).unwrap();
    let mut rows = vec![e.prefill(&mut seq).unwrap()];
    for &t in &generated[..generated.len() - 1] {
        seq.tokens.push(t);
        rows.push(e.prefill(&mut seq).unwrap());
    }
    e.release(&mut seq);
    for (i, lp) in reported.iter().enumerate() {
        let row = log_softmax(&rows[i]);
        let want = row[lp.chosen.token as usize];
        assert!((lp.chosen.logprob as f64 - want).abs() < 1e-3, "token {i}: {} vs {want}", lp.chosen.logprob);
        assert_eq!(lp.chosen.bytes, e.tokenizer().token_to_piece(lp.chosen.token, false));
        assert_eq!(lp.top.len(), 5);
        assert!(lp.top.windows(2).all(|w| w[0].logprob >= w[1].logprob), "not sorted: {:?}", lp.top);
        for alt in &lp.top {
            assert!((alt.logprob as f64 - row[alt.token as usize]).abs() < 1e-3);
        }
        // Nothing outside the list is more likely than its last entry.
        let last = lp.top[4].logprob as f64;
        let above = row.iter().filter(|&&l| l > last + 1e-3).count();
        assert!(above <= 4, "{above} tokens beat the fifth alternative");
    }
}

#[test]
fn forks_compute_the_prompt_once_and_answer_with_their_own_random_streams() {
    let Some(e) = engine(4096) else { return };
    let prompt: Vec<u32> = e.tokenizer().encode(&"Tell me a story about a dragon. ".repeat(6), true, true);
    assert!(prompt.len() > 40, "the prompt fills several blocks");
    let mut s = Scheduler::new(e, SchedulerConfig { max_running: 8, step_tokens: 512 });
    // Every fork holds the parent's full blocks; only what follows them is computed again.
    let shared = (prompt.len() - 1) / 16 * 16;

    let seeded = |seed| GenerateOptions {
        sampling: SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            seed: Some(seed),
            ..SamplingParams::default()
        },
        ..greedy(12)
    };
    s.add(0, prompt.clone(), &seeded(1), 4096).unwrap();
    for i in 1..4 {
        s.add_fork(i, 0, prompt.clone(), &seeded(1 + i), 4096).unwrap();
    }
    let done = run_all(&mut s);
    assert_eq!(done.len(), 4);
    assert_eq!((done[&0].1.prompt_cached, done[&0].1.prompt_eval_count), (0, prompt.len()));
    for i in 1..4 {
        assert_eq!(done[&i].1.prompt_cached, shared, "fork {i}");
        assert_eq!(done[&i].1.prompt_eval_count, prompt.len() - shared, "fork {i}");
    }
    let texts: std::collections::HashSet<&str> = done.values().map(|(t, _)| t.as_str()).collect();
    assert!(texts.len() > 1, "four seeded answers are all {texts:?}");

    // Greedy forks answer exactly as the parent does.
    s.add(10, prompt.clone(), &greedy(12), 4096).unwrap();
    s.add_fork(11, 10, prompt.clone(), &greedy(12), 4096).unwrap();
    let done = run_all(&mut s);
    assert_eq!(done[&10].0, done[&11].0);
    assert_eq!(done[&10].1.generated, done[&11].1.generated);
}
