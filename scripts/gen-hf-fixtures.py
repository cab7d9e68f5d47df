#!/usr/bin/env python3
"""Generates reference fixtures from Hugging Face `transformers` for Kiln's model architectures.

For each architecture: a tiny random-weight model built with `transformers` (fixed seed,
float32), saved as a Hugging Face directory, converted to GGUF (F32) by llama.cpp's own
convert_hf_to_gguf.py, and the logits transformers computes for a fixed token sequence. Kiln's
tests load the GGUF, feed the same token ids and compare their logits with these, so they check
Kiln's forward pass against the reference implementation of each architecture without needing
torch (CI never runs this script).

Output, per architecture, under crates/kiln-models/tests/fixtures/hf/<arch>/:
  hf/            config.json, model.safetensors, tokenizer.json, tokenizer_config.json, ...
  model.gguf     the converter's output, --outtype f32
  reference.json {arch, tokens, logits (one row of vocab floats per position), greedy (32 ids
                 that generate(do_sample=False) appends after the tokens), ...}

Why the weights are re-initialized: transformers' default init (std 0.02, zero biases, unit norm
weights) gives logits that are nearly all zero and equal, where a wrong forward pass can still
match. Every weight and bias is drawn from N(0, 0.1^2) instead, and every norm weight from
1 + N(0, 0.1^2), so that biases and norm weights matter and logits spread over about +-2.

The tokenizer is a tiny byte-level BPE trained here on tests/corpus/tokenizer.jsonl (the same
one for every architecture). Its token ids are what is tested, not its tokenization: Kiln's tests
feed ids directly. convert_hf_to_gguf.py recognises a BPE pre-tokenizer only by hashing the ids
a known upstream tokenizer gives for a test string, which no newly trained vocabulary can match;
so this script declares the pre-tokenizer instead (`qwen2`: the tokenizer is built with exactly
Qwen2's split regex and NFC normalizer) by replacing the converter's detection function for the
run. Everything else in the conversion is the converter's own code.

Usage (from the repository root; the venv comes from scripts/hf-env.sh):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-hf-fixtures.py [--arch qwen2 --arch qwen3 ...]
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/kiln-models/tests/fixtures/hf"
CORPUS = ROOT / "tests/corpus/tokenizer.jsonl"

VOCAB = 512
N_TOKENS = 40  # longer than mistral's sliding window (8), well inside max_position_embeddings
N_GREEDY = 32
INIT_STD = 0.1

BOS, EOS, PAD = "<|begin_of_text|>", "<|im_end|>", "<|endoftext|>"
SPECIALS = [PAD, BOS, "<|im_start|>", EOS]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Qwen2's pre-tokenizer split (from its tokenizer.json); llama.cpp's `qwen2` pre-tokenizer.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZER = "qwen2"

# The shape every architecture shares: big enough to have grouped-query attention (4 query heads,
# 2 KV heads), several layers and a real head_dim, small enough that a fixture stays < 1.5 MB.
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=128,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    dtype="float32",
)

# Per architecture: the transformers model_type and what differs from COMMON. Values away from
# the defaults (rope_theta, eps) make sure the GGUF metadata is read rather than assumed.
ARCHS = {
    # QKV projections with bias; NEOX-style rope; separate output matrix.
    "qwen2": dict(model_type="qwen2", rope_theta=1000000.0, tie_word_embeddings=False),
    # RMS norm on each head's q and k before rope (attn_q_norm / attn_k_norm); no biases;
    # tied embeddings (no output.weight in the GGUF), as the small Qwen3 models have.
    "qwen3": dict(model_type="qwen3", rope_theta=1000000.0, rms_norm_eps=1e-5,
                  tie_word_embeddings=True),
    # Sliding-window attention over the last 8 positions (shorter than the sequence).
    "mistral": dict(model_type="mistral", rope_theta=10000.0, sliding_window=8,
                    tie_word_embeddings=False),
    # Llama 3 rope scaling. With head_dim 16, theta 500000 and an original context of 64, the
    # 8 rope frequencies fall in all three bands of the llama3 formula: kept (wavelength < 16),
    # smoothly interpolated (16..64) and divided by `factor` (> 64).
    "llama": dict(model_type="llama", rope_theta=500000.0, rms_norm_eps=1e-5,
                  tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                  rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                    high_freq_factor=4.0, original_max_position_embeddings=64)),
    # Mixture of experts: 4 experts of FFN width 32, 2 per token, softmax router with the top-2
    # weights renormalized; every layer sparse.
    "qwen3moe": dict(model_type="qwen3_moe", rope_theta=1000000.0, tie_word_embeddings=False,
                     num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                     norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[]),
    # Qwen2 MoE: q/k/v biases, routed experts with top-2 weights NOT renormalized, plus a shared
    # expert (FFN width 32) scaled by a sigmoid gate.
    "qwen2moe": dict(model_type="qwen2_moe", rope_theta=1000000.0, tie_word_embeddings=False,
                     qkv_bias=True, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                     shared_expert_intermediate_size=32, norm_topk_prob=False,
                     decoder_sparse_step=1, mlp_only_layers=[]),
    # Mixtral: Llama attention with 4 experts of FFN width 32, 2 per token, softmax over the
    # chosen two (i.e. renormalized); the GGUF is arch `llama` with expert tensors.
    "mixtral": dict(model_type="mixtral", rope_theta=1000000.0, tie_word_embeddings=False,
                    num_local_experts=4, num_experts_per_tok=2, intermediate_size=32, sliding_window=None),
    # Phi-3: q/k/v fused in one matrix (attn_qkv) and gate/up fused in one (ffn_up, gate half
    # first); plain rope. The converter needs original_max_position_embeddings even without
    # rope scaling; equal to the context, it changes nothing.
    "phi3": dict(model_type="phi3", rope_theta=10000.0, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, original_max_position_embeddings=256),
    # Phi-3 with LongRoPE: per-frequency divisors (`short_factor` up to the original context of
    # 32 positions, `long_factor` beyond it) and cos/sin scaled by sqrt(1 + ln(256/32) / ln(32)).
    # The 40-token sequence is past the original context, so its logits use the long factors;
    # reference.json also holds the short-factor logits of a 32-token prefix (see reference()).
    "phi3-longrope": dict(model_type="phi3", rope_theta=10000.0, rms_norm_eps=1e-5,
                          tie_word_embeddings=False, original_max_position_embeddings=32,
                          rope_scaling=dict(
                              type="longrope",
                              short_factor=[1.0, 1.02, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5],
                              long_factor=[1.0, 1.25, 1.6, 2.0, 2.8, 4.0, 5.6, 8.0])),
    # DeepSeek V3 (GGUF arch `deepseek2`): multi-head latent attention (q through a rank-32
    # bottleneck with its own norm; k/v from a shared rank-16 latent plus one rope key of 8 dims
    # shared by all heads; q/k heads of 8 unrotated + 8 rotated dims, v heads of 8), interleaved
    # (GPT-J) rope as the real checkpoints. Layer 0 dense (FFN 128), layer 1 MoE: 4 experts of
    # FFN 32 in 2 groups, sigmoid scores plus a correction bias pick 1 group then 2 experts, the
    # chosen scores (without the bias) renormalized and scaled by 2.5, plus 1 ungated shared
    # expert. scoring_func/topk_method are what the real config.json carries (transformers
    # ignores them); the converter reads scoring_func for the gating function key.
    # head_dim overrides COMMON's: transformers sizes the rope from it (= qk_rope_head_dim).
    "deepseek2": dict(model_type="deepseek_v3", rope_theta=10000.0, tie_word_embeddings=False,
                      num_key_value_heads=4, head_dim=8, q_lora_rank=32, kv_lora_rank=16,
                      qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                      first_k_dense_replace=1, n_routed_experts=4, num_experts_per_tok=2,
                      n_shared_experts=1, moe_intermediate_size=32, n_group=2, topk_group=1,
                      routed_scaling_factor=2.5, norm_topk_prob=True, rope_interleave=True,
                      scoring_func="sigmoid", topk_method="noaux_tc"),
    # DeepSeek V2 (GGUF arch `deepseek2` too), V2-Lite-like: no q compression (q_lora_rank None:
    # one `attn_q` matrix), softmax router scores, group-limited greedy choice (2 groups of 2
    # experts, 1 group kept, so its 2 experts are the top 2), the chosen probabilities not
    # renormalized and scaled by 1.5, and no correction bias.
    "deepseek2-v2": dict(model_type="deepseek_v2", rope_theta=10000.0, tie_word_embeddings=False,
                         num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
                         qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                         first_k_dense_replace=1, n_routed_experts=4, num_experts_per_tok=2,
                         n_shared_experts=1, moe_intermediate_size=32, n_group=2, topk_group=1,
                         routed_scaling_factor=1.5, norm_topk_prob=False,
                         topk_method="group_limited_greedy", scoring_func="softmax"),
    # DeepSeek V3 with YaRN as DeepSeek configures it: mscale = mscale_all_dim (so cos and sin
    # are unscaled) and the softmax scale multiplied by (0.1 * 0.707 * ln 4 + 1)^2. The original
    # context of 16 puts the 40-token sequence past it.
    "deepseek2-yarn": dict(model_type="deepseek_v3", rope_theta=10000.0, tie_word_embeddings=False,
                           num_key_value_heads=4, head_dim=8, q_lora_rank=32, kv_lora_rank=16,
                           qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                           first_k_dense_replace=1, n_routed_experts=4, num_experts_per_tok=2,
                           n_shared_experts=1, moe_intermediate_size=32, n_group=2, topk_group=1,
                           routed_scaling_factor=2.5, norm_topk_prob=True, rope_interleave=True,
                           scoring_func="sigmoid", topk_method="noaux_tc",
                           rope_scaling=dict(type="yarn", factor=4.0, original_max_position_embeddings=16,
                                             beta_fast=32, beta_slow=1, mscale=0.707,
                                             mscale_all_dim=0.707)),
    # Qwen2 with YaRN: factor 4 over an original context of 16 (the 40-token sequence goes past
    # it). With head_dim 16 and base 100 the correction range is pairs 0..2: pair 0 keeps its
    # original frequency, pair 1 is an even mix, pairs 2..8 are interpolated (divided by 4).
    "qwen2-yarn": dict(model_type="qwen2", rope_theta=100.0, tie_word_embeddings=False,
                       rope_scaling=dict(type="yarn", factor=4.0, original_max_position_embeddings=16)),
    # Llama with linear rope scaling: every position divided by 2.
    "llama-linear": dict(model_type="llama", rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                         rope_scaling=dict(type="linear", factor=2.0)),
}

# The tokenizer class the converter reads from tokenizer_config.json, where it matters: Phi-3's
# converter loads a SentencePiece tokenizer.model unless the class is GPT2Tokenizer (as Phi-4
# ships), and then reads tokenizer.json as a byte-level BPE like the other architectures.
TOKENIZER_CLASS = {"phi3": "GPT2Tokenizer"}

# Router weights drawn wider than INIT_STD, where it matters: DeepSeek V2 rates an expert group by
# its best expert, llama.cpp by its best two (see grouped_router_margin). Peaked router
# probabilities (the best expert above 1/2) make both ratings keep the same group.
ROUTER_STD = {"deepseek2-v2": 0.5}


def build_tokenizer(hf_dir: pathlib.Path, tokenizer_class: str | None = None) -> PreTrainedTokenizerFast:
    """Trains the byte-level BPE and saves tokenizer.json + tokenizer_config.json into hf_dir."""
    texts = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        chat_template=CHAT_TEMPLATE, add_bos_token=False, add_eos_token=False,
        model_max_length=COMMON["max_position_embeddings"])
    # The chat template inline in tokenizer_config.json, where the converter and most tools look.
    fast.save_pretrained(hf_dir, save_jinja_files=False)
    if tokenizer_class:
        path = hf_dir / "tokenizer_config.json"
        cfg = json.loads(path.read_text(encoding="utf-8"))
        cfg["tokenizer_class"] = tokenizer_class
        # The layout save_pretrained writes.
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return fast


def build_model(arch: str, tokenizer: PreTrainedTokenizerFast):
    spec = dict(ARCHS[arch])
    model_type = spec.pop("model_type")
    config = transformers.AutoConfig.for_model(
        model_type, **{**COMMON, **spec},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    if model_type == "qwen2":
        config.attention_bias = True  # Qwen2 always has q/k/v biases; keep it explicit
    torch.manual_seed(0)
    # Eager attention: the plain softmax(QK^T)V of the modeling file, masks included.
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager",
                                             dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + INIT_STD * torch.randn_like(p))
            else:
                p.normal_(0.0, INIT_STD)
        # DeepSeek V3's router bias is a buffer, not a parameter, and zero by default: a bias
        # that is never exercised cannot be checked.
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.normal_(0.0, INIT_STD)
        if arch in ROUTER_STD:
            for name, p in model.named_parameters():
                if name.endswith("mlp.gate.weight"):
                    p.normal_(0.0, ROUTER_STD[arch])
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    # generate() must not stop early at EOS: the fixture always has N_GREEDY ids.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def fixed_tokens(seed: int = 1234) -> list[int]:
    """BOS, then pseudo-random non-special ids (a fixed generator: the same ids every run)."""
    rng = np.random.default_rng(seed)
    return [SPECIALS.index(BOS)] + [int(t) for t in rng.integers(len(SPECIALS), VOCAB, N_TOKENS - 1)]


def round6(rows: torch.Tensor) -> list[list[float]]:
    # 6 significant digits: far below the tolerances a float32 reimplementation needs, and
    # keeps a 40 x 512 logits table around 200 KB of JSON.
    return [[float(f"{x:.6g}") for x in row] for row in rows.tolist()]


# Smallest gap accepted between the k-th and (k+1)-th expert probability anywhere on the path:
# a closer call could route a token differently under float32 rounding noise (a reimplementation
# keeping K/V in f16 differs by ~1e-5 in these probabilities) and change everything after it.
MIN_ROUTER_MARGIN = 1e-3


def n_experts(config) -> int | None:
    """The number of routed experts (Qwen MoE: num_experts; Mixtral: num_local_experts;
    DeepSeek: n_routed_experts)."""
    return (getattr(config, "num_experts", None) or getattr(config, "num_local_experts", None)
            or getattr(config, "n_routed_experts", None))


def grouped_router_margin(model, ids: torch.Tensor) -> float:
    """router_margin for DeepSeek's grouped routers, recomputed from each router's input.

    V3 (DeepseekV3TopkRouter): sigmoid scores plus e_score_correction_bias; each group of experts
    rated by the sum of its best two; the best `topk_group` groups kept and the other experts'
    scores set to 0; the top `num_experts_per_tok` of those chosen. V2 (DeepseekV2MoEGate,
    group_limited_greedy): softmax scores, no bias, a group rated by its best expert. llama.cpp
    has no key for the group rating and rates every `deepseek2` file's groups by their best two,
    so for V2 both ratings must keep the same groups, each by a clear margin.

    Both calls must be clear: the gap between the last kept and first dropped group's rating,
    and between the last chosen and first unchosen expert's score after the groups are dropped
    (that second gap is also how far the chosen scores are above 0, where transformers' masking
    and a -inf mask agree)."""
    config = model.config
    routers = [m for m in model.modules()
               if hasattr(m, "e_score_correction_bias") or type(m).__name__ == "DeepseekV2MoEGate"]
    inputs = []
    hooks = [r.register_forward_hook(lambda mod, args, out: inputs.append((mod, args[0])))
             for r in routers]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    n, groups, k = config.n_routed_experts, config.n_group, config.num_experts_per_tok
    margin = float("inf")
    with torch.no_grad():
        for router, x in inputs:
            x = x.reshape(-1, config.hidden_size).float()
            logits = x @ router.weight.float().T
            if hasattr(router, "e_score_correction_bias"):
                choice = logits.sigmoid() + router.e_score_correction_bias
                ratings = [choice.view(-1, groups, n // groups).topk(2, dim=-1).values.sum(-1)]
            else:
                choice = logits.softmax(-1)
                grouped = choice.view(-1, groups, n // groups)
                ratings = [grouped.max(dim=-1).values, grouped.topk(2, dim=-1).values.sum(-1)]
            kept_sets = []
            for group_scores in ratings:
                if config.topk_group < groups:
                    g = group_scores.sort(-1, descending=True).values
                    margin = min(margin, float((g[:, config.topk_group - 1] - g[:, config.topk_group]).min()))
                kept_sets.append(group_scores.topk(config.topk_group, dim=-1).indices.sort(-1).values)
            if any(not torch.equal(kept_sets[0], other) for other in kept_sets[1:]):
                return -1.0
            kept = torch.zeros_like(ratings[0]).scatter_(1, kept_sets[0], 1.0)
            kept = kept.unsqueeze(-1).expand(-1, groups, n // groups).reshape(-1, n).bool()
            # transformers masks the dropped groups with 0: below every softmax score (as -inf
            # is), but not below a sigmoid score lowered by a negative bias.
            dropped = 0.0 if hasattr(router, "e_score_correction_bias") else float("-inf")
            e = choice.masked_fill(~kept, dropped).sort(-1, descending=True).values
            margin = min(margin, float((e[:, k - 1] - e[:, k]).min()))
    return round(margin, 6)


def router_margin(model, ids: torch.Tensor) -> float:
    """The smallest gap between the last chosen and the first unchosen expert's probability, over
    every layer and position of `ids`."""
    if getattr(model.config, "n_routed_experts", None):
        return grouped_router_margin(model, ids)
    with torch.no_grad():
        routers = model(ids, output_router_logits=True).router_logits
    k = model.config.num_experts_per_tok
    margin = float("inf")
    for logits in routers:
        p = logits.float().softmax(-1).sort(-1, descending=True).values
        margin = min(margin, float((p[:, k - 1] - p[:, k]).min()))
    return round(margin, 6)


def well_routed_tokens(model) -> list[int]:
    """The fixed tokens, or for a mixture of experts the first seed's whose whole greedy path
    routes with a clear margin (see MIN_ROUTER_MARGIN), so the reference is well conditioned."""
    if not n_experts(model.config):
        return fixed_tokens()
    for seed in range(1234, 1334):
        tokens = fixed_tokens(seed)
        ids = torch.tensor([tokens])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=N_GREEDY, do_sample=False, attention_mask=torch.ones_like(ids))
        if router_margin(model, out[:, :-1]) >= MIN_ROUTER_MARGIN:
            return tokens
    raise SystemExit("no token sequence with a clear routing margin in 100 seeds")


def reference(model, tokens: list[int]) -> dict:
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
        out = model.generate(ids, max_new_tokens=N_GREEDY, do_sample=False,
                             attention_mask=torch.ones_like(ids))
        greedy = out[0, len(tokens):].tolist()
        assert len(greedy) == N_GREEDY
        # Check generate's cached decoding against a full forward pass, and record how close
        # the argmax calls were (a reimplementation in float32 can only be expected to agree on
        # steps whose top-2 margin is above its rounding error).
        full = model(out[:, :-1]).logits[0, len(tokens) - 1:]
        assert full.argmax(-1).tolist() == greedy, "generate() disagrees with a full forward pass"
        top2 = full.topk(2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
    ref = dict(tokens=tokens, logits=round6(logits), greedy=greedy,
               greedy_min_top2_margin=round(margin, 6))
    if n_experts(model.config):
        ref["router_min_top_k_margin"] = router_margin(model, out[:, :-1])
    window = getattr(model.config, "sliding_window", None)
    if window and model.config.model_type == "mistral":
        # llama.cpp's converter writes Mistral as a `llama` GGUF without any sliding-window key,
        # so a GGUF-only runtime attends over the whole sequence. Record what full attention
        # gives too, so tests can tell a missing window from a wrong forward pass: the last
        # `window` positions only (earlier ones see fewer than `window` tokens either way, and
        # the whole table would push the fixture over its size budget).
        ref["sliding_window"] = window
        model.config.sliding_window = None
        with torch.no_grad():
            full = model(ids).logits[0].float()
        model.config.sliding_window = window
        assert torch.equal(full[:window], logits[:window])
        assert not torch.allclose(full[-window:], logits[-window:])
        ref["full_attention"] = dict(positions=list(range(len(tokens) - window, len(tokens))),
                                     logits=round6(full[-window:]))
    rope_scaling = getattr(model.config, "rope_scaling", None) or {}
    if rope_scaling.get("type") == "longrope":
        # transformers picks the LongRoPE factors per forward call: long ones when the call's
        # last position is past original_max_position_embeddings (so for every position of the
        # sequence above), short ones otherwise. llama.cpp picks them once by context size.
        # Record what a call of exactly the original context gives (short factors), its last 8
        # positions, so that both factor sets are checked.
        n_orig = model.config.original_max_position_embeddings
        with torch.no_grad():
            short = model(ids[:, :n_orig]).logits[0].float()
        assert not torch.allclose(short[-8:], logits[n_orig - 8:n_orig])
        ref["longrope_short"] = dict(original_max_position_embeddings=n_orig,
                                     positions=list(range(n_orig - 8, n_orig)),
                                     logits=round6(short[-8:]))
    return ref


# Run inside a child Python: convert_hf_to_gguf.py as its own __main__, with only the BPE
# pre-tokenizer detection replaced (see the module docstring).
CONVERT = """
import runpy, sys
sys.path.insert(0, sys.argv[1])
import conversion.base
pre = sys.argv[2]
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
script = sys.argv[1] + "/convert_hf_to_gguf.py"
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""


