#!/usr/bin/env python3
"""Generates tokenizer reference fixtures with llama.cpp.

Tokenizes every item of the corpus (tests/corpus/tokenizer.jsonl, one JSON string per line) with
llama.cpp through llama-cpp-python's ctypes bindings, and records what kiln-tokenizer must
reproduce token for token:

  - ids for (add_special, parse_special) = (true, false), (false, true) and (true, true);
  - llama_detokenize of the (true, true) ids with unparse_special false and true;
  - llama_token_to_piece (special false/true) for a sample of ids (every special, byte and
    user-defined token, the first ids, and a stride through the rest);
  - vocabulary facts: size, BOS/EOS/EOT, add_bos/add_eos, the end-of-generation and control ids.

Byte strings (pieces, detokenized text) are stored as hex, since they need not be valid UTF-8.

With --variant, the model's metadata is copied (without tensors) into a temporary GGUF with some
keys overridden, e.g. `tokenizer.ggml.pre=qwen2`, so that pre-tokenizers and flags of models not
at hand can be checked against llama.cpp with a vocabulary that is. Each variant records the ids
for (add_special, parse_special) = (false, true) and, where it differs from the input text, their
detokenization (unparse_special false).

Usage (from the repository root):
  eval "$(scripts/ref-env.sh)"
  python scripts/gen-tokenizer-fixtures.py MODEL.gguf OUT.json [--corpus tests/corpus/tokenizer.jsonl]
  python scripts/gen-tokenizer-fixtures.py MODEL.gguf OUT.json --variant tokenizer.ggml.pre=qwen2 \
      --variant tokenizer.ggml.pre=llama-bpe ...
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile

import gguf
import llama_cpp

ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5


def silence_logs():
    callback = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback  # keep a reference alive


def load_vocab(path):
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        sys.exit(f"cannot load {path}")
    return model, llama_cpp.llama_model_get_vocab(model)


def tokenize(vocab, data, add_special, parse_special):
    cap = len(data) + 16
    while True:
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
        if n >= 0:
            return list(buf[:n])
        cap = -n


def piece(vocab, token, special):
    cap = 64
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, cap, 0, special)
        if n >= 0:
            return buf.raw[:n]
        cap = -n


def detokenize(vocab, ids, unparse_special):
    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    cap = 64 + 8 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, unparse_special)
        if n >= 0:
            return buf.raw[:n]
        cap = -n


def parse_value(text):
    if text in ("true", "false"):
        return text == "true"
    return text


def write_variant(src, dst, overrides):
    """Copies the metadata of `src` into `dst` (no tensors), with `overrides` applied."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    pending = dict(overrides)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY and len(field.types) > 1 else None
        value = pending.pop(key, field.contents())
        writer.add_key_value(key, value, vtype, sub)
    for key, value in pending.items():
        vtype = gguf.GGUFValueType.BOOL if isinstance(value, bool) else gguf.GGUFValueType.STRING
        writer.add_key_value(key, value, vtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def variants_fixture(args, corpus):
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.variant:
            overrides = {}
            for assignment in spec.split(","):
                key, _, value = assignment.partition("=")
                overrides[key.strip()] = parse_value(value.strip())
            path = os.path.join(tmp, "variant.gguf")
            write_variant(args.model, path, overrides)
            model, vocab = load_vocab(path)
            ids, detok = [], []
            for text in corpus:
                data = text.encode("utf-8")
                tokens = tokenize(vocab, data, False, True)
                back = detokenize(vocab, tokens, False)
                ids.append(tokens)
                detok.append(None if back == data else back.hex())
            llama_cpp.llama_model_free(model)
            variants.append({"overrides": overrides, "parse_special": ids, "detok": detok})
    return {
        "model": os.path.basename(args.model),
        "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
        "corpus_items": len(corpus),
        "variants": variants,
    }


def optional(token):
    return None if token < 0 else int(token)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--corpus", default=os.path.join("tests", "corpus", "tokenizer.jsonl"))
    ap.add_argument("--stride", type=int, default=0, help="piece sample stride (default: by vocab size)")
    ap.add_argument("--variant", action="append", default=[],
                    help="KEY=VALUE[,KEY=VALUE...] metadata overrides; repeatable")
    args = ap.parse_args()

    _keep = silence_logs()
    llama_cpp.llama_backend_init()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f if line.strip()]

    if args.variant:
        write_json(args.out, variants_fixture(args, corpus))
        return

    model, vocab = load_vocab(args.model)

    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    attrs = [llama_cpp.llama_vocab_get_attr(vocab, i) for i in range(n_vocab)]

    items = []
    for text in corpus:
        data = text.encode("utf-8")
        both = tokenize(vocab, data, True, True)
        items.append({
            "text": text,
            "add_special": tokenize(vocab, data, True, False),
            "parse_special": tokenize(vocab, data, False, True),
            "both": both,
            "detok": detokenize(vocab, both, False).hex(),
            "detok_special": detokenize(vocab, both, True).hex(),
        })

    stride = args.stride or max(1, n_vocab // 2500)
    special_bits = ATTR_UNKNOWN | ATTR_UNUSED | ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_BYTE
    sample = sorted(
        set(range(min(n_vocab, 1000)))
        | set(range(0, n_vocab, stride))
        | {i for i, a in enumerate(attrs) if a & special_bits or a == 0}
    )
    pieces = [[i, piece(vocab, i, False).hex(), piece(vocab, i, True).hex()] for i in sample]

    fixture = {
        "model": os.path.basename(args.model),
        "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
        "n_vocab": n_vocab,
        "bos": optional(llama_cpp.llama_vocab_bos(vocab)),
        "eos": optional(llama_cpp.llama_vocab_eos(vocab)),
        "eot": optional(llama_cpp.llama_vocab_eot(vocab)),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "control": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_control(vocab, i)],
        "items": items,
        "pieces": pieces,
    }
    llama_cpp.llama_model_free(model)
    write_json(args.out, fixture)


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
