//! `kiln bench`: prompt-processing and generation speed, reported like llama-bench so the two
//! can be compared by one script (`-o json` uses llama-bench's field names).

use crate::cli::{BenchArgs, OutputFormat};
use crate::load::load_model;
use anyhow::{bail, Result};
use kiln_engine::{default_threads, Engine, EngineConfig, Sequence};
use serde::Serialize;
use std::time::Instant;

/// One test's result, with llama-bench's JSON field names.
#[derive(Serialize, Debug)]
struct Record {
    build_commit: &'static str,
    cpu_info: String,
    model_filename: String,
    model_type: String,
    model_size: u64,
    n_threads: usize,
    n_prompt: usize,
    n_gen: usize,
    avg_ns: u64,
    stddev_ns: u64,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ns: Vec<u64>,
    samples_ts: Vec<f64>,
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Token ids for synthetic prompts: a fixed pseudo-random walk over the vocabulary, as
/// llama-bench uses random tokens (the content does not change the cost).
fn synthetic_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// Seconds to process `tokens` as one prompt in a fresh sequence.
fn time_prompt(engine: &mut Engine, tokens: &[u32]) -> Result<f64> {
    let mut seq = Sequence::default();
    let t = Instant::now();
    engine.set_tokens(&mut seq, tokens)?;
    engine.prefill(&mut seq)?;
    let secs = t.elapsed().as_secs_f64();
    engine.release(&mut seq);
    Ok(secs)
}

/// Seconds to generate `n` tokens one step at a time from an empty context.
fn time_generation(engine: &mut Engine, tokens: &[u32]) -> Result<f64> {
    let mut seq = Sequence::default();
    let t = Instant::now();
    for &tok in tokens {
        seq.tokens.push(tok);
        engine.prefill(&mut seq)?;
    }
    let secs = t.elapsed().as_secs_f64();
    engine.release(&mut seq);
    Ok(secs)
}

pub fn bench(args: BenchArgs) -> Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let (model, tokenizer, _) = load_model(&args.model)?;
    let threads = if args.threads.is_empty() { vec![default_threads()] } else { args.threads.clone() };
    let cfg = model.config().clone();
    let model_size = model.file().file_size();
    let longest = args.n_prompt.iter().chain(&args.n_gen).copied().max().unwrap_or(0);
    let mut engine = Engine::new(
        model,
        tokenizer,
        EngineConfig { n_threads: 1, num_ctx: longest.max(16), ..EngineConfig::default() },
    )?;
    let mut records = Vec::new();
    let tests: Vec<(usize, usize)> = args
        .n_prompt
        .iter()
        .filter(|&&p| p > 0)
        .map(|&p| (p, 0))
        .chain(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| (0, n)))
        .collect();
    for &n_threads in &threads {
        if n_threads == 0 {
            bail!("thread counts must be at least 1");
        }
        engine = engine.with_threads(n_threads);
        for &(n_prompt, n_gen) in &tests {
            let tokens = synthetic_tokens(n_prompt.max(n_gen), cfg.vocab_size);
            let run = |engine: &mut Engine| {
                if n_prompt > 0 {
                    time_prompt(engine, &tokens)
                } else {
                    time_generation(engine, &tokens)
                }
            };
            run(&mut engine)?; // warm-up, as llama-bench does
            let mut secs = Vec::with_capacity(args.repetitions);
            for _ in 0..args.repetitions {
                secs.push(run(&mut engine)?);
            }
            let n = (n_prompt + n_gen) as f64;
            let ts: Vec<f64> = secs.iter().map(|s| n / s).collect();
            let ns: Vec<f64> = secs.iter().map(|s| s * 1e9).collect();
            let (avg_ts, stddev_ts) = mean_sd(&ts);
            let (avg_ns, stddev_ns) = mean_sd(&ns);
            let rec = Record {
                build_commit: env!("CARGO_PKG_VERSION"),
                cpu_info: kiln_quant::kernel_name().to_string(),
                model_filename: args.model.display().to_string(),
                model_type: format!("{} {}L {}d", cfg.arch.name(), cfg.n_layers, cfg.n_embd),
                model_size,
                n_threads,
                n_prompt,
                n_gen,
                avg_ns: avg_ns as u64,
                stddev_ns: stddev_ns as u64,
                avg_ts,
                stddev_ts,
                samples_ns: ns.iter().map(|&x| x as u64).collect(),
                samples_ts: ts,
            };
            if args.output == OutputFormat::Md {
                if records.is_empty() {
                    println!("| model | size | threads | kernels | test | t/s |");
                    println!("| --- | ---: | ---: | --- | ---: | ---: |");
                }
                let test = if n_prompt > 0 { format!("pp{n_prompt}") } else { format!("tg{n_gen}") };
                println!(
                    "| {} | {:.2} MiB | {} | {} | {} | {:.2} ± {:.2} |",
                    rec.model_type,
                    model_size as f64 / (1 << 20) as f64,
                    n_threads,
                    rec.cpu_info,
                    test,
                    avg_ts,
                    stddev_ts
                );
            }
            records.push(rec);
        }
    }
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, s) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((s - 2.138_089_935).abs() < 1e-6);
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
    }

    #[test]
    fn synthetic_tokens_stay_in_vocab() {
        let t = synthetic_tokens(1000, 49152);
        assert!(t.iter().all(|&x| x < 49152));
        assert_eq!(t, synthetic_tokens(1000, 49152));
    }
}
