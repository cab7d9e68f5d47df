"""End-to-end tests of fill-in-the-middle (Continue's autocomplete): Ollama's `suffix` on
/api/generate and OpenAI's `suffix` on /v1/completions, through a model whose template
places the suffix; a model that cannot fill in refuses with a 400.

The template writes StarCoder-style markers; whatever they are to SmolLM2's vocabulary, the
filled prompt must generate exactly what the same text sent raw generates.
"""

import os

import httpx
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
GREEDY = {"temperature": 0, "num_predict": 8, "repeat_penalty": 1}
FIM_TEMPLATE = "<fim_prefix>{{ .Prompt }}<fim_suffix>{{ .Suffix }}<fim_middle>"
PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def oc():
    client = ollama.Client(host=URL)
    if "smollm2:135m" not in {m.model for m in client.list().models}:
        client.pull("smollm2:135m")
    client.create(model="filler", from_="smollm2:135m", template=FIM_TEMPLATE, parameters=GREEDY)
    # Deleted again, so that the library holds what it held before (other tests count its blobs).
    yield client
    client.delete("filler")


def raw_answer(oc):
    return oc.generate(model="filler", prompt=f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>", raw=True).response


def test_a_template_with_a_suffix_shows_insert(oc):
    assert "insert" in oc.show("filler").capabilities


def test_ollama_suffix_fills_in_between(oc):
    r = oc.generate(model="filler", prompt=PREFIX, suffix=SUFFIX)
    assert r.eval_count > 0
    assert r.response == raw_answer(oc)


def test_openai_completions_suffix_fills_in_between(oc):
    ai = openai.OpenAI(base_url=URL + "/v1", api_key="x")
    r = ai.completions.create(model="filler", prompt=PREFIX, suffix=SUFFIX, temperature=0)
    assert r.choices[0].text == raw_answer(oc)


def test_a_model_that_cannot_fill_in_refuses(oc):
    r = httpx.post(URL + "/api/generate", json={"model": "smollm2:135m", "prompt": PREFIX, "suffix": SUFFIX})
    assert r.status_code == 400 and "fill in the middle" in r.json()["error"]
    r = httpx.post(URL + "/v1/completions", json={"model": "smollm2:135m", "prompt": PREFIX, "suffix": SUFFIX})
    assert r.status_code == 400
