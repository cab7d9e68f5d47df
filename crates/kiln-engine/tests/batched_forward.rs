//! The forward pass over a flat batch of several sequences gives each sequence the logits it
//! gets alone: tokens of different sequences never see each other's keys and values, and
//! positions and block tables are per sequence.

use kiln_kernels::ThreadPool;
use kiln_models::{Batch, Model, Scratch};
use std::path::Path;

fn check(file: &str) {
    let Some(path) = kiln_testdata::model_path(file) else { return };
    check_model(file, &path);
}

fn check_model(file: &str, path: &Path) {
    let model = Model::load(path, &mut |_, _| {}).unwrap();
    let pool = ThreadPool::new(2);
    let vocab = model.config().vocab_size;
    // Ids past a small vocabulary wrap around.
    let ids = |ids: &[u32]| -> Vec<u32> { ids.iter().map(|&t| t % vocab as u32).collect() };
    let a = ids(&[10, 200, 3000, 45, 6, 700, 80, 9, 1000, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    let b = ids(&[500, 4, 33, 2222, 1]);
    // Alone: each sequence in its own cache, blocks 0.. in order.
    let alone = |tokens: &[u32]| {
        let mut kv = model.new_kv_cache(8, 16);
        let mut batch = Batch::single(tokens, 0, vec![0, 1]);
        batch.logits_for = (0..tokens.len()).collect();
        model.forward(&pool, &batch, &mut kv, &mut Scratch::default()).unwrap()
    };
    let (la, lb) = (alone(&a), alone(&b));
    // Together: one batch, interleaved tokens, scattered blocks (a: 5, 2; b: 7).
    let mut kv = model.new_kv_cache(8, 16);
    let mut batch = Batch { block_tables: vec![vec![5, 2], vec![7]], ..Batch::default() };
    let order: Vec<(usize, usize)> =
        (0..a.len().max(b.len())).flat_map(|i| [(0, i), (1, i)]).filter(|&(s, i)| i < [a.len(), b.len()][s]).collect();
    for &(s, i) in &order {
        batch.tokens.push([&a, &b][s][i]);
        batch.positions.push(i as u32);
        batch.seq.push(s);
    }
    batch.logits_for = (0..order.len()).collect();
    let together = model.forward(&pool, &batch, &mut kv, &mut Scratch::default()).unwrap();
    for (row, &(s, i)) in order.iter().enumerate() {
        let got = &together[row * vocab..(row + 1) * vocab];
        let want = &[&la, &lb][s][i * vocab..(i + 1) * vocab];
        let worst = got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        // Same arithmetic, but each matrix product now quantizes a different set of rows
        // together and attention tiles differ: allow float-noise-level differences only.
        assert!(worst < 1e-3, "{file}: sequence {s} position {i} differs by {worst}");
    }
}

#[test]
fn smollm2_batch_of_two_sequences() {
    check("SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_batch_of_two_sequences() {
    check("gemma-3-270m-q4_k_m.gguf");
}

/// Latent attention's single-head cache and the experts' gathering across sequences, on the
/// tiny DeepSeek V3 reference model.
#[test]
fn deepseek2_batch_of_two_sequences() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf/deepseek2/model.gguf");
    check_model("deepseek2", &path);
}
