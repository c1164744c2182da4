"""LoRA adapters merged into their base in full precision, never into a quantized base."""

from __future__ import annotations

import json
from pathlib import Path


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter folder was trained on (from adapter_config.json)."""
    config = Path(adapter_dir) / "adapter_config.json"
    return json.loads(config.read_text())["base_model_name_or_path"]


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, dtype: str = "bfloat16",
                  base_model: str | None = None) -> Path:
    """Load the base in `dtype` (bfloat16 or float32), apply the adapter, `merge_and_unload`, save the
    merged model with the adapter's tokenizer and chat template. Returns `out_dir`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"merge dtype must be bfloat16 or float32 (got {dtype}): merging into a quantized or "
                         "fp16 base loses the adapter's precision")
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    base = base_model or adapter_base(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_dir)
    tok_source = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(tok_source).save_pretrained(out_dir)
    (out_dir / "secml_merge.json").write_text(json.dumps({"base_model": base, "adapter": str(adapter_dir), "dtype": dtype}, indent=2))
    return out_dir
