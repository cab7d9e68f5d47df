"""logprobs, top_logprobs, n, logit_bias and echo through the official clients, streamed and not.

Run by scripts/test-e2e.sh (see test_server.py for what it sets up).
"""

import json
import math
import os
import subprocess

import httpx
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
MODEL = "smollm2"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def oc():
    return ollama.Client(host=URL)


@pytest.fixture(scope="module")
def oai():
    return openai.OpenAI(base_url=URL + "/v1", api_key="x")


def check_entries(entries, top_n, text, chosen_is_best):
    """Each entry: a chosen token, its logprob, top_n alternatives best first. The tokens spell
    the answer. Logprobs are the model's, before penalties: only greedy decoding without them
    (chosen_is_best) always picks the best alternative."""
    assert entries
    assert "".join(e.token for e in entries) == text
    for e in entries:
        assert e.logprob <= 0
        tops = e.top_logprobs
        assert len(tops) == top_n
        assert [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
        assert tops[0].logprob >= e.logprob
        assert all(math.isclose(t.logprob, e.logprob) for t in tops if t.token == e.token)
        if chosen_is_best:
            assert tops[0].token == e.token and math.isclose(tops[0].logprob, e.logprob)


def test_openai_chat_logprobs(oai):
    r = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        temperature=0,
        max_tokens=6,
        logprobs=True,
        top_logprobs=3,
    )
    choice = r.choices[0]
    # OpenAI's fields cannot turn off the model's repeat penalty.
    check_entries(choice.logprobs.content, 3, choice.message.content, chosen_is_best=False)
    assert all(bytes(e.bytes).decode() == e.token for e in choice.logprobs.content)
    assert len(choice.logprobs.content) == r.usage.completion_tokens


def test_openai_chat_logprobs_streamed_match_the_whole_answer(oai):
    args = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        temperature=0,
        max_tokens=6,
        logprobs=True,
        top_logprobs=2,
    )
    whole = oai.chat.completions.create(**args).choices[0].logprobs.content
    streamed = []
    for chunk in oai.chat.completions.create(stream=True, **args):
        for c in chunk.choices:
            if c.logprobs and c.logprobs.content:
                streamed.extend(c.logprobs.content)
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in whole]


def test_openai_chat_without_logprobs_reports_none(oai):
    r = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], temperature=0, max_tokens=2
    )
    assert r.choices[0].logprobs is None


def test_openai_completion_legacy_logprobs(oai):
    r = oai.completions.create(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=5, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert "".join(lp.tokens) == r.choices[0].text
    offsets = [sum(len(t) for t in lp.tokens[:i]) for i in range(5)]
    assert lp.text_offset == offsets
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 1 <= len(top) <= 2 and max(top.values()) >= logprob
        assert token not in top or top[token] == pytest.approx(logprob)


def test_openai_completion_streamed_offsets_continue(oai):
    tokens, offsets = [], []
    for chunk in oai.completions.create(
        model=MODEL, prompt=PROMPT, temperature=0, max_tokens=5, logprobs=0, stream=True
    ):
        for c in chunk.choices:
            if c.logprobs:
                tokens.extend(c.logprobs.tokens)
                offsets.extend(c.logprobs.text_offset)
    assert len(tokens) == 5
    assert offsets == [sum(len(t) for t in tokens[:i]) for i in range(5)]


def test_ollama_generate_logprobs(oc):
    r = oc.generate(
        model=MODEL,
        prompt=PROMPT,
        raw=True,
        options={"temperature": 0, "num_predict": 5, "repeat_penalty": 1},
        logprobs=True,
        top_logprobs=4,
    )
    check_entries(r.logprobs, 4, r.response, chosen_is_best=True)
    assert len(r.logprobs) == r.eval_count


def test_ollama_chat_logprobs_streamed(oc):
    entries = []
    text = ""
    for part in oc.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        options={"temperature": 0, "num_predict": 5, "repeat_penalty": 1},
        logprobs=True,
        top_logprobs=1,
        stream=True,
    ):
        text += part.message.content
        entries.extend(part.logprobs or [])
    check_entries(entries, 1, text, chosen_is_best=True)


