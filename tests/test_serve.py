"""`python -m secml_recipes.use.serve`: llama-cpp-python's OpenAI-compatible server with the training chat format."""

import importlib.util
import json
import urllib.request

import pytest

from helpers import post_json, served
from secml_recipes.families import canonical_conversation, get_family
from secml_recipes.tasks.tools import TOOL_SCHEMAS
from secml_recipes.use.serve import completion_response

NEEDS_SERVER = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None,
    reason="llama-cpp-python and its server are not installed (make llama-cpp builds them; not part of make test)",
)


@pytest.mark.parametrize(
    "family, text, calls",
    [
        (
            "mistral",
            '[TOOL_CALLS][{"name": "stat_file", "arguments": {"path": "/x"}, "id": "abcDEF123"}]',
            [("abcDEF123", "stat_file", {"path": "/x"})],
        ),
        (
            "llama3",
            '<|python_tag|>{"name": "hash_binary", "parameters": {"path": "/bin/su"}}',
            [(None, "hash_binary", {"path": "/bin/su"})],
        ),
        (
            "qwen3",
            'Checking.<tool_call>{"name": "search_findings", "arguments": {"query": "suid"}}</tool_call>',
            [(None, "search_findings", {"query": "suid"})],
        ),
    ],
)
def test_calls_in_the_family_format_come_back_as_openai_tool_calls(family, text, calls):
    response = completion_response(text, get_family(family), "m", 10, 5)
    (choice,) = response["choices"]
    assert choice["finish_reason"] == "tool_calls" and response["usage"]["total_tokens"] == 15
    got = choice["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got] == [
        (name, args) for _, name, args in calls
    ]
    assert all(c["type"] == "function" and c["id"] for c in got)
    assert [c["id"] for c in got if calls[0][0]] == [i for i, _, _ in calls if i]


def test_plain_and_malformed_answers_are_text():
    response = completion_response("Conclusion: fine.", get_family("qwen3"), "m", 1, 1)
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Conclusion: fine."}
    broken = '<tool_call>{"name": "x", "arguments": </tool_call>'
    response = completion_response(broken, get_family("qwen3"), "m", 1, 1)
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["choices"][0]["message"]["content"] == broken


@pytest.fixture(scope="module")
def server(tiny_models, llama_cpp_source, tmp_path_factory):
    """A smoke GGUF (the tiny Llama, f32) served on a free localhost port, with its source tokenizer."""
    from secml_recipes.deploy.gguf import convert_to_gguf

    gguf = convert_to_gguf(tiny_models["llama"], tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf", "f32")
    # the declared tools alone are ~4,000 tokens in the tiny 1,024-token vocabulary
    with served(gguf, "--n-ctx", "8192", "--tokenizer", str(tiny_models["llama"])) as base:
        with urllib.request.urlopen(base + "/v1/models", timeout=5) as reply:
            models = json.loads(reply.read())
        yield base, models, gguf


def _training_prompt_tokens(tokenizer_path, messages, tools=None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    text = tokenizer.apply_chat_template(
        *canonical_conversation(messages, tools), tokenize=False, add_generation_prompt=True
    )
    return tokenizer, text, len(tokenizer(text, add_special_tokens=False)["input_ids"])


@NEEDS_SERVER
@pytest.mark.slow
def test_chat_request_is_rendered_as_training_rendered_it(server, tiny_models):
    base, models, gguf = server
    assert models["data"][0]["id"] == "tiny-f32"
    messages = [{"role": "system", "content": "You are secml."}, {"role": "user", "content": "Is /usr/bin/su stock?"}]
    reply = post_json(base + "/v1/chat/completions", {"model": "tiny-f32", "messages": messages, "max_tokens": 8})
    _, text, n_prompt = _training_prompt_tokens(tiny_models["llama"], messages)
    assert reply["usage"]["prompt_tokens"] == n_prompt, "the server must see the prompt training rendered"
    assert reply["choices"][0]["message"]["role"] == "assistant" and reply["usage"]["completion_tokens"] <= 8
    # Same runtime, same prompt, greedy: the evaluation's llama.cpp generator writes the same answer.
    from secml_recipes.use.generation import LlamaCppGenerator

    generator = LlamaCppGenerator(str(gguf), str(tiny_models["llama"]))
    (expected,) = generator.generate([text], 8)
    assert (reply["choices"][0]["message"]["content"] or "") == expected


@NEEDS_SERVER
@pytest.mark.slow
def test_tool_calling_request_with_tool_history(server, tiny_models):
    base, _, _ = server
    messages = [
        {"role": "system", "content": "You are secml."},
        {"role": "user", "content": "Check /usr/bin/su."},
        {
            "role": "assistant",
            "content": "",  # llama-cpp-python's request model refuses null content
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "hash_binary", "arguments": '{"path": "/usr/bin/su"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "hash_binary", "content": '{"matches_package": true}'},
    ]
    reply = post_json(base + "/v1/chat/completions", {"messages": messages, "tools": TOOL_SCHEMAS, "max_tokens": 8})
    _, _, n_prompt = _training_prompt_tokens(tiny_models["llama"], messages, TOOL_SCHEMAS)
    assert reply["usage"]["prompt_tokens"] == n_prompt, "tools and tool history render as in training"
    choice = reply["choices"][0]
    assert choice["finish_reason"] in ("stop", "tool_calls")
    for call in choice["message"].get("tool_calls") or []:
        assert call["type"] == "function" and isinstance(json.loads(call["function"]["arguments"]), dict)


@NEEDS_SERVER
@pytest.mark.slow
def test_response_format_and_tools_are_decoded_under_their_schemas(server):
    base, _, _ = server
    schema = {
        "type": "object",
        "properties": {"risk_level": {"enum": ["low", "medium", "high", "critical"]}},
        "required": ["risk_level"],
        "additionalProperties": False,
    }
    messages = [{"role": "user", "content": "How risky is a host with a setuid /tmp/sh?"}]
    body = {"messages": messages, "max_tokens": 40}
    fmt = {"type": "json_schema", "json_schema": {"name": "risk", "schema": schema}}
    reply = post_json(base + "/v1/chat/completions", {**body, "response_format": fmt})
    import jsonschema

    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), schema)
    stat = [t for t in TOOL_SCHEMAS if t["function"]["name"] == "stat_file"]
    asked = [{"role": "user", "content": "Is /usr/bin/su stock?"}]
    reply = post_json(
        base + "/v1/chat/completions",
        {"messages": asked, "tools": stat, "tool_choice": "required", "max_tokens": 200},
    )
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    calls = choice["message"]["tool_calls"]
    assert 1 <= len(calls) <= 4  # up to 4 calls a turn
    for call in calls:  # /usr/bin/su is the only path the request names
        assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
            "stat_file",
            {"path": "/usr/bin/su"},
        )
