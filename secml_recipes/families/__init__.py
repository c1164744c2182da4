"""Model families: one place that knows each chat format, from training masks to Ollama (docs/models.md).

    family = resolve_family(tokenizer, model_type="qwen3")       # detected, or named by `model_family`
    family.chat_template()                                        # training template ({% generation %} blocks)
    family.special_tokens(tokenizer)                              # (end-of-turn, padding)
    family.parse_tool_calls(text)                                 # ParsedTurn(content, calls, malformed)
    family.modelfile("model-q4_K_M.gguf")                         # Ollama Modelfile rendering the same text
    canonical_conversation(messages, tools)                       # what every runtime renders alike

Detection reads the tokenizer's vocabulary (the chat format's own tokens) and the config's model_type; the
rules are the table below, first match wins. This module imports no ML library: recipes validate
`model_family` against `FAMILY_NAMES` before anything heavy loads.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path

from secml_recipes.families.base import ChatFamily, FamilyError
from secml_recipes.families.chatml import CHATML
from secml_recipes.families.gemma3 import GEMMA3
from secml_recipes.families.llama3 import LLAMA3
from secml_recipes.families.mistral import MISTRAL
from secml_recipes.families.qwen import QWEN2_5, QWEN3
from secml_recipes.families.toolcalls import (
    ParsedTurn,
    canonical_arguments,
    canonical_conversation,
    canonical_row,
    go_json,
)
from secml_recipes.model_config import read_model_config
from secml_recipes.model_folders import adapter_base

FAMILIES: dict[str, ChatFamily] = {f.name: f for f in (LLAMA3, QWEN2_5, QWEN3, MISTRAL, GEMMA3, CHATML)}
FAMILY_NAMES = list(FAMILIES)
# Names used before families existed (quantize recipes' `family:`).
ALIASES = {"llama": "llama3", "mixtral": "mistral"}

# (family, a vocabulary token only that chat format defines or None, config.model_type prefixes or () for any)
DETECTION_RULES: list[tuple[str, str | None, tuple[str, ...]]] = [
    ("llama3", "<|start_header_id|>", ()),
    ("gemma3", "<start_of_turn>", ()),
    ("qwen3", "<|im_start|>", ("qwen3",)),
    ("qwen2_5", "<|im_start|>", ("qwen2",)),
    ("chatml", "<|im_start|>", ()),
    ("mistral", "[INST]", ()),
    ("mistral", None, ("mistral", "mixtral")),  # v0.1 vocabularies spell [INST] as text
]

__all__ = [
    "ChatFamily",
    "FamilyError",
    "ParsedTurn",
    "FAMILIES",
    "FAMILY_NAMES",
    "DETECTION_RULES",
    "get_family",
    "detect_family",
    "resolve_family",
    "choose_family",
    "family_of_model",
    "canonical_arguments",
    "canonical_conversation",
    "canonical_row",
    "go_json",
]


def get_family(name: str) -> ChatFamily:
    """The family called `name` (or an alias of it)."""
    family = FAMILIES.get(ALIASES.get(name, name))
    if family is None:
        raise FamilyError(f"unknown model_family {name!r}; supported: {', '.join(FAMILY_NAMES)} (docs/models.md)")
    return family


def detect_family(vocab: Container[str], model_type: str | None) -> ChatFamily | None:
    """The first family of `DETECTION_RULES` whose token is in `vocab` and whose model types match, or None."""
    model_type = (model_type or "").lower()
    for name, token, types in DETECTION_RULES:
        if token is not None and token not in vocab:
            continue
        if types and not model_type.startswith(types):
            continue
        return FAMILIES[name]
    return None


def resolve_family(
    tokenizer, model_type: str | None = None, name: str | None = None, source: str = "the model"
) -> ChatFamily:
    """The recipe's `model_family` if set, else the family detected from `tokenizer` and `model_type`; a
    one-line FamilyError naming `model_family` when neither tells it."""
    return choose_family(tokenizer.get_vocab(), model_type, name, source, bool(tokenizer.chat_template))


def choose_family(
    vocab: Container[str],
    model_type: str | None,
    name: str | None = None,
    source: str = "the model",
    has_chat_template: bool = False,
) -> ChatFamily:
    """`resolve_family` from a vocabulary instead of a tokenizer (what run_settings decides from)."""
    if name:
        return get_family(name)
    family = detect_family(vocab, model_type)
    if family is None:
        has_template = "its chat template is of no supported family" if has_chat_template else "it has no chat template"
        raise FamilyError(
            f"{source}: cannot tell its chat format (config model_type {model_type!r}, {has_template}); "
            f"set model_family in the recipe to one of {', '.join(FAMILY_NAMES)} (docs/models.md)"
        )
    return family


def family_of_model(path: str, tokenizer=None, name: str | None = None, **kwargs) -> ChatFamily:
    """The family of a model folder or hub id (its tokenizer and config; an adapter folder's base config)."""
    if tokenizer is None:
        from transformers import AutoTokenizer  # lazy: this module imports no ML library until a model is read

        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    config_source = adapter_base(path) if (Path(path) / "adapter_config.json").exists() else path
    try:  # the one config reader (model_config.py); an unknown model is told from its tokenizer alone
        model_type = read_model_config(
            config_source, kwargs.get("revision"), kwargs.get("trust_remote_code", False)
        ).model_type
    except (OSError, ValueError):
        model_type = None
    return resolve_family(tokenizer, model_type, name, source=str(path))