@pytest.mark.parametrize(
    "body",
    [
        {"logprobs": True, "top_logprobs": 21},
        {"logprobs": False, "top_logprobs": 2},
    ],
)
def test_absurd_logprob_requests_are_refused(body):
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **body}
    assert httpx.post(URL + "/v1/chat/completions", json=chat).status_code == 400
    assert httpx.post(URL + "/api/chat", json={**chat, "stream": False}).status_code == 400


def kiln_tokenize(text):
    out = subprocess.run([os.environ["KILN_BIN"], "tokenize", os.environ["KILN_SMOLLM2"], text],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_logit_bias_bans_and_forces_tokens(oai):
    def complete(bias):
        r = oai.completions.create(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=4, logit_bias=bias)
        return r.choices[0].text

    free = complete({})
    [paris] = kiln_tokenize(" Paris")
    assert free.startswith(" Paris")
    assert " Paris" not in complete({str(paris): -100})
    [banana] = kiln_tokenize(" banana")
    assert complete({str(banana): 100}) == " banana" * 4


def test_logit_bias_out_of_range_or_unknown_token_is_refused():
    for bias in [{"5": 150}, {"5": -101}, {"x": 1}, {"99999999": 1}]:
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "logit_bias": bias}
        assert httpx.post(URL + "/v1/completions", json=body).status_code == 400, bias


def test_completion_echo_prepends_the_prompt(oai):
    args = dict(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=4)
    plain = oai.completions.create(**args).choices[0].text
    assert oai.completions.create(echo=True, **args).choices[0].text == PROMPT + plain
    streamed = "".join(c.choices[0].text for c in oai.completions.create(echo=True, stream=True, **args) if c.choices)
    assert streamed == PROMPT + plain


def test_completion_echo_with_logprobs_is_refused():
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "echo": True, "logprobs": 1}
    r = httpx.post(URL + "/v1/completions", json=body)
    assert r.status_code == 400 and "echo" in r.json()["error"]["message"]


def metric(name):
    for line in httpx.get(URL + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_n_choices_compute_the_prompt_once(oai):
    # A question no earlier test sent.
    prompt = "Write a short poem about the number 7321 and the sea, in the style of a sailor's song."
    before = (metric("kiln_prompt_tokens_total"), metric("kiln_prompt_tokens_cached_total"))
    r = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=6, n=4, seed=3, temperature=1.2
    )
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert all(c.message.content for c in r.choices)
    assert 4 <= r.usage.completion_tokens <= 24
    n_prompt = r.usage.prompt_tokens
    assert n_prompt > 32
    prompt_tokens = metric("kiln_prompt_tokens_total") - before[0]
    cached = metric("kiln_prompt_tokens_cached_total") - before[1]
    # Four choices of the prompt; three of them start from the first one's full blocks, which
    # may itself have found the template's opening in the cache (usage's cached_tokens).
    assert prompt_tokens == 4 * n_prompt
    assert cached == r.usage.prompt_tokens_details.cached_tokens + 3 * ((n_prompt - 1) // 16 * 16)


def test_n_choices_greedy_are_identical_and_seeded_differ(oai):
    args = dict(model=MODEL, prompt="Once upon a time", max_tokens=12)
    greedy = oai.completions.create(n=2, temperature=0, **args).choices
    assert greedy[0].text == greedy[1].text
    seeded = oai.completions.create(n=4, temperature=1.5, seed=11, **args).choices
    assert len({c.text for c in seeded}) > 1
    again = oai.completions.create(n=4, temperature=1.5, seed=11, **args).choices
    assert [c.text for c in again] == [c.text for c in seeded]


def test_n_choices_stream_with_their_indexes(oai):
    texts = {}
    finished = set()
    for chunk in oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, n=3, temperature=0, stream=True
    ):
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1, 2}
    assert texts[0] and texts[0] == texts[1] == texts[2]


@pytest.mark.parametrize("n", [0, 17])
def test_n_choices_out_of_range_is_refused(n):
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 1, "n": n}
    assert httpx.post(URL + "/v1/completions", json=body).status_code == 400
