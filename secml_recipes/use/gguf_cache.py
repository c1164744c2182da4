"""Model folders (full models or LoRA adapters) as f16 or re-quantized GGUF files, so an evaluation can generate
through llama.cpp.

On a CPU llama.cpp prefills about twice as fast as transformers and decodes one sequence as fast as transformers
decodes a batch of eight, without a batch waiting for its longest answer; it is also the runtime the deployed
GGUFs use. f16 keeps what the model does (the deploy chain's check: top-1 agreement >= 0.99 with the source).
Conversions are cached under `layout.eval_gguf_cache()` by the folder's fingerprint, so a base model is
converted once and a retrained model again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from secml_recipes import layout
from secml_recipes.deploy.gguf import convert_to_gguf, quantize_gguf
from secml_recipes.deploy.merge import merge_adapter
from secml_recipes.fingerprint import fingerprint_path
from secml_recipes.model_folders import model_and_adapter, trained_tokenizer_folder


def _fingerprint(*folders: str | Path) -> str:
    return (
        fingerprint_path(Path(folders[0]))[:16]
        if len(folders) == 1
        else "-".join(fingerprint_path(Path(f))[:8] for f in folders)
    )


def as_gguf(model_path: str | Path, adapter_path: str | Path | None = None, qtype: str = "f16") -> tuple[str, str]:
    """(gguf_file, tokenizer_folder) for a model folder, an adapter folder (merged into its base first, in
    float32) or a model plus adapter, as an f16 GGUF or one re-quantized from it (`qtype`: q8_0 is what `triage`
    and `serve` load, and decodes ~1.4x faster on a CPU). The tokenizer folder is the trained one, so prompts render
    exactly as training rendered them. A .gguf file is returned as it is, with its folder as the tokenizer."""
    if Path(model_path).is_file():
        return str(model_path), str(Path(model_path).parent)
    model, adapter = model_and_adapter(model_path, adapter_path)
    model_path, adapter_path = Path(model), adapter
    sources = [model_path] + ([Path(adapter_path)] if adapter_path else [])
    target = layout.eval_gguf_cache() / f"{sources[-1].name}-{_fingerprint(*sources)}-f16.gguf"
    tokenizer = trained_tokenizer_folder(model_path, adapter_path)
    if qtype != "f16":
        quantized = target.with_name(target.name.replace("-f16.gguf", f"-{qtype}.gguf"))
        if not quantized.exists():
            f16, _ = as_gguf(model_path, adapter_path)
            _write_whole(quantized, lambda partial: quantize_gguf(f16, partial, qtype))
        return str(quantized), str(tokenizer)
    if target.exists():
        return str(target), str(tokenizer)
    source = model_path
    merged = None
    if adapter_path:
        merged = target.with_suffix(".merged")
        shutil.rmtree(merged, ignore_errors=True)
        source = merge_adapter(adapter_path, merged, dtype="float32")
    try:
        _write_whole(target, lambda partial: convert_to_gguf(source, partial, "f16"))
    finally:
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
    return str(target), str(tokenizer)


def _write_whole(target: Path, write) -> None:
    """`write(partial)` next to `target`, then renamed onto it: the cache holds whole files or none."""
    partial = target.with_suffix(".partial")
    try:
        write(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
