"""Mistral and Mixtral: [INST] turns and Mistral's v3 tool markers, the only family here whose calls carry ids."""

from secml_recipes.families.base import ChatFamily
from secml_recipes.families.toolcalls import ToolCallFormat

MISTRAL = ChatFamily(
    name="mistral",
    title="Mistral / Mixtral",
    template="mixtral_tools.jinja",
    ollama_template="mixtral_tools.gotmpl",
    end_of_turn="</s>",
    # No padding token in Mistral vocabularies; <unk> never occurs in text (padding is never trained).
    pad_tokens=("<pad>", "<unk>"),
    tool_format=ToolCallFormat(kind="json_list", open="[TOOL_CALLS]", native_ids=True),
    model_types=("mistral", "mixtral"),
    keep_tokens=("[TOOL_CALLS]",),
)
