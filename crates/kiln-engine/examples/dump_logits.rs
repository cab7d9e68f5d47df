//! Prints Kiln's logits at the last position for the given token ids (debugging aid):
//!     cargo run --release -p kiln-engine --example dump_logits -- MODEL.gguf 504 3575 ...
use kiln_engine::{Engine, EngineConfig};
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = Model::load(args[1].as_ref(), &mut |_, _| {}).expect("model");
    let tok = Tokenizer::from_gguf(model.file()).expect("tokenizer");
    let mut engine = Engine::new(model, tok, EngineConfig { n_threads: 1, num_ctx: 512, prefill_chunk: 512 }).unwrap();
    let ids: Vec<u32> = args[2..].iter().map(|s| s.parse().unwrap()).collect();
    let logits = engine.logits_all(&ids).unwrap();
    let last = logits.last().unwrap();
    for id in [0usize, 1, 2, 100, 1000, 7042, 260] {
        println!("{id} {}", last[id]);
    }
}
