"""End-to-end tests of tool calling with the official clients.

A 135M model seldom calls a tool by itself, so the calls here are forced (`tool_choice`
required or named), which constrains decoding to a valid call in the template's format; the
server then parses that generated text back into a call. The model is SmolLM2 under a
Hermes/Qwen-style template (`<tool_call>{...}</tool_call>`) that also feeds calls and tool
results back, so a whole round trip (call, result, answer) goes through the template.
"""

import json
import os

import httpx
import jsonschema
import ollama
import openai
import pytest

URL = os.environ["KILN_URL"]
GREEDY = {"temperature": 0, "num_predict": 48, "repeat_penalty": 1}
HERMES_TEMPLATE = """{{- if .Tools }}<|im_start|>system
You may call these functions:
<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>
To call one, write <tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{{ end }}
{{- range .Messages }}
{{- if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}
{{- range .ToolCalls }}<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
</tool_call>
{{- end }}<|im_end|>
{{ else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
"""
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 10}}, "required": ["zone"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Time in a zone", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def oc():
    client = ollama.Client(host=URL)
    if "smollm2:135m" not in {m.model for m in client.list().models}:
        client.pull("smollm2:135m")
    client.create(model="toolcaller", from_="smollm2:135m", template=HERMES_TEMPLATE, parameters=GREEDY)
    # Deleted again, so that the library holds what it held before (other tests count its blobs).
    yield client
    client.delete("toolcaller")


@pytest.fixture(scope="module")
def ai(oc):
    return openai.OpenAI(base_url=URL + "/v1", api_key="x")


def valid_call(name, arguments):
    """A call's arguments (a dict) validate against its tool's schema."""
    jsonschema.validate(arguments, SCHEMAS[name])
    return True


def test_a_template_with_tool_calls_shows_the_capability(oc):
    assert "tools" in oc.show("toolcaller").capabilities
    assert "tools" not in oc.show("smollm2:135m").capabilities


def test_tools_on_a_model_without_them_are_refused(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="smollm2:135m", messages=QUESTION, tools=TOOLS)
    assert e.value.status_code == 400 and "does not support tools" in str(e.value)


def test_required_forces_a_valid_call_of_some_tool(ai):
    r = ai.chat.completions.create(model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice="required")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert valid_call(call.function.name, json.loads(call.function.arguments))


def test_a_named_function_forces_a_call_of_it(ai):
    named = {"type": "function", "function": {"name": "get_time"}}
    r = ai.chat.completions.create(model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice=named)
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    assert valid_call("get_time", json.loads(call.function.arguments))


def test_a_call_that_cannot_be_made_is_refused(ai):
    named = {"type": "function", "function": {"name": "launch"}}
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        ai.chat.completions.create(model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice=named)
    with pytest.raises(openai.BadRequestError, match="no tools"):
        ai.chat.completions.create(model="toolcaller", messages=QUESTION, tool_choice="required")


def round_trip_messages(call):
    """The conversation after `call`, with its result."""
    return QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 21, "sky": "sunny"}'},
    ]


def test_openai_round_trip(ai):
    first = ai.chat.completions.create(model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    messages = round_trip_messages(call.model_dump(exclude_none=True))
    final = ai.chat.completions.create(model="toolcaller", messages=messages, tools=TOOLS, tool_choice="none")
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
    # The call and its result went through the template into the prompt.
    result_tokens = final.usage.prompt_tokens - first.usage.prompt_tokens
    assert result_tokens > len('{"temperature": 21, "sky": "sunny"}') // 4


def test_openai_round_trip_streamed(ai):
    stream = ai.chat.completions.create(
        model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice="required", stream=True
    )
    chunks = list(stream)
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].type == "function" and deltas[0].id
    name, arguments = deltas[0].function.name, json.loads(deltas[0].function.arguments)
    assert valid_call(name, arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The same call as the unstreamed answer (greedy decoding).
    whole = ai.chat.completions.create(model="toolcaller", messages=QUESTION, tools=TOOLS, tool_choice="required")
    call = whole.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (name, arguments)
    call = {"id": deltas[0].id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    final = ai.chat.completions.create(
        model="toolcaller", messages=round_trip_messages(call), tools=TOOLS, tool_choice="none", stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in final if c.choices)
    assert text


def test_ollama_round_trip(oc):
    # Ollama has no tool_choice: the call is forced here by asking in the OpenAI API, and the
    # Ollama client then sends it back with its result.
    forced = httpx.post(
        URL + "/v1/chat/completions",
        json={"model": "toolcaller", "messages": QUESTION, "tools": TOOLS, "tool_choice": "required"},
        timeout=120,
    ).json()
    call = forced["choices"][0]["message"]["tool_calls"][0]["function"]
    arguments = json.loads(call["arguments"])
    messages = QUESTION + [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": call["name"], "arguments": arguments}}]},
        {"role": "tool", "tool_name": call["name"], "content": "21 degrees and sunny"},
    ]
    r = oc.chat(model="toolcaller", messages=messages, tools=TOOLS)
    assert r.message.content or r.message.tool_calls
    for c in r.message.tool_calls or []:
        assert c.function.name in SCHEMAS and isinstance(c.function.arguments, dict)
    streamed = list(oc.chat(model="toolcaller", messages=messages, tools=TOOLS, stream=True))
    assert "".join(c.message.content for c in streamed) == r.message.content
    calls = [tc for c in streamed for tc in (c.message.tool_calls or [])]
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        (c.function.name, c.function.arguments) for c in r.message.tool_calls or []
    ]

