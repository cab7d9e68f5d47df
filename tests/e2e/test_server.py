"""End-to-end tests of `kiln serve` through the official `ollama` and `openai` clients.

Run by scripts/test-e2e.sh, which starts the server and sets KILN_URL (the server),
KILN_BIN (the kiln binary) and KILN_SMOLLM2 (the model file behind the name "smollm2").
"""

import json
import os
import subprocess

import httpx
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
MODEL = "smollm2"
GREEDY = {"temperature": 0, "num_predict": 8, "repeat_penalty": 1}


@pytest.fixture(scope="module")
def oc():
    return ollama.Client(host=URL)


@pytest.fixture(scope="module")
def ai():
    return openai.OpenAI(base_url=URL + "/v1", api_key="x")


def test_root_and_version():
    r = httpx.get(URL + "/")
    assert r.status_code == 200 and r.text == "Kiln is running"
    assert httpx.head(URL + "/").status_code == 200
    assert isinstance(httpx.get(URL + "/api/version").json()["version"], str)


def test_load_with_empty_prompt(oc):
    r = oc.generate(model=MODEL, prompt="")
    assert r.done is True
    assert r.done_reason == "load"


def test_load_with_empty_messages(oc):
    r = oc.chat(model="gemma3", messages=[])
    assert r.done is True
    assert r.done_reason == "load"


def test_generate_with_system_uses_the_template(oc):
    r = oc.generate(model=MODEL, prompt="Name a colour.", system="Answer in one word.", options=GREEDY)
    assert r.done is True and r.response
    # The template adds the system and user turns around the prompt.
    assert r.prompt_eval_count > len(kiln_tokenize("Answer in one word. Name a colour."))


def test_generate_greedy_not_streamed(oc):
    r = oc.generate(model=MODEL, prompt="The capital of France is", raw=True, options=GREEDY)
    assert r.done is True
    assert r.response.startswith(" Paris")
    assert r.done_reason in ("stop", "length")
    assert r.eval_count == 8 or r.done_reason == "stop"
    assert r.prompt_eval_count == len(kiln_tokenize("The capital of France is"))
    for field in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(r, field), int)


def test_generate_greedy_streamed(oc):
    parts = list(oc.generate(model=MODEL + ":latest", prompt="The capital of France is", raw=True,
                             options=GREEDY, stream=True))
    assert parts[-1].done is True
    assert all(not p.done for p in parts[:-1])
    text = "".join(p.response for p in parts)
    assert text.startswith(" Paris")
    assert parts[-1].eval_count >= 1


def test_chat_not_streamed_and_streamed(oc):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = oc.chat(model=MODEL, messages=messages, options=GREEDY)
    assert r.message.role == "assistant"
    assert r.message.content
    assert r.done is True
    parts = list(oc.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert parts[-1].done is True
    # Greedy decoding: the streamed answer is the same text.
    assert "".join(p.message.content for p in parts) == r.message.content


def test_chat_gemma(oc):
    r = oc.chat(model="gemma3", messages=[{"role": "user", "content": "Say hello."}],
                options={"temperature": 0, "num_predict": 4})
    assert r.done is True and r.eval_count >= 1


def test_list(oc):
    names = {m.model for m in oc.list().models}
    assert {"smollm2:latest", "gemma3:latest", "named:latest"} <= names
    m = next(m for m in oc.list().models if m.model == "smollm2:latest")
    assert m.size > 0
    assert len(m.digest) == 64
    assert m.details.format == "gguf"
    assert m.details.family == "llama"
    assert m.details.quantization_level == "Q4_1"
    assert m.details.parameter_size.endswith("M")


def test_show(oc):
    s = oc.show(MODEL)
    assert s.details.family == "llama"
    assert s.modelinfo["general.architecture"] == "llama"
    assert s.modelinfo["llama.context_length"] > 0
    assert "<|im_start|>" in s.template
    assert "completion" in s.capabilities


def test_ps(oc):
    oc.generate(model=MODEL, prompt="")
    names = {m.model for m in oc.ps().models}
    assert "smollm2:latest" in names


def test_num_ctx_change(oc):
    r = oc.generate(model=MODEL, prompt="The capital of France is", raw=True,
                    options={**GREEDY, "num_ctx": 512})
    assert r.response.startswith(" Paris")
    ps = {m.model: m for m in oc.ps().models}
    assert ps["smollm2:latest"].context_length == 512
    # A prompt longer than the context is a clear client error.
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model=MODEL, prompt="word " * 600, raw=True, options={**GREEDY, "num_ctx": 64})
    assert e.value.status_code == 400
    assert "context" in str(e.value)


