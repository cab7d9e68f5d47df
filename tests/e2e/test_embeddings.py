"""Embeddings end to end through the official `ollama` and `openai` clients.

Run by scripts/test-e2e.sh, which serves all-MiniLM-L6-v2 (an F32 GGUF) as "minilm". Every
vector is compared with the sentence-transformers reference committed in
crates/kiln-engine/tests/fixtures/minilm-embeddings.json (scripts/gen-embedding-fixtures.py).
"""

import base64
import json
import math
import os
import struct
from pathlib import Path

import httpx
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
MODEL = "minilm"
FIXTURE = Path(__file__).resolve().parents[2] / "crates/kiln-engine/tests/fixtures/minilm-embeddings.json"
REFERENCE = json.loads(FIXTURE.read_text(encoding="utf-8"))
SENTENCES = REFERENCE["sentences"]
VECTORS = REFERENCE["embeddings"]
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def oc():
    return ollama.Client(host=URL)


@pytest.fixture(scope="module")
def ai():
    return openai.OpenAI(base_url=URL + "/v1", api_key="x")


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def assert_matches(vectors, indices):
    assert len(vectors) == len(indices)
    for v, i in zip(vectors, indices):
        assert len(v) == 384
        c = cosine(v, VECTORS[i])
        assert c >= MIN_COSINE, f"sentence {i} ({SENTENCES[i]!r}): cosine {c}"


def test_embed_batch_matches_sentence_transformers(oc):
    r = oc.embed(model=MODEL, input=SENTENCES)
    assert r.model == MODEL
    assert_matches(r.embeddings, range(len(SENTENCES)))
    assert all(abs(norm(v) - 1) < 1e-4 for v in r.embeddings)
    assert r.prompt_eval_count > 2 * len(SENTENCES)
    assert r.total_duration > 0 and r.load_duration >= 0


def test_embed_one_string(oc):
    r = oc.embed(model=MODEL, input=SENTENCES[3])
    assert_matches(r.embeddings, [3])


def test_embed_truncates_by_default_and_refuses_when_asked(oc):
    long = " ".join(SENTENCES) * 10
    r = oc.embed(model=MODEL, input=long)
    assert r.prompt_eval_count == 512
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model=MODEL, input=long, truncate=False)
    assert e.value.status_code == 400
    assert "context length" in e.value.error


def test_embed_dimensions(oc):
    r = oc.embed(model=MODEL, input=SENTENCES[0], dimensions=64)
    (v,) = r.embeddings
    assert len(v) == 64 and abs(norm(v) - 1) < 1e-4
    assert cosine(v, VECTORS[0][:64]) >= MIN_COSINE


def test_legacy_embeddings(oc):
    r = oc.embeddings(model=MODEL, prompt=SENTENCES[5])
    assert_matches([r.embedding], [5])


def test_openai_float(ai):
    r = ai.embeddings.create(model=MODEL, input=SENTENCES[:4], encoding_format="float")
    assert [d.index for d in r.data] == [0, 1, 2, 3]
    assert_matches([d.embedding for d in r.data], range(4))
    assert r.usage.prompt_tokens == r.usage.total_tokens > 8


def test_openai_base64(ai):
    # Asked explicitly, the client hands back the base64 text: little-endian f32.
    r = ai.embeddings.create(model=MODEL, input=SENTENCES[4:6], encoding_format="base64")
    decoded = []
    for d in r.data:
        raw = base64.b64decode(d.embedding)
        decoded.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    assert_matches(decoded, [4, 5])
    # Left to itself, the client asks for base64 and decodes it.
    r = ai.embeddings.create(model=MODEL, input=SENTENCES[6])
    assert_matches([r.data[0].embedding], [6])


def test_openai_token_ids(ai):
    # Counts include [CLS] and [SEP].
    assert httpx.post(URL + "/api/embed", json={"model": MODEL, "input": "x"}).json()["prompt_eval_count"] == 3
    # "hello world" is tokens 7592 and 2088 of the vocabulary; ids get [CLS] and [SEP] as text does.
    r = ai.embeddings.create(model=MODEL, input=[7592, 2088], encoding_format="float")
    text = ai.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    assert cosine(r.data[0].embedding, text.data[0].embedding) > 0.99999


def test_show_reports_the_embedding_capability(oc):
    assert list(oc.show(MODEL).capabilities) == ["embedding"]


def test_generation_on_an_embedding_model_is_refused(oc, ai):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model=MODEL, prompt="hi")
    assert e.value.status_code == 400 and e.value.error == '"minilm" does not support generate'
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert e.value.error == '"minilm" does not support chat'
    with pytest.raises(openai.BadRequestError):
        ai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def test_embeddings_from_a_generative_model_are_refused(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model="smollm2", input="hi")
    assert e.value.status_code == 400 and e.value.error == '"smollm2" does not support embeddings'
