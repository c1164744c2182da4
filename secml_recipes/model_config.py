"""A model's config.json, found and read once: the one place training reads what a model is before loading it.

The run settings (the model's family needs its model_type), the memory planner (it builds the model on the meta
device from the config), the checkpoint-resume check and quantization all ask `read_model_config`, which looks in
this order: a local model folder (or a config.json file), the configs shipped with the package
(`model_configs/<org>/<name>/config.json`: the recipes' models and the supported families, so planning
works offline), then the Hub's config.json alone (from its cache when offline). Nothing else is downloaded.
A config is read once per file version: the cache is keyed by the file's path and modification time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHIPPED_CONFIGS = Path(__file__).with_name("model_configs")
# Config keys that count routed experts, by family (Mixtral, Qwen3-MoE and OLMoE, DeepSeek).
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")


class ModelConfigError(ValueError):
    """No config.json for a model anywhere this project looks; the message says where it looked and what to do."""


@dataclass(frozen=True)
class ModelConfigFacts:
    """What a model's config.json says, as the callers need it; `config` is the transformers config itself."""

    source: str  # the model as the recipe names it
    path: Path  # the config.json read
    model_type: str
    n_layers: int | None
    hidden: int | None
    vocab: int | None
    num_experts: int | None  # routed experts of a MoE model, None for a dense one
    dtype: str | None  # the dtype the weights were saved in
    config: Any = field(compare=False, repr=False)

    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)


def shipped_models() -> list[str]:
    """Hub names whose config.json ships with the package (the recipes' models and the supported families)."""
    return sorted(str(p.parent.relative_to(SHIPPED_CONFIGS)) for p in SHIPPED_CONFIGS.glob("*/*/config.json"))


def config_path(name_or_path: str, revision: str | None = None) -> Path:
    """The config.json of a model: a local model folder's, a shipped one, or (online or cached) the Hub's only."""
    local = Path(name_or_path)
    if (local / "config.json").is_file():
        return local / "config.json"
    if local.suffix == ".json" and local.is_file():
        return local
    shipped = SHIPPED_CONFIGS / name_or_path / "config.json"
    if shipped.is_file():
        return shipped
    try:
        from huggingface_hub import hf_hub_download  # lazy: only a model outside this machine needs the Hub client

        return Path(hf_hub_download(name_or_path, "config.json", revision=revision))
    except Exception as err:  # offline, gated, unknown name, not a repo id: all end in the same advice
        raise ModelConfigError(
            f"model '{name_or_path}': no local config.json, not a shipped config ({', '.join(shipped_models())}), "
            f"and its config.json could not be fetched ({type(err).__name__}); put the model's config.json in a "
            "folder and pass that folder"
        ) from None


def read_model_config(
    name_or_path: str, revision: str | None = None, trust_remote_code: bool = False
) -> ModelConfigFacts:
    """The model's config facts (ModelConfigError when there is no config.json to read)."""
    path = config_path(str(name_or_path), revision)
    return _read(str(name_or_path), str(path), path.stat().st_mtime_ns, trust_remote_code)


@functools.cache
def _read(source: str, path: str, mtime_ns: int, trust_remote_code: bool) -> ModelConfigFacts:
    from transformers import AutoConfig  # lazy: transformers costs seconds; a bad recipe is refused before

    config = AutoConfig.from_pretrained(str(Path(path).parent), trust_remote_code=trust_remote_code)
    text = config.get_text_config()
    experts = next((getattr(text, key) for key in EXPERT_COUNT_KEYS if getattr(text, key, None)), None)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return ModelConfigFacts(
        source=source,
        path=Path(path),
        model_type=config.model_type,
        n_layers=getattr(text, "num_hidden_layers", None),
        hidden=getattr(text, "hidden_size", None),
        vocab=getattr(text, "vocab_size", None),
        num_experts=experts,
        dtype=str(dtype).replace("torch.", "") if dtype is not None else None,
        config=config,
    )
