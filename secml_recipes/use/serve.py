"""Serve a GGUF over an OpenAI-compatible HTTP API: llama-cpp-python's server with the training chat format.

    make llama-cpp && pip install -e '.[serve]'
    secml serve --model models/generalist-gguf/generalist-q8_0.gguf --port 8000
    curl localhost:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "hi"}]}'

The server is llama-cpp-python's own (`llama_cpp.server.app.create_app`: /v1/chat/completions, /v1/completions,
/v1/models). Its chat handler is replaced by one registered as `secml` that runs the model as training and the
evaluation did: the conversation is put in canonical form (`families.canonical_conversation`), rendered by the
chat template the model was trained with (the GGUF's own, or `--tokenizer SOURCE_FOLDER`), decoded greedily in
llama.cpp up to the family's end-of-turn and stop tokens (`evaluation.generation.llama_cpp_generate`), and the
answer is parsed with the family's tool-call parser, so a call comes back in the API's `tool_calls` with
`finish_reason: "tool_calls"`. Sampling parameters are ignored (decoding is greedy, as evaluated) and
`stream: true` is refused.

Output is constrained unless the server runs with `--no-constrain` (`request_constraint`): a `response_format` of
type `json_schema` (OpenAI's form, which `openai_response_format` passes through llama-cpp-python's request model)
is decoded under its schema (`json_object`: under its `schema`, else any JSON object), and a request with `tools` under
the tool-call constraint (tasks/constraints.py): one of the declared tools with arguments under its schema (a path
or pid only one the conversation names), in the family's call format, or, unless `tool_choice` is "required", a
plain answer that opens no call (the only choice with `tool_choice` "none").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.deploy.gguf import gguf_architecture
from secml_recipes.families import ChatFamily, canonical_conversation
from secml_recipes.tasks.constraints import TOOL_CHOICES, Constraint, tool_turn_constraint
from secml_recipes.use.constrained import llama_grammar
from secml_recipes.use.generation import _family_or_none, gguf_tokenizer, llama_cpp_generate

HANDLER_NAME = "secml"


def completion_response(text: str, family: ChatFamily, model: str, n_prompt: int, n_new: int) -> dict:
    """An OpenAI chat completion for one assistant output: its text, and its calls as `tool_calls`."""
    turn = family.parse_tool_calls(text)
    message: dict = {"role": "assistant", "content": turn.content if turn.malformed is None else text}
    finish = "stop"
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": call["id"] or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in turn.calls
        ]
        message["content"] = turn.content or None
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new},
    }


def with_tool_names(messages: list[dict]) -> list[dict]:
    """Tool results with the `name` of the call they answer: llama-cpp-python's request model drops a tool
    message's name, while the training templates print it."""
    names = {c.get("id"): c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
    return [
        dict(m, name=names.get(m.get("tool_call_id"))) if m.get("role") == "tool" and not m.get("name") else m
        for m in messages
    ]


def request_constraint(
    family: ChatFamily, messages: list[dict], tools: list[dict] | None, response_format: dict | None, tool_choice=None
) -> Constraint | None:
    """What a chat request's answer must be (module docstring), or None for free text."""
    kind = (response_format or {}).get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        if not isinstance(spec.get("schema"), dict):
            raise ValueError("response_format json_schema needs a `schema` object: {'name': ..., 'schema': {...}}")
        return Constraint(spec["schema"])
    if kind == "json_object":  # llama-cpp-python's own form carries the schema here
        schema = response_format.get("schema")
        return Constraint(schema if isinstance(schema, dict) else {"type": "object"})
    if tools:
        choice = tool_choice if tool_choice in TOOL_CHOICES else "auto"  # a named function: any declared one
        try:
            return tool_turn_constraint(tools, None, family.tool_format, messages, choice)
        except ValueError:  # no declared tool can be called with what the conversation names: answer in text
            return None
    return None


def openai_response_format(app):
    """`app` (ASGI) taking OpenAI's `response_format: {"type": "json_schema", "json_schema": {"schema": ...}}`, which
    llama-cpp-python's request model refuses: the request is rewritten to its own form (`{"type": "json_object",
    "schema": ...}`) before the model reads it."""

    async def rewritten(scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        fmt = request.get("response_format") if isinstance(request, dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            request["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
            body = json.dumps(request).encode()
            scope = {
                **scope,
                "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                + [(b"content-length", str(len(body)).encode())],
            }
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return rewritten


def make_handler(
    tokenizer,
    family: ChatFamily,
    model_name: str,
    native: bool,
    default_max_tokens: int = 1024,
    constrain: bool = True,
):
    """The llama-cpp-python chat completion handler that renders, decodes and parses as training did (`native`:
    llama.cpp tokenizes, for a GGUF served without its source folder), under `request_constraint` unless
    `constrain` is off."""

    def handler(
        *,
        llama,
        messages,
        tools=None,
        stream=False,
        max_tokens=None,
        response_format=None,
        tool_choice=None,
        **_ignored,
    ):
        if stream:
            raise ValueError("stream=true is not supported by this server; send the request without streaming")
        conversation, schemas = canonical_conversation(with_tool_names(messages), tools)
        prompt = tokenizer.apply_chat_template(conversation, tools=schemas, tokenize=False, add_generation_prompt=True)
        rule = request_constraint(family, conversation, tools, response_format, tool_choice) if constrain else None
        text, n_prompt, n_new, _ = llama_cpp_generate(
            llama,
            tokenizer,
            family,
            prompt,
            max_tokens or default_max_tokens,
            native=native,
            grammar=llama_grammar(rule, llama) if rule is not None else None,
            close_loops=rule is not None and rule.closes_loops,
        )
        return completion_response(text, family, model_name, n_prompt, n_new)

    return handler


def build_app(
    gguf: str,
    tokenizer_path: str | None = None,
    n_ctx: int = 8192,
    model_alias: str | None = None,
    constrain: bool = True,
):
    """llama-cpp-python's FastAPI app serving `gguf` with the `secml` chat handler."""
    # lazy: optional, built by `make llama-cpp`
    from llama_cpp import llama_chat_format
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings
    from transformers import AutoTokenizer

    if not Path(gguf).is_file() or not gguf.endswith(".gguf"):
        raise FileNotFoundError(f"GGUF file not found: {gguf} (`make quantize` writes models/<name>-gguf/*.gguf)")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path) if tokenizer_path else gguf_tokenizer(gguf)
    family = _family_or_none(tokenizer, gguf_architecture(gguf))
    if family is None:
        raise ValueError(f"{gguf}: its chat family cannot be told from its tokenizer; pass --tokenizer SOURCE_FOLDER")
    alias = model_alias or Path(gguf).stem
    llama_chat_format.LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        HANDLER_NAME,
        make_handler(tokenizer, family, alias, native=tokenizer_path is None, constrain=constrain),
        overwrite=True,
    )
    model = ModelSettings(model=gguf, model_alias=alias, chat_format=HANDLER_NAME, n_ctx=n_ctx, verbose=False)
    return openai_response_format(create_app(server_settings=ServerSettings(), model_settings=[model]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml serve", description=__doc__.split("\n\n")[0], formatter_class=CommandHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a GGUF file (make quantize)")
    parser.add_argument("--tokenizer", help="the source model folder (default: the GGUF's own tokenizer and template)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--alias", help="the model name clients see (default: the file name)")
    parser.add_argument(
        "--no-constrain",
        action="store_true",
        help="decode freely, ignoring response_format schemas and the declared tools' schemas",
    )
    args = parser.parse_args(argv)
    try:
        # lazy: optional (serve extra)
        import uvicorn
    except ImportError:
        print("error: the server needs `make llama-cpp` and `pip install -e '.[serve]'`", file=sys.stderr)
        return 2
    try:
        app = build_app(args.model, args.tokenizer, args.n_ctx, args.alias, constrain=not args.no_constrain)
    except ImportError:
        print(
            "error: llama-cpp-python is not installed: `make llama-cpp`, then `pip install -e '.[serve]'`",
            file=sys.stderr,
        )
        return 2
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
