"""Chat templates: the one this repository ships for Mixtral tool use, and Llama 3.1's stock one.

Training and inference must render the same text. The specialist keeps its model's own Llama-3.1
template; the generalist's template is a file here, written into the trained tokenizer so that every
client that loads the model renders conversations exactly as training did.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

MIXTRAL_TOOLS_TEMPLATE = "mixtral_tools.jinja"


def shipped_template_path(name: str = MIXTRAL_TOOLS_TEMPLATE) -> Path:
    """Path of a template shipped in `secml_recipes/chat_templates/`."""
    return Path(str(resources.files("secml_recipes.chat_templates").joinpath(name)))


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
    return path.read_text(encoding="utf-8")


def llama31_stock_template() -> str:
    """Llama-3.1-Instruct's own chat template, as TRL ships it (no download needed)."""
    return Path(str(resources.files("trl").joinpath("chat_templates/llama3_1.jinja"))).read_text(encoding="utf-8")
