"""Qwen2.5 and Qwen3 (dense and MoE, e.g. Qwen3-30B-A3B): ChatML turns, Hermes <tool_call> blocks; Qwen3 adds
the <think> block that opens every assistant turn."""

from dataclasses import replace

from secml_recipes.families.base import ChatFamily
from secml_recipes.families.toolcalls import ToolCallFormat

HERMES_CALLS = ToolCallFormat(kind="tagged", open="<tool_call>", close="</tool_call>")

QWEN2_5 = ChatFamily(
    name="qwen2_5",
    title="Qwen2.5",
    template="qwen2_5_tools.jinja",
    ollama_template="qwen2_5_tools.gotmpl",
    end_of_turn="<|im_end|>",
    pad_tokens=("<|endoftext|>",),
    tool_format=HERMES_CALLS,
    model_types=("qwen2", "qwen2_moe"),
    stop_tokens=("<|endoftext|>",),
    keep_tokens=("<tool_call>", "</tool_call>"),
)

QWEN3 = ChatFamily(
    name="qwen3",
    title="Qwen3 (dense and MoE)",
    template="qwen3_tools.jinja",
    ollama_template="qwen3_tools.gotmpl",
    end_of_turn="<|im_end|>",
    pad_tokens=("<|endoftext|>",),
    tool_format=replace(HERMES_CALLS, reasoning=("<think>", "</think>")),
    model_types=("qwen3", "qwen3_moe"),
    stop_tokens=("<|endoftext|>",),
    keep_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
)
