//! Element-wise and row-wise operations of the forward pass: norms (RMS and Layer), RoPE,
//! activations.
//!
//! These follow ggml's CPU arithmetic where it changes the numbers (sum of squares in f64,
//! RoPE angles advanced by repeated multiplication in f32, GELU through an f16 table), so
//! that Kiln's logits stay close to llama.cpp's.

use half::f16;
use half::slice::HalfFloatSliceExt;
use std::sync::OnceLock;

/// `out = x / sqrt(mean(x²) + eps) * weight`, one row of `weight.len()` elements.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    debug_assert_eq!(x.len(), out.len());
    let scale = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// `1 / sqrt(mean(x²) + eps)`, the sum of squares taken in f64 as ggml does.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// In-place [`rms_norm`] of each `weight.len()` row of `x` (no scratch: it runs per layer).
pub fn rms_norm_rows_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(weight.len()) {
        let scale = rms_scale(row, eps);
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// How a model's rotary embedding pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): Llama GGUFs (their Q/K rows are permuted at conversion).
    Normal,
    /// Halves (x[i], x[i + d/2]): GPT-NeoX, Gemma, Qwen.
    Neox,
}

/// Rotary position embedding parameters of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    pub style: RopeStyle,
    /// Dimensions rotated at the start of each head; the rest pass through.
    pub n_dims: usize,
    pub freq_base: f32,
    /// Linear position scaling (1.0 = none).
    pub freq_scale: f32,
    /// Per-pair divisors of the rotation frequency (`n_dims / 2` of them): Llama 3.1+'s RoPE
    /// scaling, which GGUF files carry as the `rope_freqs.weight` tensor.
    pub freq_factors: Option<std::sync::Arc<[f32]>>,
    /// Multiplies cos and sin (LongRoPE's attention factor, YaRN's magnitude correction; 1.0 =
    /// none).
    pub attn_factor: f32,
    /// YaRN: which pairs keep their original frequency instead of the scaled one.
    pub yarn: Option<YarnRamp>,
}

/// YaRN's blend of interpolated (`freq_scale`d) and original angles per dimension pair, as
/// llama.cpp's `rope_yarn` does: pairs below `low` turn at their original speed (they complete
/// many turns within the trained context), pairs above `high` are interpolated, and the ones
/// between are mixed linearly. Its cos/sin magnitude correction is part of `Rope::attn_factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YarnRamp {
    /// Weight of the original angle where the ramp says so (1.0 for YaRN).
    pub ext_factor: f32,
    /// Correction range in dimension pairs.
    pub low: f32,
    pub high: f32,
}

impl YarnRamp {
    /// The ramp for `n_dims` rotated dimensions trained on `orig_ctx` positions: from the pair
    /// that turns `beta_fast` times within the context to the one that turns `beta_slow` times
    /// (rounded outwards, clamped to the pairs that exist).
    pub fn new(
        n_dims: usize,
        orig_ctx: usize,
        freq_base: f32,
        beta_fast: f32,
        beta_slow: f32,
        ext_factor: f32,
    ) -> Self {
        let corr_dim = |rotations: f32| {
            n_dims as f32 * (orig_ctx as f32 / (rotations * 2.0 * std::f32::consts::PI)).ln() / (2.0 * freq_base.ln())
        };
        YarnRamp {
            ext_factor,
            low: corr_dim(beta_fast).floor().max(0.0),
            high: corr_dim(beta_slow).ceil().min(n_dims as f32 - 1.0),
        }
    }

    /// How much of the original angle pair `i` keeps.
    fn extrapolation(&self, i: usize) -> f32 {
        let y = (i as f32 - self.low) / (self.high - self.low).max(0.001);
        (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor
    }
}

impl Rope {
    /// The (cos, sin) pairs for position `pos`, `n_dims / 2` of each.
    ///
    /// The angle is advanced by repeated multiplication in f32, as ggml does, rather than by
    /// `powf` per dimension: the two differ in the last bits and the difference shows in logits.
    pub fn cos_sin(&self, pos: u32, cos: &mut [f32], sin: &mut [f32]) {
        let theta_scale = self.freq_base.powf(-2.0 / self.n_dims as f32);
        let mut theta = pos as f32;
        for (i, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).take(self.n_dims / 2).enumerate() {
            let factor = self.freq_factors.as_ref().map_or(1.0, |f| f[i]);
            let original = theta / factor;
            let scaled = self.freq_scale * original;
            let t = match &self.yarn {
                Some(ramp) => {
                    let mix = ramp.extrapolation(i);
                    scaled * (1.0 - mix) + original * mix
                }
                None => scaled,
            };
            *c = t.cos() * self.attn_factor;
            *s = t.sin() * self.attn_factor;
            theta *= theta_scale;
        }
    }

