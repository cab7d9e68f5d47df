#!/usr/bin/env python3
"""Reference logits and greedy continuations from llama.cpp, for Kiln's parity tests.

Run after `eval "$(scripts/ref-env.sh)"` (llama-cpp-python's bindings over the llama.cpp that
scripts/build-llama-cpp.sh built):

    python scripts/gen-llamacpp-fixtures.py MODEL.gguf OUT.json

For every prompt it records, from llama.cpp:
  - the prompt tokens (the model's BOS rule, special tokens parsed);
  - a 64-token greedy continuation decoded one token at a time, with the gap between the two
    best logits at each step (to tell near-ties);
  - teacher-forced logits over prompt + continuation evaluated as one batch: at each of the
    64 positions that predict a continuation token, the top-16 logits and the logits of 64
    fixed token ids (the full vocabulary would make the fixture hundreds of MB);
  - at the same positions and ids, the logits of the one-token-at-a-time run
    (`sequential_logits`). The two runs of llama.cpp differ only in float summation order;
    their disagreement measures how much rounding noise each position amplifies, which is
    the floor any other implementation can be held to.
"""
import json
import sys

import numpy as np
from llama_cpp import Llama

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village at the edge of a forest,",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Here are three tips for staying healthy:\n1.",
    "The sum of 17 and 25 is",
    "Translate to English: Le chat dort sur la table.\nEnglish:",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nWhat is the tallest mountain on Earth?<end_of_turn>\n<start_of_turn>model\n",
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg, "
    "a goldsmith from Mainz, combined movable metal type, oil-based ink and a wooden press adapted "
    "from those used to make wine. Before his invention, books in Europe were copied by hand, which "
    "made them rare and expensive. Within a few decades",
    "東京は日本の首都です。大阪は",
]
N_GEN = 64
TOP = 16
N_FIXED = 64


def main():
    model_path, out_path = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model_path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=2,
                logits_all=True, flash_attn=False, verbose=False, seed=0)
    n_vocab = llm.n_vocab()
    rng = np.random.default_rng(1234)
    fixed_ids = sorted(int(i) for i in rng.choice(n_vocab, N_FIXED, replace=False))
    cases = []
    for prompt in PROMPTS:
        prompt_tokens = llm.tokenize(prompt.encode(), add_bos=llm.metadata.get(
            "tokenizer.ggml.add_bos_token", "false") == "true", special=True)
        # Greedy, one token at a time (the way generation runs).
        llm.reset()
        llm.eval(prompt_tokens)
        generated, gaps, sequential = [], [], []
        for _ in range(N_GEN):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            sequential.append(logits)
            order = np.argsort(-logits, kind="stable")
            generated.append(int(order[0]))
            gaps.append(float(logits[order[0]] - logits[order[1]]))
            llm.eval([int(order[0])])
        # Teacher forcing: prompt + continuation as one batch in a fresh context.
        llm.reset()
        llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else None
        all_tokens = prompt_tokens + generated
        llm.eval(all_tokens)
        positions = []
        for i in range(N_GEN):
            pos = len(prompt_tokens) - 1 + i
            logits = np.array(llm.scores[pos], dtype=np.float32)
            top = np.argsort(-logits, kind="stable")[:TOP]
            recorded = [int(t) for t in top] + fixed_ids
            positions.append({
                "top_ids": [int(t) for t in top],
                "top_logits": [round(float(logits[t]), 5) for t in top],
                "fixed_logits": [round(float(logits[t]), 5) for t in fixed_ids],
                "sequential_logits": [round(float(sequential[i][t]), 5) for t in recorded],
            })
        cases.append({
            "prompt": prompt,
            "prompt_tokens": [int(t) for t in prompt_tokens],
            "greedy": generated,
            "greedy_gaps": [round(g, 5) for g in gaps],
            "teacher_forced": positions,
        })
        print(f"{prompt[:40]!r}: {len(prompt_tokens)} prompt tokens, text "
              f"{llm.detokenize(generated).decode(errors='replace')[:60]!r}", file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump({"model": model_path.rsplit("/", 1)[-1], "n_vocab": n_vocab, "fixed_ids": fixed_ids,
                   "generator": "llama.cpp via llama-cpp-python (scripts/gen-llamacpp-fixtures.py)",
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
