#!/usr/bin/env python3
"""Generates the SentencePiece import fixture: the `llama` Hugging Face fixture's weights with a
SentencePiece tokenizer (`tokenizer.model`, as Llama 2 and Mistral 7B ship), and llama.cpp's
conversion of it.

Output, under crates/kiln-convert/tests/fixtures/llama-spm/:
  hf/          config.json and model.safetensors of crates/kiln-models/tests/fixtures/hf/llama/hf
               (vocabulary 512); tokenizer.model (a byte-fallback BPE of 512 pieces trained here on the
               Latin texts of tests/corpus/tokenizer.jsonl, with two user-defined pieces), tokenizer.json,
               tokenizer_config.json and special_tokens_map.json as LlamaTokenizerFast saves them
  model.gguf   convert_hf_to_gguf.py --outtype f32 of hf/ (which reads tokenizer.model)

Usage (from the repository root; the venv comes from scripts/hf-env.sh):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-spm-fixture.py
"""

import json
import pathlib
import shutil
import subprocess
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_model
from transformers import LlamaTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crates/kiln-models/tests/fixtures/hf/llama/hf"
OUT = ROOT / "crates/kiln-convert/tests/fixtures/llama-spm"
CORPUS = ROOT / "tests/corpus/tokenizer.jsonl"


def main() -> None:
    hf_dir = OUT / "hf"
    shutil.rmtree(OUT, ignore_errors=True)
    hf_dir.mkdir(parents=True)
    for name in ["config.json", "model.safetensors"]:
        shutil.copy(SOURCE / name, hf_dir / name)
    # Latin texts only: SentencePiece gives every character of its training text a piece, and
    # the whole corpus has more characters than the 512-piece vocabulary holds (the rest are
    # byte-fallback pieces).
    lines = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    texts = [t for t in lines if all(ord(c) < 0x250 for c in t)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(hf_dir / "tokenizer"), vocab_size=512,
        model_type="bpe", byte_fallback=True, character_coverage=1.0, user_defined_symbols=["<|im_start|>", "<|im_end|>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, normalization_rule_name="identity", num_threads=1, minloglevel=2)
    (hf_dir / "tokenizer.vocab").unlink()
    # The trainer records the output prefix it was given; keep this machine's path out of it.
    proto = sp_model.ModelProto()
    proto.ParseFromString((hf_dir / "tokenizer.model").read_bytes())
    proto.trainer_spec.model_prefix = "tokenizer"
    (hf_dir / "tokenizer.model").write_bytes(proto.SerializeToString())
    tokenizer = LlamaTokenizerFast(vocab_file=str(hf_dir / "tokenizer.model"), legacy=False)
    tokenizer.chat_template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
        " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    tokenizer.save_pretrained(hf_dir, save_jinja_files=False)
    config = json.loads((hf_dir / "config.json").read_text())
    config.update(bos_token_id=1, eos_token_id=2, pad_token_id=None)
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    llama_cpp = subprocess.run([ROOT / "scripts/fetch-llama-cpp-src.sh"], check=True, capture_output=True,
                               text=True).stdout.strip()
    subprocess.run([sys.executable, f"{llama_cpp}/convert_hf_to_gguf.py", str(hf_dir), "--outtype", "f32",
                    "--outfile", str(OUT / "model.gguf"), "--model-name", "kiln-tiny-llama-spm"], check=True)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"llama-spm: {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
