#!/usr/bin/env python3
"""A tiny random-weight Nomic BERT GGUF and llama.cpp's embeddings of it.

There is no small real nomic-bert model, so this writes one with gguf-py's writer (fixed seed,
2 layers, width 32, 4 heads, a small WordPiece vocabulary in the layout llama.cpp's converter
uses: word-initial pieces with a leading U+2581, continuations bare), then embeds the sentences
below with llama.cpp's `llama-embedding` (mean pooling, L2-normalised, flash attention off so
attention stays in f32) and writes {"sentences", "embeddings"}. Kiln must match these.

Usage (from the repository root, with llama.cpp built by scripts/build-llama-cpp.sh):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-nomic-bert-fixture.py "$KILN_CACHE/llama.cpp/build/bin/llama-embedding" \
      crates/kiln-engine/tests/fixtures/nomic-bert-tiny
  # writes nomic-bert-tiny.gguf and nomic-bert-tiny.json
"""

import json
import subprocess
import sys
import tempfile

import gguf
import numpy as np

N_EMBD, N_HEAD, N_FF, N_LAYER, N_CTX = 32, 4, 64, 2, 512
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a an of to in is was and or kiln fire clay pot glaze heat bake cool warm model text vector "
    "embedding word small large quick brown fox dog jumps over lazy cat sat on mat hello world "
    "sentence test one two three red green blue"
).split()
PIECES = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + ["ing", "ed", "er", "ly"]
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat",
    "hello world",
    "the kiln was warm and the clay pot was baked",
    "glaze the pot then fire the kiln",
    "one two three",
    "red green blue",
    "embedding a sentence to a vector",
    "small models and large models",
    "testing jumped quickly",
    "zebra xylophone",
    "the the the the",
]


def vocab():
    # Words may also be pieces ("a"): each text once, as llama.cpp requires.
    tokens = list(dict.fromkeys(SPECIALS + ["\u2581" + w for w in WORDS] + ["\u2581" + p for p in PIECES] + PIECES))
    types = [gguf.TokenType.CONTROL] * len(SPECIALS) + [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIALS))
    return tokens, types


def write_model(path):
    rng = np.random.default_rng(20240630)
    tokens, types = vocab()
    w = gguf.GGUFWriter(path, "nomic-bert")
    w.add_name("nomic-bert-tiny (random weights, test fixture)")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_block_count(N_LAYER)
    w.add_head_count(N_HEAD)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_rope_freq_base(1000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_type_count(2)
    w.add_bos_token_id(SPECIALS.index("[CLS]"))
    w.add_sep_token_id(SPECIALS.index("[SEP]"))
    w.add_unk_token_id(SPECIALS.index("[UNK]"))
    w.add_pad_token_id(SPECIALS.index("[PAD]"))
    w.add_mask_token_id(SPECIALS.index("[MASK]"))

    def t(name, *shape, scale=0.3, mean=0.0):
        w.add_tensor(name, (mean + scale * rng.standard_normal(shape)).astype(np.float32))

    t("token_embd.weight", len(tokens), N_EMBD, scale=1.0)
    t("token_types.weight", 2, N_EMBD)
    t("token_embd_norm.weight", N_EMBD, scale=0.1, mean=1.0)
    t("token_embd_norm.bias", N_EMBD, scale=0.1)
    for i in range(N_LAYER):
        t(f"blk.{i}.attn_qkv.weight", 3 * N_EMBD, N_EMBD)
        t(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        t(f"blk.{i}.attn_output_norm.weight", N_EMBD, scale=0.1, mean=1.0)
        t(f"blk.{i}.attn_output_norm.bias", N_EMBD, scale=0.1)
        t(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        t(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
        t(f"blk.{i}.layer_output_norm.weight", N_EMBD, scale=0.1, mean=1.0)
        t(f"blk.{i}.layer_output_norm.bias", N_EMBD, scale=0.1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def embed_with_llama_cpp(binary, model):
    """llama-embedding's JSON output. Now and then the process exits (status 0) before all of
    its output is written; such a run does not parse and is repeated (complete runs agree
    bit for bit)."""
    for _ in range(10):
        with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
            subprocess.run(
                [binary, "-m", model, "-p", "\n".join(SENTENCES), "--pooling", "mean", "--embd-normalize", "2",
                 "--embd-output-format", "json", "-fa", "off", "-t", "1", "-c", str(N_CTX)],
                check=True, stdout=stdout, stderr=subprocess.DEVNULL,
            )
            stdout.seek(0)
            out = stdout.read()
        try:
            return json.loads(out[out.index("{"):])["data"]
        except (ValueError, KeyError):
            continue
    sys.exit("llama-embedding gave no complete output in 10 runs")


def main():
    binary, stem = sys.argv[1], sys.argv[2]
    model = stem + ".gguf"
    write_model(model)
    data = embed_with_llama_cpp(binary, model)
    assert len(data) == len(SENTENCES), "one embedding per sentence"
    assert len(data) == len(SENTENCES), "one embedding per sentence"
    doc = {
        "model": "nomic-bert-tiny.gguf through llama.cpp llama-embedding (mean pooling, normalised)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in d["embedding"]] for d in data],
    }
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(SENTENCES)} sentences -> {stem}.json, model {model}")


if __name__ == "__main__":
    main()