def kiln_tokenize(text):
    out = subprocess.run([os.environ["KILN_BIN"], "tokenize", os.environ["KILN_SMOLLM2"], text],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_openai_chat_not_streamed(ai, oc):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    r = ai.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=8)
    assert r.object == "chat.completion"
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    o = oc.chat(model=MODEL, messages=messages, options={"num_predict": 1}, stream=False)
    assert r.usage.prompt_tokens == o.prompt_eval_count
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_chat_streamed_with_usage(ai):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    full = ai.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=6)
    chunks = list(ai.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=6,
                                             stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_openai_completions(ai):
    r = ai.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=8,
                              extra_body={"num_ctx": 1024})
    assert r.choices[0].text.startswith(" Paris")
    assert r.usage.prompt_tokens == len(kiln_tokenize("The capital of France is"))
    assert r.choices[0].finish_reason == "length" or r.usage.completion_tokens < 8
    chunks = list(ai.completions.create(model=MODEL, prompt="The capital of France is", temperature=0,
                                        max_tokens=8, stream=True, stop=["\n"]))
    assert "".join(c.choices[0].text for c in chunks).startswith(" Paris")


def test_openai_models(ai):
    ids = {m.id for m in ai.models.list()}
    assert {"smollm2:latest", "gemma3:latest"} <= ids
    assert ai.models.retrieve("smollm2").id == "smollm2:latest"
    with pytest.raises(openai.NotFoundError):
        ai.models.retrieve("nope")


def test_bad_json_is_400():
    r = httpx.post(URL + "/api/generate", content=b"{not json")
    assert r.status_code == 400
    assert "error" in r.json()


def test_wrong_type_is_400():
    r = httpx.post(URL + "/api/chat", json={"model": MODEL, "messages": "hello"})
    assert r.status_code == 400
    r = httpx.post(URL + "/v1/chat/completions", json={"model": MODEL, "messages": [], "temperature": "hot"})
    assert r.status_code == 400
    assert r.json()["error"]["message"]


def test_unknown_model_is_404(oc, ai):
    r = httpx.post(URL + "/api/generate", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope' not found"}
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    with pytest.raises(openai.NotFoundError) as e:
        ai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "model 'nope' not found" in str(e.value)


@pytest.mark.parametrize("options", [{"temperature": -1}, {"top_p": 7}, {"num_ctx": 0}, {"num_ctx": 2_000_000}])
def test_absurd_options_are_400(oc, options):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model=MODEL, prompt="x", options=options)
    assert e.value.status_code == 400


def test_openai_text_parts_and_prompt_too_long(ai):
    r = ai.chat.completions.create(model=MODEL, max_tokens=2, temperature=0,
                                   messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert r.choices[0].message.content is not None
    with pytest.raises(openai.BadRequestError) as e:
        ai.completions.create(model=MODEL, prompt="word " * 300, max_tokens=2, extra_body={"num_ctx": 64})
    assert "context" in e.value.message


def test_openai_bad_temperature_is_400(ai):
    with pytest.raises(openai.BadRequestError):
        ai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=-1)


def test_images_are_400():
    r = httpx.post(URL + "/api/generate", json={"model": MODEL, "prompt": "x", "images": ["aGk="]})
    assert r.status_code == 400
    assert "images" in r.json()["error"]


