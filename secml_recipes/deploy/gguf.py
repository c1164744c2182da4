"""GGUF deployables through llama.cpp's own converter and quantizer, plus an Ollama Modelfile.

Nothing of llama.cpp is committed here: `make llama-cpp` downloads the `llama-cpp-python` source
distribution from the package registry into `.cache/llama.cpp/`, whose `vendor/llama.cpp` carries
`convert_hf_to_gguf.py` and its `gguf-py`, and builds the package (a real llama.cpp runtime and its
quantize function) into the project's venv. `LLAMA_CPP_DIR` points elsewhere if you have a checkout. The version
lives in `secml_recipes.versions`, the folder in `secml_recipes.layout`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from secml_recipes import layout, versions
from secml_recipes.families import FamilyError, get_family

# llama.cpp's llama_ftype values for the quantizer (include/llama.h).
FTYPES = {"q8_0": 7, "q4_K_M": 15, "q5_K_M": 17, "q6_K": 18, "q4_0": 2}
CONVERT_TYPES = {"f16", "bf16", "f32", "q8_0"}


class DeployError(RuntimeError):
    """An artifact could not be produced or failed verification; the message says which and why."""


def llama_cpp_dir() -> Path:
    env = os.environ.get("LLAMA_CPP_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(layout.llama_cpp_converter_dir())
    for c in candidates:
        if (c / "convert_hf_to_gguf.py").exists():
            return c
    raise DeployError(
        "llama.cpp's converter was not found: run `make llama-cpp` (downloads the llama-cpp-python "
        f"{versions.LLAMA_CPP_PYTHON} source from the registry into .cache/llama.cpp) or set LLAMA_CPP_DIR"
    )


def convert_to_gguf(model_dir: str | Path, out_file: str | Path, outtype: str = "f16") -> Path:
    """HF folder -> GGUF with llama.cpp's converter, run with its own gguf-py (the registry's is too old)."""
    if outtype not in CONVERT_TYPES:
        raise DeployError(f"converter outtype must be one of {sorted(CONVERT_TYPES)}, got {outtype!r}")
    src = llama_cpp_dir()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src / "gguf-py"), os.environ.get("PYTHONPATH", "")]))
    cmd = [
        sys.executable,
        str(src / "convert_hf_to_gguf.py"),
        str(model_dir),
        "--outfile",
        str(out_file),
        "--outtype",
        outtype,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out_file.exists():
        raise DeployError(f"GGUF conversion of {model_dir} failed:\n{proc.stderr[-2000:]}")
    _runtime_adds_no_bos(out_file)
    return out_file


def _runtime_adds_no_bos(gguf_file: Path) -> None:
    """The chat templates write every token a prompt needs (BOS included, where the family has one), and training
    tokenized their renders without adding any: a runtime must not prepend a BOS of its own. The converter
    copies the tokenizer's habit (`tokenizer.ggml.add_bos_token`); it is set to false in place."""
    # lazy: optional (quantize extra)
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_file), "r+").fields.get("tokenizer.ggml.add_bos_token")
    if field is not None and bool(field.parts[field.data[0]][0]):
        field.parts[field.data[0]][0] = False


def quantize_gguf(src: str | Path, out_file: str | Path, qtype: str) -> Path:
    """Re-quantize a GGUF with llama.cpp's quantizer (through llama-cpp-python's binding)."""
    try:
        # lazy: optional, built by `make llama-cpp`
        import llama_cpp
    except ImportError as err:
        raise DeployError("llama-cpp-python is not installed: run `make llama-cpp`") from err
    if qtype not in FTYPES:
        raise DeployError(f"unknown GGUF quantization {qtype!r}; known: {sorted(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[qtype]
    params.nthread = os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out_file).encode(), params)
    if rc != 0 or not Path(out_file).exists():
        raise DeployError(f"llama.cpp quantization of {src} to {qtype} failed (code {rc})")
    return Path(out_file)


def write_modelfile(gguf_file: Path, family, system_prompt: str | None = None) -> Path:
    """An Ollama Modelfile beside the GGUF whose template renders what training rendered (the model family's
    Ollama template: see secml_recipes/families and docs/models.md). `family`: a ChatFamily or its name."""
    try:
        family = get_family(family) if isinstance(family, str) else family
    except FamilyError as err:
        raise DeployError(f"no Ollama template: {err}") from None
    path = gguf_file.with_name(f"Modelfile.{gguf_file.stem.rsplit('-', 1)[-1]}")
    path.write_text(family.modelfile(gguf_file.name, system_prompt))
    return path


def gguf_chat_template(gguf_file: str | Path) -> str | None:
    """The chat template a GGUF carries (`tokenizer.chat_template`), which llama.cpp and llama-cpp-python render."""
    # lazy: optional (quantize extra)
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_file)).fields.get("tokenizer.chat_template")
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_architecture(gguf_file: str | Path) -> str | None:
    """`general.architecture` of a GGUF (llama, qwen3, ...): with its tokenizer, what tells the chat family."""
    # lazy: optional (quantize extra)
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_file)).fields.get("general.architecture")
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_context_length(gguf_file: str | Path) -> int | None:
    """`<architecture>.context_length` of a GGUF: the longest context the model was trained for."""
    # lazy: optional (quantize extra)
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_file)).fields
    arch = fields.get("general.architecture")
    if arch is None:
        return None
    field = fields.get(f"{bytes(arch.parts[arch.data[0]]).decode('utf-8')}.context_length")
    return None if field is None else int(field.parts[field.data[0]][0])
