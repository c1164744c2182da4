"""LoRA adapters merged into their base in full precision, never into a quantized base."""

from __future__ import annotations

import json
from pathlib import Path

from secml_recipes.model_folders import adapter_base


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, dtype: str = "bfloat16") -> Path:
    """Load the adapter on its base in `dtype` (bfloat16 or float32) with `peft.AutoPeftModelForCausalLM`,
    `merge_and_unload`, save the merged model with the adapter's tokenizer and chat template. Returns `out_dir`."""
    # lazy: the torch stack loads only when a model is touched
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(
            f"merge dtype must be bfloat16 or float32 (got {dtype}): merging into a quantized or "
            "fp16 base loses the adapter's precision"
        )
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    base = adapter_base(adapter_dir)
    merged = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir), dtype=getattr(torch, dtype)).merge_and_unload()
    merged.save_pretrained(out_dir)
    tok_source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tok_source).save_pretrained(out_dir)
    record = {"base_model": base, "adapter": str(adapter_dir), "dtype": dtype}
    (out_dir / "secml_merge.json").write_text(json.dumps(record, indent=2))
    return out_dir