    /// Rotates every head of `x` (`n_heads` heads of `head_dim`) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: u32) {
        let half = self.n_dims / 2;
        let mut cos = [0f32; 256];
        let mut sin = [0f32; 256];
        assert!(half <= cos.len(), "rope dimension {} too large", self.n_dims);
        self.cos_sin(pos, &mut cos[..half], &mut sin[..half]);
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match self.style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// SiLU-gated product used by Llama-style feed-forward blocks: `out = silu(gate) * up`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU (tanh form) of every f16 value, rounded to f16 (ggml evaluates GELU through such a
/// table), stored widened to f32 so a lookup needs no conversion.
fn gelu_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX).map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_f32()).collect()
    })
}

/// GELU of `x` through the f16 table (`h` is `x` as f16), saturating outside ±10 as ggml does.
#[inline]
fn gelu_lookup(table: &[f32], x: f32, h: f16) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[h.to_bits() as usize]
    }
}

/// GELU-gated product used by Gemma's feed-forward blocks: `out = gelu(gate) * up`.
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let table = gelu_table();
    // The table index is the f16 of the input; convert a chunk at a time (SIMD) rather than
    // one value at a time.
    let mut halves = [f16::ZERO; 256];
    for ((g, u), o) in gate.chunks(256).zip(up.chunks(256)).zip(out.chunks_mut(256)) {
        let h = &mut halves[..g.len()];
        h.convert_from_f32_slice(g);
        for (((o, &x), &u), h) in o.iter_mut().zip(g).zip(u).zip(h.iter()) {
            *o = gelu_lookup(table, x, *h) * u;
        }
    }
}

/// In-place GELU (BERT's feed-forward activation), computed as [`geglu`]'s gate.
pub fn gelu_inplace(x: &mut [f32]) {
    let table = gelu_table();
    let mut halves = [f16::ZERO; 256];
    for c in x.chunks_mut(256) {
        let h = &mut halves[..c.len()];
        h.convert_from_f32_slice(c);
        for (v, h) in c.iter_mut().zip(h.iter()) {
            *v = gelu_lookup(table, *v, *h);
        }
    }
}

/// `out = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`, one row (BERT's LayerNorm).
/// The mean and the variance are summed in f64, as ggml's `norm` does.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert!(x.len() == weight.len() && x.len() == bias.len() && x.len() == out.len());
    let n = x.len() as f64;
    let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
    let mut sum2 = 0f64;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - mean;
        sum2 += (*o * *o) as f64;
    }
    let scale = 1.0 / ((sum2 / n) as f32 + eps).sqrt();
    for ((o, &w), &b) in out.iter_mut().zip(weight).zip(bias) {
        *o = *o * scale * w + b;
    }
}

