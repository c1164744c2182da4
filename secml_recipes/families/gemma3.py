"""Gemma 3 (also Gemma 2's turn format): <start_of_turn> turns, calls in ```tool_code blocks."""

from secml_recipes.families.base import ChatFamily
from secml_recipes.families.toolcalls import ToolCallFormat

GEMMA3 = ChatFamily(
    name="gemma3",
    title="Gemma 3",
    template="gemma3_tools.jinja",
    ollama_template="gemma3_tools.gotmpl",
    end_of_turn="<end_of_turn>",
    pad_tokens=("<pad>",),
    tool_format=ToolCallFormat(kind="fenced", open="```tool_code", close="```"),
    model_types=("gemma3", "gemma3_text", "gemma2", "gemma"),
    stop_tokens=("<eos>",),
)
