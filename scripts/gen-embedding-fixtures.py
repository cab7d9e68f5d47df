#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers.

Encodes the sentences below with sentence-transformers (the model's own pipeline: its
tokenizer, BertModel, mean pooling, L2 normalisation, as modules.json says) from the Hugging
Face directory scripts/fetch-models.sh fetches, and writes {"model", "sentences",
"embeddings"} with values rounded to 6 decimals. Kiln's embeddings of the same sentences must
match them (the Rust tests and tests/e2e/test_embeddings.py read this file).

Usage (from the repository root):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-embedding-fixtures.py "$KILN_CACHE/models/all-MiniLM-L6-v2" \
      crates/kiln-engine/tests/fixtures/minilm-embeddings.json
"""

import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leaped over a sleepy hound.",
    "Kiln runs language models on the CPU.",
    "How do I bake sourdough bread at home?",
    "The recipe needs flour, water, salt and a starter.",
    "What is the capital of France?",
    "Paris is the capital and largest city of France.",
    "Berlin is known for its museums and nightlife.",
    "The stock market fell sharply on Monday.",
    "Investors worried about rising interest rates.",
    "She plays the violin in the city orchestra.",
    "He scored two goals in the second half.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis turns light into chemical energy.",
    "def add(a, b): return a + b",
    "SELECT name, age FROM users WHERE age > 30;",
    "fn main() { println!(\"hello\"); }",
    "Error: connection refused (os error 111)",
    "I love this product! Five stars.",
    "Terrible service, I will never come back.",
    "The weather is lovely today.",
    "It is raining cats and dogs.",
    "Crème brûlée is a French dessert.",
    "Das ist ein deutscher Satz.",
    "Esta es una oración en español.",
    "これは日本語の文です。",
    "这是一个中文句子。",
    "Привет, как дела?",
    "🙂 emoji can appear in text 🎉",
    "3.14159 is approximately pi.",
    "Call me at 555-0100 or email info@example.com.",
    "The meeting is scheduled for 2024-06-30 at 10:00.",
    "WHY ARE YOU SHOUTING?",
    "why are you shouting?",
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "Two dogs are running through a field.",
    "A child is reading a book under a tree.",
    "The spacecraft entered orbit around Mars.",
    "Quantum computers use qubits instead of bits.",
    "Neural networks learn from examples.",
    "Embeddings map text to vectors.",
    "Cosine similarity compares the angle between vectors.",
    "The library closes at eight in the evening.",
    "Please turn off the lights when you leave.",
    "My flight was delayed by three hours.",
    "The hotel room had a beautiful view of the sea.",
    "Vaccines train the immune system.",
    "The treaty was signed in 1648.",
    "Shakespeare wrote Hamlet around 1600.",
    "a",
    "!!!",
    "The the the the the the the the.",
    "Supercalifragilisticexpialidocious is a long word.",
    "A sentence with many, many, commas, semicolons; and dashes — like this.",
    "Line one.\nLine two.\tTabbed.",
]


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(SENTENCES, batch_size=16, normalize_embeddings=False, convert_to_numpy=True)
    doc = {
        "model": "all-MiniLM-L6-v2 (sentence-transformers, mean pooling, normalised)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 6) for x in row] for row in emb],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(SENTENCES)} sentences, {emb.shape[1]} dimensions -> {out}")


if __name__ == "__main__":
    main()
