"""What a model folder a user names stands for: a full model, or a LoRA adapter that means its base plus itself, and
which folder holds the trained tokenizer. One place for every command that takes `--model`."""

from __future__ import annotations

import json
from pathlib import Path


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter folder was trained on (from adapter_config.json)."""
    config = Path(adapter_dir) / "adapter_config.json"
    return json.loads(config.read_text())["base_model_name_or_path"]


def model_and_adapter(model_path: str | Path, adapter_path: str | Path | None = None) -> tuple[str, str | None]:
    """(base model, adapter) for what a user names: an adapter folder given as the model stands for its base (from
    its adapter config) plus itself; anything else is returned as it is."""
    if adapter_path is None and (Path(model_path) / "adapter_config.json").exists():
        return adapter_base(model_path), str(model_path)
    return str(model_path), (str(adapter_path) if adapter_path else None)


def trained_tokenizer_folder(model_path: str | Path, adapter_path: str | Path | None = None) -> str:
    """The folder holding the trained tokenizer and chat template: the adapter's when it saved one, else the
    model's."""
    if adapter_path and (Path(adapter_path) / "tokenizer_config.json").exists():
        return str(adapter_path)
    return str(model_path)
