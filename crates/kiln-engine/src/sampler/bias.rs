//! OpenAI's `logit_bias`: per-token offsets added to the logits before every other sampler,
//! as llama.cpp orders it, so that penalties, top-k and top-p see the biased values.

/// Largest bias either way. At `-MAX_BIAS` a token is banned outright rather than made very
/// unlikely, which is what OpenAI documents -100 to mean; `+MAX_BIAS` is large enough against
/// real logits to force a token.
pub const MAX_BIAS: f32 = 100.0;

/// Adds each bias to its token's logit; ids outside the row are ignored (the engine refuses
/// them before sampling starts).
pub(super) fn apply(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        if let Some(logit) = logits.get_mut(id as usize) {
            *logit = if b <= -MAX_BIAS { f32::NEG_INFINITY } else { *logit + b };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biases_add_and_the_lowest_bans() {
        let mut logits = [1.0, 2.0, 3.0];
        apply(&mut logits, &[(0, 0.5), (2, -MAX_BIAS), (7, 5.0)]);
        assert_eq!(logits, [1.5, 2.0, f32::NEG_INFINITY]);
    }
}
