"""Ollama: a conversation in the shape of its /api/chat request, and its Modelfile TEMPLATE rendered as it does.

`render_template` runs `ollama_render/main.go` (Go standard library only) which hands a Go text/template the
data Ollama's server hands it (see that file), so a Modelfile can be checked against the training chat
template without an Ollama install. It needs a Go toolchain (`apt-get install golang-go`); the binary is
built once into the user cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path


class OllamaRendererMissing(RuntimeError):
    """No Go toolchain to build the renderer with."""


def to_ollama_chat(messages: list[dict], tools: list[dict] | None = None) -> dict:
    """OpenAI-style `messages` (canonical: see families.canonical_conversation) and `tools` as an Ollama
    /api/chat request body: arguments as objects, `name` of a tool message as `tool_name`, reasoning as
    `thinking`."""
    out = []
    for m in messages:
        msg = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("reasoning_content"):
            msg["thinking"] = m["reasoning_content"]
        if m.get("tool_calls"):
            msg["tool_calls"] = []
            for i, call in enumerate(m["tool_calls"]):
                fn = call.get("function", call)
                args = fn.get("arguments") or {}
                entry = {
                    "function": {
                        "index": i,
                        "name": fn["name"],
                        "arguments": json.loads(args) if isinstance(args, str) else args,
                    }
                }
                if call.get("id"):
                    entry["id"] = call["id"]
                msg["tool_calls"].append(entry)
        if m["role"] == "tool":
            if m.get("name"):
                msg["tool_name"] = m["name"]
            if m.get("tool_call_id"):
                msg["tool_call_id"] = m["tool_call_id"]
        out.append(msg)
    body: dict = {"messages": out}
    if tools:
        body["tools"] = tools
    return body


def _renderer() -> Path:
    source = resources.files("secml_recipes.deploy").joinpath("ollama_render/main.go").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "secml-recipes"
    binary = cache / f"ollama-render-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise OllamaRendererMissing("no Go toolchain to build the Ollama template renderer (apt-get install golang-go)")
    cache.mkdir(parents=True, exist_ok=True)
    src_dir = cache / "ollama-render-src"
    src_dir.mkdir(exist_ok=True)
    (src_dir / "main.go").write_bytes(source)
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="", CGO_ENABLED="0")
    proc = subprocess.run(
        [go, "build", "-o", str(binary), str(src_dir / "main.go")], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise OllamaRendererMissing(f"building the Ollama template renderer failed: {proc.stderr[-500:]}")
    return binary


def render_template(template: str, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The prompt Ollama builds from Modelfile `template` for this conversation (OpenAI-style input)."""
    body = to_ollama_chat(messages, tools)
    body["template"] = template
    proc = subprocess.run([str(_renderer())], input=json.dumps(body), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"Ollama template failed: {proc.stderr.strip()}")
    return proc.stdout
