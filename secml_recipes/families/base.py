"""What one model family knows: its training chat template, tool-call format, special tokens and Ollama template.

A family is a chat format more than an architecture: SmolLM2 is a Llama network that speaks ChatML. Each
family module (llama3.py, qwen.py, ...) is one `ChatFamily` row; the templates live in
`secml_recipes/families/chat_templates/` (`<name>.jinja` for training, llama.cpp and transformers; `<name>.gotmpl`
for Ollama), and tests render both on the same conversations and require the same text.
"""

from __future__ import annotations

import functools
from collections.abc import Container
from dataclasses import dataclass
from importlib import resources

from secml_recipes.families.toolcalls import ParsedTurn, ToolCallFormat, parse_turn


class FamilyError(ValueError):
    """The family of a model cannot be told or does not fit it; the message names the recipe key that fixes it."""


@functools.cache
def _template_text(name: str) -> str:
    return resources.files("secml_recipes.families.chat_templates").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class ChatFamily:
    """One chat format and everything that must agree with it, from training to serving.

    name: the `model_family` recipe value. template: training template file (chat_templates/), with
    {% generation %} blocks. ollama_template: the Go template that renders what `template` renders.
    end_of_turn: the token that closes an assistant turn: trained, the tokenizer's eos after training, the stop
    token of every runtime. pad_tokens: padding candidates, first one in the vocabulary wins (padding is never
    trained). stop_tokens: further tokens that end generation. keep_tokens: special tokens that are part of the
    tool-call text and must survive decoding. model_types: `config.model_type` values of the family.
    """

    name: str
    title: str
    template: str
    ollama_template: str
    end_of_turn: str
    pad_tokens: tuple[str, ...]
    tool_format: ToolCallFormat
    model_types: tuple[str, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    keep_tokens: tuple[str, ...] = ()

    def chat_template(self) -> str:
        """The training chat template (also the one saved with the model and written into its GGUF)."""
        return _template_text("_go_json.jinja") + _template_text(self.template)

    def ollama_template_text(self) -> str:
        """The Ollama Modelfile TEMPLATE that renders what `chat_template` renders (tool ids included)."""
        return _template_text(self.ollama_template)

    def special_tokens(self, tokenizer, source: str = "the model") -> tuple[str, str]:
        """(end-of-turn, padding) tokens of this family in `tokenizer`'s vocabulary."""
        vocab = tokenizer.get_vocab()
        self.check_end_of_turn(vocab, source)
        return self.end_of_turn, self.padding_token(vocab) or tokenizer.pad_token or self.end_of_turn

    def check_end_of_turn(self, vocab: Container[str], source: str = "the model") -> None:
        """A FamilyError naming `model_family` when `vocab` lacks this family's end-of-turn token."""
        if self.end_of_turn not in vocab:
            raise FamilyError(
                f"{source}: its tokenizer has no {self.end_of_turn!r}, the end-of-turn token of the "
                f"{self.name} family; set model_family to the model's family (docs/models.md)"
            )

    def padding_token(self, vocab: Container[str]) -> str | None:
        """The first of this family's padding candidates that `vocab` has, or None."""
        return next((t for t in self.pad_tokens if t in vocab), None)

    def stops(self) -> list[str]:
        """Every token that ends generation (end-of-turn first)."""
        return [self.end_of_turn, *(t for t in self.stop_tokens if t != self.end_of_turn)]

    def parse_tool_calls(self, text: str) -> ParsedTurn:
        """An assistant output split into its text and its tool calls (`ParsedTurn`); calls carry `id` only
        where the format has ids (`tool_format.native_ids`), else results are matched to calls by position."""
        return parse_turn(self.tool_format, text)

    def modelfile(self, gguf_name: str, system_prompt: str | None = None) -> str:
        """An Ollama Modelfile for a GGUF of this family: the template, stops and greedy decoding."""
        lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{self.ollama_template_text()}"""']
        lines += [f'PARAMETER stop "{s}"' for s in self.stops()]
        lines.append("PARAMETER temperature 0")
        if system_prompt:
            lines.append(f'SYSTEM """{system_prompt}"""')
        return "\n".join(lines) + "\n"
