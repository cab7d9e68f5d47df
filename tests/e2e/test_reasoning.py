"""End-to-end tests of reasoning output: a model whose template opens a `<think>` block when
thinking is on (as Qwen 3's and DeepSeek-R1's do) gets its answer split into Ollama's
`thinking` and OpenAI-style `reasoning_content`; `think: false` renders the template without
the block; a model whose template has no thinking block refuses `think: true`.

SmolLM2 never writes `</think>` itself, so with the block opened by the prompt its whole
answer is thinking, and without it its whole answer is content: which field the text lands in
shows the template saw the switch and the server split the stream.
"""

import os

import httpx
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
GREEDY = {"temperature": 0, "num_predict": 12, "repeat_penalty": 1}
# A Qwen 3-style template: thinking on leaves the block open, off writes an empty one.
THINKING_TEMPLATE = """<|im_start|>user
{{ .Prompt }}<|im_end|>
<|im_start|>assistant
{{ if .Think }}<think>
{{ else }}<think>

</think>

{{ end }}"""
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def oc():
    client = ollama.Client(host=URL)
    if "smollm2:135m" not in {m.model for m in client.list().models}:
        client.pull("smollm2:135m")
    client.create(model="thinker", from_="smollm2:135m", template=THINKING_TEMPLATE, parameters=GREEDY)
    # Deleted again, so that the library holds what it held before (other tests count its blobs).
    yield client
    client.delete("thinker")


@pytest.fixture(scope="module")
def ai():
    return openai.OpenAI(base_url=URL + "/v1", api_key="x")


def test_a_thinking_template_shows_the_capability(oc):
    assert "thinking" in oc.show("thinker").capabilities
    assert "thinking" not in oc.show("smollm2:135m").capabilities


def test_think_true_puts_the_open_block_into_thinking(oc):
    r = oc.chat(model="thinker", messages=QUESTION, think=True)
    assert r.message.thinking and r.message.content == ""
    streamed = list(oc.chat(model="thinker", messages=QUESTION, think=True, stream=True))
    assert "".join(c.message.thinking or "" for c in streamed) == r.message.thinking
    assert "".join(c.message.content for c in streamed) == ""
    g = oc.generate(model="thinker", prompt=QUESTION[0]["content"], think=True)
    assert g.thinking == r.message.thinking and g.response == ""


def test_think_false_answers_without_thinking(oc):
    r = oc.chat(model="thinker", messages=QUESTION, think=False)
    assert r.message.content and not r.message.thinking
    unset = oc.chat(model="thinker", messages=QUESTION)
    assert unset.message.content == r.message.content


def openai_greedy():
    # The rest (length, repeat penalty) comes from the model's parameters.
    return {"temperature": 0}


def test_openai_reasoning_effort_and_reasoning_content(oc, ai):
    thinking = oc.chat(model="thinker", messages=QUESTION, think=True).message.thinking
    r = ai.chat.completions.create(model="thinker", messages=QUESTION, reasoning_effort="high", **openai_greedy())
    message = r.choices[0].message
    assert message.model_extra["reasoning_content"] == thinking and message.content == ""
    chunks = list(ai.chat.completions.create(model="thinker", messages=QUESTION, reasoning_effort="high",
                                             stream=True, **openai_greedy()))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == thinking
    assert deltas[0].role == "assistant"
    off = ai.chat.completions.create(model="thinker", messages=QUESTION, reasoning_effort="none", **openai_greedy())
    assert off.choices[0].message.content and "reasoning_content" not in (off.choices[0].message.model_extra or {})


def test_think_true_on_a_model_that_cannot_think_is_400(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="smollm2:135m", messages=QUESTION, think=True)
    assert e.value.status_code == 400 and "thinking" in e.value.error
    r = httpx.post(URL + "/api/chat", json={"model": "smollm2:135m", "messages": QUESTION, "think": "loud"})
    assert r.status_code == 400 and "think" in r.json()["error"]
