"""Plain ChatML models (SmolLM2 and other bare <|im_start|> templates): Hermes <tool_call> blocks."""

from secml_recipes.families.base import ChatFamily
from secml_recipes.families.qwen import HERMES_CALLS

CHATML = ChatFamily(
    name="chatml",
    title="ChatML (SmolLM2, ...)",
    template="chatml_tools.jinja",
    ollama_template="chatml_tools.gotmpl",
    end_of_turn="<|im_end|>",
    pad_tokens=("<|endoftext|>", "<pad>"),
    tool_format=HERMES_CALLS,
    stop_tokens=("<|endoftext|>",),
    keep_tokens=("<tool_call>", "</tool_call>"),
)
