"""Chat template files: the families' templates shipped here (secml_recipes.families), a recipe's own
`chat_template_path`, and Llama 3.1's stock template (the tiny Llama's, as the real model ships it).

Training and inference must render the same text: the template used in training is written into the trained
tokenizer, so that every client that loads the model renders conversations exactly as training did.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

MIXTRAL_TOOLS_TEMPLATE = "mixtral_tools.jinja"


def shipped_template_path(name: str = MIXTRAL_TOOLS_TEMPLATE) -> Path:
    """Path of a template shipped in `secml_recipes/families/chat_templates/`."""
    return Path(str(resources.files("secml_recipes.families.chat_templates").joinpath(name)))


def read_template(path_or_name: str) -> str:
    """Template text from a path, or from a name shipped in this package."""
    path = Path(path_or_name)
    if not path.is_file():
        path = shipped_template_path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(
            f"chat template not found: {path_or_name} (give a .jinja path or one of "
            f"{sorted(p.name for p in shipped_template_path().parent.glob('*.jinja'))})"
        )
    text = path.read_text(encoding="utf-8")
    if ("go_json(" in text or "call_arguments(" in text) and "macro go_json" not in text:
        # A family template: its JSON printing macros live in one shared file.
        text = shipped_template_path("_go_json.jinja").read_text(encoding="utf-8") + text
    return text


def llama31_stock_template() -> str:
    """Llama-3.1-Instruct's own chat template, as TRL ships it (no download needed)."""
    return Path(str(resources.files("trl").joinpath("chat_templates/llama3_1.jinja"))).read_text(encoding="utf-8")
