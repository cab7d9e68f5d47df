#!/usr/bin/env python3
"""Generates the BERT import fixture: a tiny random-weight `BertModel` laid out as a
sentence-transformers model directory, and llama.cpp's conversion of it.

Output, under crates/kiln-convert/tests/fixtures/bert/:
  hf/          config.json, model.safetensors (with the pooler llama.cpp drops), tokenizer.json,
               tokenizer_config.json, special_tokens_map.json, vocab.txt, modules.json,
               1_Pooling/config.json (mean pooling)
  model.gguf   convert_hf_to_gguf.py --outtype f32 of hf/

The WordPiece vocabulary is trained here on tests/corpus/tokenizer.jsonl. As in
gen-hf-fixtures.py, the converter's pre-tokenizer detection (a hash of a known upstream
tokenizer's output, which no new vocabulary can match) is replaced for the run by the name it
detects for BERT's own pre-tokenizer on real models such as all-MiniLM-L6-v2: `jina-v2-en`.
Weights are drawn from N(0, 0.1^2) (LayerNorm weights 1 + N(0, 0.1^2)), torch.manual_seed(0).

Usage (from the repository root; the venv comes from scripts/hf-env.sh):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-bert-fixture.py
"""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import torch
import transformers
from tokenizers import BertWordPieceTokenizer
from transformers import BertTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/kiln-convert/tests/fixtures/bert"
VOCAB = 512


def hf_fixtures():
    """scripts/gen-hf-fixtures.py as a module, for its corpus, init and converter runner."""
    spec = importlib.util.spec_from_file_location("gen_hf_fixtures", ROOT / "scripts/gen-hf-fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    gen = hf_fixtures()
    hf_dir = OUT / "hf"
    shutil.rmtree(OUT, ignore_errors=True)
    (hf_dir / "1_Pooling").mkdir(parents=True)

    texts = [json.loads(line) for line in gen.CORPUS.read_text(encoding="utf-8").splitlines() if line]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=VOCAB, min_frequency=1, show_progress=False)
    wordpiece.save_model(str(hf_dir))
    tokenizer = BertTokenizerFast(vocab_file=str(hf_dir / "vocab.txt"), do_lower_case=True, model_max_length=128)
    tokenizer.save_pretrained(hf_dir)

    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=128, type_vocab_size=2, pad_token_id=0)
    config.architectures = ["BertModel"]
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + torch.randn_like(p) * gen.INIT_STD)
            else:
                p.copy_(torch.randn_like(p) * gen.INIT_STD)
    model.save_pretrained(hf_dir, safe_serialization=True)
    (hf_dir / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ], indent=2) + "\n")
    (hf_dir / "1_Pooling/config.json").write_text(json.dumps({
        "word_embedding_dimension": 64, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2) + "\n")

    llama_cpp = subprocess.run([ROOT / "scripts/fetch-llama-cpp-src.sh"], check=True, capture_output=True,
                               text=True).stdout.strip()
    subprocess.run([sys.executable, "-c", gen.CONVERT, llama_cpp, "jina-v2-en", str(hf_dir),
                    "--outtype", "f32", "--outfile", str(OUT / "model.gguf"), "--model-name", "kiln-tiny-bert"],
                   check=True)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"bert: {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
