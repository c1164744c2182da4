"""Llama 3.x (3.1, 3.2, 3.3): Llama-3.1-Instruct's header format, JSON calls after <|python_tag|>."""

from secml_recipes.families.base import ChatFamily
from secml_recipes.families.toolcalls import ToolCallFormat

LLAMA3 = ChatFamily(
    name="llama3",
    title="Llama 3.x",
    template="llama3_tools.jinja",
    ollama_template="llama3_tools.gotmpl",
    end_of_turn="<|eot_id|>",
    # 3.1+ names id 128004 <|finetune_right_pad_id|>; Llama 3.0 calls the same id a reserved token.
    pad_tokens=("<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|end_of_text|>"),
    tool_format=ToolCallFormat(kind="json_objects", open="<|python_tag|>", args_key="parameters", separator="; "),
    model_types=("llama",),
    stop_tokens=("<|eom_id|>", "<|end_of_text|>"),
    keep_tokens=("<|python_tag|>",),
)
