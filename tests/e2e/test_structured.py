"""Structured output through both APIs: every answer must validate against its schema.

The corpus (tests/e2e/schemas.json, written by scripts/gen-schema-corpus.py) runs through
Ollama's `format` and OpenAI's `response_format`; answers are checked with the `jsonschema`
package, an implementation independent of Kiln's. Requests run concurrently, so the
server batches them as it would for many clients.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import ollama
import openai
import pydantic
import pytest

URL = os.environ["KILN_URL"]
MODEL = "smollm2"
# Every string, number and array in the corpus is bounded; this budget lets any answer finish.
BUDGET = 256
CORPUS = json.loads((Path(__file__).parent / "schemas.json").read_text())


def prompt(schema):
    return [{"role": "user", "content": "Reply with JSON matching this schema, with realistic values.\n"
                                        f"Schema: {json.dumps(schema)}"}]


def ask_ollama(entry):
    r = ollama.Client(host=URL).chat(model=MODEL, messages=prompt(entry["schema"]), format=entry["schema"],
                                      options={"temperature": 0, "num_predict": BUDGET, "repeat_penalty": 1})
    return r.message.content, r.done_reason


def ask_openai(entry):
    r = openai.OpenAI(base_url=URL + "/v1", api_key="x").chat.completions.create(
        model=MODEL, messages=prompt(entry["schema"]), temperature=0, max_tokens=BUDGET,
        response_format={"type": "json_schema",
                         "json_schema": {"name": entry["name"], "schema": entry["schema"], "strict": True}})
    return r.choices[0].message.content, r.choices[0].finish_reason


def run_all(ask, corpus):
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip((e["name"] for e in corpus), pool.map(ask, corpus)))


@pytest.fixture(scope="module")
def ollama_answers():
    return run_all(ask_ollama, CORPUS)


@pytest.fixture(scope="module")
def openai_answers():
    return run_all(ask_openai, CORPUS)


def check(entry, answer):
    text, reason = answer
    assert reason == "stop", f"cut by the token budget: {text!r}"
    jsonschema.validate(json.loads(text), entry["schema"], cls=jsonschema.Draft202012Validator)


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CORPUS) >= 100
    text = json.dumps(CORPUS)
    for keyword in ("enum", "$ref", "$defs", "pattern", "minimum", "maxItems", "anyOf", "const"):
        assert keyword in text
    assert any(set(e["schema"].get("properties", {})) - set(e["schema"].get("required", [])) for e in CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[e["name"] for e in CORPUS])
def test_ollama_format_output_validates(entry, ollama_answers):
    check(entry, ollama_answers[entry["name"]])


@pytest.mark.parametrize("entry", CORPUS, ids=[e["name"] for e in CORPUS])
def test_openai_json_schema_output_validates(entry, openai_answers):
    check(entry, openai_answers[entry["name"]])


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=24)
    country: str = pydantic.Field(max_length=24)
    population: int = pydantic.Field(ge=0, le=50_000_000)
    capital: bool


MESSAGES = [{"role": "user", "content": "Describe Paris as JSON: name, country, population, capital."}]


def test_openai_parse_returns_a_pydantic_object():
    client = openai.OpenAI(base_url=URL + "/v1", api_key="x")
    r = client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=City, temperature=0,
                                      max_tokens=BUDGET)
    city = r.choices[0].message.parsed
    assert isinstance(city, City), r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def test_ollama_format_with_a_pydantic_schema_parses():
    r = ollama.Client(host=URL).chat(model=MODEL, messages=MESSAGES, format=City.model_json_schema(),
                                      options={"temperature": 0, "num_predict": BUDGET})
    assert r.done_reason == "stop"
    assert isinstance(City.model_validate_json(r.message.content), City)


def test_json_mode_gives_an_object_in_both_apis():
    r = ollama.Client(host=URL).generate(model=MODEL, prompt="Describe a cat as JSON.", format="json",
                                          options={"temperature": 0, "num_predict": BUDGET})
    assert r.done_reason == "stop" and isinstance(json.loads(r.response), dict), r.response
    r = openai.OpenAI(base_url=URL + "/v1", api_key="x").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Describe a dog as JSON."}], temperature=0,
        max_tokens=BUDGET, response_format={"type": "json_object"}, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in r if c.choices)
    assert isinstance(json.loads(text), dict), text


def structured(extension, content, max_tokens=64, endpoint="chat"):
    client = openai.OpenAI(base_url=URL + "/v1", api_key="x")
    if endpoint == "chat":
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}],
                                           temperature=0, max_tokens=max_tokens,
                                           extra_body={"structured_outputs": extension})
        return r.choices[0].message.content, r.choices[0].finish_reason
    r = client.completions.create(model=MODEL, prompt=content, temperature=0, max_tokens=max_tokens,
                                  extra_body={"structured_outputs": extension})
    return r.choices[0].text, r.choices[0].finish_reason


def test_regex_through_the_extension_field():
    rx = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    text, reason = structured({"regex": rx}, "When did the Berlin wall fall? Give the date.")
    assert reason == "stop" and re.fullmatch(rx, text), text
    text, reason = structured({"regex": r"(yes|no), because [a-z ]{1,40}\."}, "Is the sky blue?", endpoint="text")
    assert reason == "stop" and re.fullmatch(r"(yes|no), because [a-z ]{1,40}\.", text), text


def test_lark_grammar_and_choice_through_the_extension_field():
    grammar = 'start: "The answer is " NUMBER "."\nNUMBER: /[0-9]{1,3}/'
    text, reason = structured({"grammar": grammar}, "What is 6 times 7?")
    assert reason == "stop" and re.fullmatch(r"The answer is [0-9]{1,3}\.", text), text
    text, reason = structured({"choice": ["Paris", "London", "Berlin"]}, "What is the capital of France?")
    assert reason == "stop" and text in ("Paris", "London", "Berlin"), text


@pytest.mark.parametrize("body", [
    {"format": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}},
    {"format": {"type": "strng"}},
    {"format": "xml"},
])
def test_invalid_ollama_format_is_400(body):
    r = httpx.post(URL + "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                           "stream": False, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]


@pytest.mark.parametrize("extra", [
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strng"}}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
    {"structured_outputs": {"regex": "([a-z]"}},
    {"structured_outputs": {"grammar": "start: undefined_rule"}},
    {"structured_outputs": {"regex": "a", "choice": ["a"]}},
])
def test_invalid_openai_constraints_are_400(extra):
    client = openai.OpenAI(base_url=URL + "/v1", api_key="x")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                                       extra_body=extra)
    assert e.value.status_code == 400


def test_keywords_that_cannot_be_enforced_are_ignored_unless_strict():
    schema = {"type": "object", "properties": {"day": {"type": "string", "format": "no-such-format", "maxLength": 10}},
              "required": ["day"], "additionalProperties": False}
    r = ollama.Client(host=URL).chat(model=MODEL, messages=prompt(schema), format=schema,
                                      options={"temperature": 0, "num_predict": BUDGET})
    assert r.done_reason == "stop" and isinstance(json.loads(r.message.content)["day"], str), r.message.content
    client = openai.OpenAI(base_url=URL + "/v1", api_key="x")
    rf = {"type": "json_schema", "json_schema": {"name": "day", "schema": schema, "strict": True}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=prompt(schema), response_format=rf)
    assert "no-such-format" in str(e.value)
