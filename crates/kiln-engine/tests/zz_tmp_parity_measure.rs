// TEMPORARY measurement harness (to be deleted).
use kiln_engine::{Engine, EngineConfig};
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;
use serde_json::Value;
use std::path::PathBuf;

fn ids(v: &Value) -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() }
fn floats(v: &Value) -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() }

fn measure(model_file: &str, fixture_file: &str) {
    let path = PathBuf::from("/work/cache/models").join(model_file);
    let model = Model::load(&path, &mut |_, _| {}).unwrap();
    let tok = Tokenizer::from_gguf(model.file()).unwrap();
    let mut engine = Engine::new(model, tok, EngineConfig { n_threads: 2, num_ctx: 1024, prefill_chunk: 512 }).unwrap();
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llamacpp").join(fixture_file)).unwrap()).unwrap();
    let fixed_ids = ids(&fx["fixed_ids"]);
    let mut worst = 0f32;
    for (ci, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let prompt_tokens = ids(&case["prompt_tokens"]);
        let greedy = ids(&case["greedy"]);
        let all: Vec<u32> = prompt_tokens.iter().chain(&greedy).copied().collect();
        let logits = engine.logits_all(&all).unwrap();
        let pert = std::env::var("MEAS_PERTURB").ok();
        let logits2 = pert.as_ref().map(|p| { std::env::set_var("KILN_PERTURB", p); let l = engine.logits_all(&all).unwrap(); std::env::remove_var("KILN_PERTURB"); l });
        let (mut pw, mut ps2, mut pn) = (0f32, 0f64, 0usize);
        let (mut cw, mut s2, mut n, mut first) = (0f32, 0f64, 0usize, 0f32);
        for (i, pos) in case["teacher_forced"].as_array().unwrap().iter().enumerate() {
            let row = &logits[prompt_tokens.len() - 1 + i];
            for (&id, &want) in ids(&pos["top_ids"]).iter().zip(&floats(&pos["top_logits"])).chain(fixed_ids.iter().zip(&floats(&pos["fixed_logits"]))) {
                let d = (row[id as usize] - want).abs();
                cw = cw.max(d); s2 += (d as f64).powi(2); n += 1;
                if i == 0 { first = first.max(d); }
                if let Some(l2) = &logits2 { let e = (l2[prompt_tokens.len() - 1 + i][id as usize] - row[id as usize]).abs(); pw = pw.max(e); ps2 += (e as f64).powi(2); pn += 1; }
            }
        }
        worst = worst.max(cw);
        eprintln!("{model_file} case {ci} (prompt {} tok): worst {cw:.4} rms {:.4} pos0-worst {first:.4} | kiln-vs-perturbed worst {pw:.4} rms {:.4}", prompt_tokens.len(), (s2 / n as f64).sqrt(), (ps2 / pn.max(1) as f64).sqrt());
    }
    eprintln!("{model_file}: WORST {worst:.4}");
}

#[test]
fn measure_both() {
    measure("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2.json");
    measure("gemma-3-270m-q4_k_m.gguf", "gemma3.json");
}
