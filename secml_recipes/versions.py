"""Versions of the tools that live outside the project's own environment, in one place.

The training stack (torch, transformers, TRL, ...) is pinned in `pyproject.toml` and read from there, so it is
never written twice. What `pyproject.toml` cannot carry is pinned here: llama.cpp (through the
`llama-cpp-python` source distribution whose `vendor/llama.cpp` holds the GGUF converter), GPTQModel (which
needs a newer torch, so it gets its own environment) and the torch build that torch_xla pairs with.

The Makefile, the notebook and the code read these values; from a shell:

    python -m secml_recipes.versions llama_cpp_python     # 0.3.36
    python -m secml_recipes.versions gptq-requirements    # what `make gptq-env` installs
    python -m secml_recipes.versions xla-requirements     # what `make test-xla` installs
    python -m secml_recipes.versions tpu-requirements     # the same for a TPU VM (the notebook)

Only the standard library is imported, so the Makefile can ask before the virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import requires
from pathlib import Path

# llama.cpp's converter and quantizer come from this llama-cpp-python source distribution (package registry).
LLAMA_CPP_PYTHON = "0.3.36"
# GPTQModel, the maintained successor of AutoGPTQ; 7.7 needs torch>=2.14.1, so it has its own environment.
GPTQMODEL = "7.7.0"
# torch_xla (pinned in pyproject's `tpu` extra) is built against this torch, not the training stack's.
TORCH_FOR_XLA = "2.9.0"
# sys-scan-agent, whose models define the enriched format; installed --no-deps by `make agent` (its click pin
# conflicts with huggingface_hub's), so pyproject.toml cannot carry it.
SYS_SCAN_AGENT = "7.0.0"

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)")


def _requirements() -> list[str]:
    """The project's requirement strings: from pyproject.toml beside the package, else the installed metadata."""
    if PYPROJECT.is_file():
        text = PYPROJECT.read_text(encoding="utf-8")
        return re.findall(r'"([^"]+)"', text.split("[project]", 1)[-1].split("[project.scripts]", 1)[0])
    return list(requires("secml-recipes") or [])


def pinned(package: str) -> str:
    """The exact version pyproject.toml pins for `package` (dependencies and extras), e.g. pinned("trl")."""
    wanted = package.lower().replace("_", "-")
    for requirement in _requirements():
        match = _PIN.match(requirement)
        if match and match.group(1).lower().replace("_", "-") == wanted:
            return match.group(2)
    raise KeyError(f"{package} is not pinned with == in {PYPROJECT.name}")


def gptq_requirements() -> list[str]:
    """The GPTQ environment: GPTQModel plus the training stack's transformers and accelerate."""
    return [f"gptqmodel=={GPTQMODEL}", f"transformers=={pinned('transformers')}", f"accelerate=={pinned('accelerate')}"]


def xla_requirements(tpu: bool = False) -> list[str]:
    """An XLA environment: torch and torch_xla 2.9 (with libtpu for a TPU VM, `tpu=True`; without for the CPU
    tests), and the training stack's libraries at their pins."""
    stack = ["transformers", "trl", "peft", "accelerate", "datasets", "tokenizers"]
    return [f"torch=={TORCH_FOR_XLA}", f"torch_xla{'[tpu]' if tpu else ''}=={pinned('torch_xla')}"] + [
        f"{name}=={pinned(name)}" for name in stack
    ]


QUERIES = {
    "llama_cpp_python": lambda: LLAMA_CPP_PYTHON,
    "gptqmodel": lambda: GPTQMODEL,
    "sys_scan_agent": lambda: SYS_SCAN_AGENT,
    "torch_xla": lambda: pinned("torch_xla"),
    "gptq-requirements": lambda: " ".join(gptq_requirements()),
    "xla-requirements": lambda: " ".join(xla_requirements()),
    "tpu-requirements": lambda: " ".join(xla_requirements(tpu=True)),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or (argv[0] not in QUERIES and not argv[0].startswith("pinned:")):
        print(f"usage: python -m secml_recipes.versions {{{'|'.join(QUERIES)}|pinned:PACKAGE}}", file=sys.stderr)
        return 2
    query = argv[0]
    print(pinned(query.split(":", 1)[1]) if query.startswith("pinned:") else QUERIES[query]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