def convert(llama_cpp: pathlib.Path, arch: str, hf_dir: pathlib.Path, gguf_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, "-c", CONVERT, str(llama_cpp), PRE_TOKENIZER,
         str(hf_dir), "--outtype", "f32", "--outfile", str(gguf_path),
         "--model-name", f"kiln-tiny-{arch}"],
        check=True)


def check_gguf(gguf_path: pathlib.Path, model) -> None:
    """The GGUF holds every weight of the HF model (modulo the converter's renames/permutes)."""
    import gguf
    reader = gguf.GGUFReader(gguf_path)
    # Rope tables the converter derives from the config, not weights of the model.
    derived = {"rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"}
    n_gguf = sum(int(np.prod(t.shape)) for t in reader.tensors if t.name not in derived)
    n_hf = sum(p.numel() for p in model.parameters())  # shared tensors are counted once
    # Saved buffers (DeepSeek's e_score_correction_bias) are weights too.
    saved = model.state_dict().keys()
    n_hf += sum(b.numel() for name, b in model.named_buffers() if name in saved)
    assert n_gguf == n_hf, (n_gguf, n_hf)
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", choices=list(ARCHS), help="default: all")
    ap.add_argument("--llama-cpp", type=pathlib.Path,
                    help="llama.cpp source dir (default: scripts/fetch-llama-cpp-src.sh's)")
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    llama_cpp = args.llama_cpp or pathlib.Path(subprocess.run(
        [ROOT / "scripts/fetch-llama-cpp-src.sh"], check=True, capture_output=True, text=True,
    ).stdout.strip())
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    for arch in args.arch or list(ARCHS):
        adir = args.out / arch
        hf_dir = adir / "hf"
        shutil.rmtree(adir, ignore_errors=True)
        hf_dir.mkdir(parents=True)
        tokenizer = build_tokenizer(hf_dir, TOKENIZER_CLASS.get(ARCHS[arch]["model_type"]))
        model = build_model(arch, tokenizer)
        model.save_pretrained(hf_dir, safe_serialization=True)
        # The generation config is transformers' bookkeeping, not part of the model.
        (hf_dir / "generation_config.json").unlink(missing_ok=True)
        convert(llama_cpp, arch, hf_dir, adir / "model.gguf")
        check_gguf(adir / "model.gguf", model)
        ref = dict(arch=arch, **reference(model, well_routed_tokens(model)),
                   transformers_version=transformers.__version__,
                   torch_version=torch.__version__.split("+")[0],
                   init=f"normal std {INIT_STD}; norm weights 1 + normal std {INIT_STD}; torch.manual_seed(0)")
        (adir / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
        size = sum(f.stat().st_size for f in adir.rglob("*") if f.is_file())
        print(f"{arch}: {size / 1e6:.2f} MB, greedy margin {ref['greedy_min_top2_margin']}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