def test_client_disconnect_mid_stream(oc):
    # Hot sampling over the whole vocabulary rarely ends early: without cancellation the
    # server would keep generating all 1500 tokens before serving the next request.
    body = {"model": MODEL, "prompt": "Once upon a time", "raw": True,
            "options": {"temperature": 1.5, "top_k": 0, "top_p": 1, "seed": 3, "num_predict": 1500}}
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", URL + "/api/generate", json=body) as r:
            assert r.status_code == 200
            first = next(r.iter_lines())
            assert json.loads(first)["done"] is False
        # Leaving the block closes the connection mid-stream.
    r = oc.generate(model=MODEL, prompt="The capital of France is", raw=True, options=GREEDY)
    assert r.done is True
    assert r.response.startswith(" Paris")


def loaded_models(oc):
    return {m.model: m for m in oc.ps().models}


def wait_until_unloaded(oc, name, seconds=5.0):
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if name not in loaded_models(oc):
            return True
        time.sleep(0.1)
    return False


def test_keep_alive_sets_expiry_and_zero_unloads(oc):
    import datetime
    r = oc.generate(model="named", prompt="The capital of France is", raw=True, options=GREEDY, keep_alive="10m")
    assert r.response.startswith(" Paris")
    ps = loaded_models(oc)["named:latest"]
    left = ps.expires_at - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=9) < left <= datetime.timedelta(minutes=10, seconds=5)
    # keep_alive 0 on a request: answered, then unloaded.
    r = oc.generate(model="named", prompt="The capital of France is", raw=True, options=GREEDY, keep_alive=0)
    assert r.response.startswith(" Paris")
    assert wait_until_unloaded(oc, "named:latest")
    # An empty prompt with keep_alive 0 unloads without generating; the next request reloads.
    oc.generate(model="named", prompt="")
    assert "named:latest" in loaded_models(oc)
    r = oc.generate(model="named", prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert wait_until_unloaded(oc, "named:latest")
    r = oc.chat(model="named", messages=[{"role": "user", "content": "Hi"}], options=GREEDY, keep_alive=-1)
    assert r.message.content
    assert loaded_models(oc)["named:latest"].expires_at.year > 2100


def test_bad_keep_alive_is_400():
    r = httpx.post(URL + "/api/generate", json={"model": MODEL, "prompt": "hi", "keep_alive": "soon"})
    assert r.status_code == 400 and "keep_alive" in r.json()["error"]


def test_parallel_requests_match_sequential_ones(oc):
    # Sixteen greedy requests at once give exactly what each gives alone.
    import concurrent.futures
    prompts = [f"Count from {i} to {i + 5}:" for i in range(16)]
    opts = {"temperature": 0, "num_predict": 12, "repeat_penalty": 1}
    alone = [oc.generate(model=MODEL, prompt=p, raw=True, options=opts).response for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda p: ollama.Client(host=URL).generate(model=MODEL, prompt=p, raw=True,
                                                                            options=opts).response, prompts))
    assert together == alone


def test_a_shared_prefix_is_served_from_the_cache(ai):
    system = " ".join(f"Rule {i}: be concise and exact." for i in range(60))
    def ask(question):
        return ai.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": question}])
    first = ask("What is 2 + 2?")
    second = ask("Name a colour.")
    cached = second.usage.prompt_tokens_details.cached_tokens
    # Everything up to the first differing token, in whole blocks of 16, comes from the cache.
    assert cached >= first.usage.prompt_tokens - 32
    assert cached < second.usage.prompt_tokens


def test_metrics_and_health(oc):
    assert httpx.get(URL + "/health").json() == {"status": "ok"}
    oc.generate(model=MODEL, prompt="Hi", raw=True, options={"num_predict": 2})
    text = httpx.get(URL + "/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["kiln_requests_total"] >= 1
    assert values["kiln_generated_tokens_total"] >= 1
    assert values["kiln_time_to_first_token_seconds_count"] >= 1
    assert values["kiln_kv_blocks_free"] > 0
    assert "kiln_prefix_cache_hit_rate" in values