/// `x += y`
pub fn add_inplace(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `x *= s`
pub fn scale_inplace(x: &mut [f32], s: f32) {
    for a in x.iter_mut() {
        *a *= s;
    }
}

/// Index of the largest value (the first one on ties); NaN never wins.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 5.0];
        let w = [1.0f32, 2.0, 1.0, 0.5];
        let mut out = [0f32; 4];
        rms_norm(&x, &w, 0.0, &mut out);
        let rms = ((9.0 + 16.0 + 25.0) / 4.0f32).sqrt();
        let want = [3.0 / rms, -8.0 / rms, 0.0, 2.5 / rms];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn in_place_rows_equal_out_of_place() {
        let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let w = [0.5f32, 1.0, 2.0, -1.0];
        let mut inplace = x.clone();
        rms_norm_rows_inplace(&mut inplace, &w, 1e-6);
        for (row_in, row_out) in x.chunks(4).zip(inplace.chunks(4)) {
            let mut want = [0f32; 4];
            rms_norm(row_in, &w, 1e-6, &mut want);
            assert_eq!(row_out, want);
        }
    }

    #[test]
    fn rope_rotates_pairs_and_keeps_norm() {
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            let rope = Rope {
                style,
                n_dims: 8,
                freq_base: 10000.0,
                freq_scale: 1.0,
                freq_factors: None,
                attn_factor: 1.0,
                yarn: None,
            };
            let orig: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut x = orig.clone();
            rope.apply(&mut x, 8, 7);
            for h in 0..2 {
                let n0: f32 = orig[h * 8..h * 8 + 8].iter().map(|v| v * v).sum();
                let n1: f32 = x[h * 8..h * 8 + 8].iter().map(|v| v * v).sum();
                assert!((n0 - n1).abs() < 1e-5);
            }
            // Dimension pair 0 rotates by exactly `pos` radians.
            let (a, b) = if style == RopeStyle::Normal { (0, 1) } else { (0, 4) };
            let (c, s) = (7f32.cos(), 7f32.sin());
            assert!((x[a] - (orig[a] * c - orig[b] * s)).abs() < 1e-6);
            assert!((x[b] - (orig[a] * s + orig[b] * c)).abs() < 1e-6);
            // Position 0 is the identity.
            let mut y = orig.clone();
            rope.apply(&mut y, 8, 0);
            assert_eq!(y, orig);
        }
    }

    /// Plain NeoX RoPE over the first 4 dimensions of each head.
    fn neox4() -> Rope {
        Rope {
            style: RopeStyle::Neox,
            n_dims: 4,
            freq_base: 10000.0,
            freq_scale: 1.0,
            freq_factors: None,
            attn_factor: 1.0,
            yarn: None,
        }
    }

    #[test]
    fn frequency_factors_slow_their_pairs_down() {
        let plain = neox4();
        let scaled = Rope { freq_factors: Some(vec![1.0, 8.0].into()), ..plain.clone() };
        let (mut c0, mut s0, mut c1, mut s1) = ([0f32; 2], [0f32; 2], [0f32; 2], [0f32; 2]);
        plain.cos_sin(5, &mut c0, &mut s0);
        scaled.cos_sin(5, &mut c1, &mut s1);
        // Pair 0 is unchanged; pair 1 turns eight times slower.
        assert_eq!((c0[0], s0[0]), (c1[0], s1[0]));
        let slow = 5.0 * 10000f32.powf(-0.5) / 8.0;
        assert!((c1[1] - slow.cos()).abs() < 1e-6 && (s1[1] - slow.sin()).abs() < 1e-6);
        // The attention factor scales both.
        let louder = Rope { attn_factor: 2.0, ..plain.clone() };
        let (mut c2, mut s2) = ([0f32; 2], [0f32; 2]);
        louder.cos_sin(5, &mut c2, &mut s2);
        assert_eq!((c2[1], s2[1]), (2.0 * c0[1], 2.0 * s0[1]));
    }

    /// 16 rotated dims, an original context of 16, base 100, beta 32 / 1: llama.cpp's
    /// `ggml_rope_yarn_corr_dims` gives -4.4 and 1.6, rounded outwards and clamped to 0 and 2.
    #[test]
    fn yarn_keeps_fast_pairs_and_scales_slow_ones() {
        let ramp = YarnRamp::new(16, 16, 100.0, 32.0, 1.0, 1.0);
        assert_eq!((ramp.low, ramp.high), (0.0, 2.0));
        let plain = Rope { style: RopeStyle::Neox, n_dims: 16, freq_base: 100.0, ..neox4() };
        let yarn = Rope { freq_scale: 0.25, yarn: Some(ramp), ..plain.clone() };
        let interpolated = Rope { freq_scale: 0.25, ..plain.clone() };
        let (mut c, mut s) = ([[0f32; 8]; 3], [[0f32; 8]; 3]);
        for (i, rope) in [&plain, &yarn, &interpolated].into_iter().enumerate() {
            rope.cos_sin(11, &mut c[i], &mut s[i]);
        }
        // Pair 0 keeps its original angle, pairs from 2 on are fully interpolated, and pair 1
        // is half and half.
        assert_eq!((c[1][0], s[1][0]), (c[0][0], s[0][0]));
        for i in 2..8 {
            assert_eq!((c[1][i], s[1][i]), (c[2][i], s[2][i]));
        }
        let original = 11.0 * 100f32.powf(-2.0 / 16.0);
        let mixed = original * 0.25 * 0.5 + original * 0.5;
        assert!((c[1][1] - mixed.cos()).abs() < 1e-5 && (s[1][1] - mixed.sin()).abs() < 1e-5);
    }

    #[test]
    fn partial_rope_leaves_the_tail() {
        let rope = neox4();
        let orig: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        let mut x = orig.clone();
        rope.apply(&mut x, 8, 3);
        assert_eq!(&x[4..], &orig[4..]);
        assert_ne!(&x[..4], &orig[..4]);
    }

    #[test]
    fn activations() {
        let mut out = [0f32; 3];
        swiglu(&[0.0, 1.0, -1.0], &[2.0, 2.0, 2.0], &mut out);
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 2.0 * 0.731_058_6).abs() < 1e-6);
        assert!((out[2] + 2.0 * 0.268_941_4).abs() < 1e-6);
        geglu(&[0.0, 1.0, -20.0, 20.0], &[1.0, 1.0, 1.0, 1.0], &mut [0f32; 4]);
        let mut g = [0f32; 4];
        geglu(&[0.0, 1.0, -20.0, 20.0], &[1.0, 3.0, 1.0, 1.0], &mut g);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 3.0 * 0.841_192).abs() < 3e-3, "{}", g[1]); // f16 table precision
        assert_eq!(g[2], 0.0);
        assert_eq!(g[3], 20.0);
    }

    #[test]
    fn gelu_is_the_gate_of_geglu() {
        let x: Vec<f32> = (0..600).map(|i| (i as f32 - 300.0) * 0.05).collect();
        let mut gated = vec![0f32; x.len()];
        geglu(&x, &vec![1.0; x.len()], &mut gated);
        let mut plain = x.clone();
        gelu_inplace(&mut plain);
        assert_eq!(plain, gated);
        assert!((plain[320] - gelu_tanh(1.0)).abs() < 2e-3);
    }

    #[test]
    fn layer_norm_centres_scales_and_shifts() {
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let mut out = [0f32; 4];
        layer_norm(&x, &[1.0, 1.0, 2.0, 1.0], &[0.0, 0.5, 0.0, -1.0], 0.0, &mut out);
        // mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
        let sd = 3.5f32.sqrt();
        let want = [-2.0 / sd, -1.0 / sd + 0.5, 0.0, 3.0 / sd - 1.0];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn argmax_first_max_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }
}
