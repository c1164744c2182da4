"""Trained outputs -> verified deployables: merged model, GPTQ 4-bit, GGUF (f16, q8_0, q4_K_M) + Modelfile.

Usage:
    secml quantize recipes/full/quantize.yaml [--only specialist] [--key value ...]

Per model (see the recipe): a LoRA output is first merged into its base in bf16/fp32 (the adapter
itself stays a deployable); GPTQ runs through GPTQModel in its own environment, calibrated on the
corpus' held-out rows; GGUF through llama.cpp's converter and quantizer. Every artifact is then loaded
in a real client and compared with its source on held-out text; the numbers go to
`models/<name>-quant-report.json` and a table. A broken artifact fails the command.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from secml_recipes import layout
from secml_recipes.atomic import write_json_atomic
from secml_recipes.command_help import recipe_help, wants_help
from secml_recipes.corpus.tarball import read_split
from secml_recipes.deploy import gguf, gptq, verify
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.deploy.merge import merge_adapter
from secml_recipes.families import family_of_model
from secml_recipes.model_config import read_model_config
from secml_recipes.train.guards import refuse_nonfinite_model
from secml_recipes.train.recipe import RecipeError, build_dataclass, load_recipe

QUANTIZE_USAGE = "secml quantize recipes/full/quantize.yaml [--only NAME] [--key value ...]"


@dataclass
class QuantizeArguments:
    """Keys shared by every model of the recipe."""

    corpus: str = field(
        default=str(layout.corpus("full")), metadata={"help": "held-out rows for calibration and checks"}
    )
    models_dir: str = str(layout.MODELS)
    only: str | None = field(default=None, metadata={"help": "quantize only the model with this name"})
    merge_dtype: str = field(default="bfloat16", metadata={"choices": ["bfloat16", "float32"]})
    verify_samples: int = 4
    verify_max_tokens: int = 384
    gptq_only_on_cuda: bool = field(
        default=False,
        metadata={
            "help": "skip the gptq format where torch sees no CUDA GPU (GPTQ is a GPU format; on a CPU it costs "
            "more than the rest of the chain), saying so; `make quantize` on a GPU builds it"
        },
    )
    models: list[dict] = field(default_factory=list, metadata={"help": "one entry per model (ModelQuantSpec keys)"})


@dataclass
class ModelQuantSpec:
    """One model's deployables."""

    name: str
    source: str
    family: str | None = field(
        default=None,
        metadata={"help": "model family for the Ollama template (default: detected from the source; docs/models.md)"},
    )
    task: str = "specialist"
    formats: list[str] = field(default_factory=lambda: ["gptq", "gguf"])
    gguf_types: list[str] = field(default_factory=lambda: ["f16", "q8_0", "q4_K_M"])
    gptq_bits: int = 4
    gptq_group_size: int = 128
    calibration_samples: int = 128
    min_top1: dict = field(
        default_factory=lambda: {"f16": 0.99, "q8_0": 0.97, "q4_K_M": 0.85, "gptq": 0.85},
        metadata={"help": "floor of top-1 agreement on the positions where the source is decisive, per type"},
    )
    decisive_margin: float = field(
        default=0.1,
        metadata={"help": "nats by which the source's top token must lead for its position to count in min_top1"},
    )
    max_kl: dict = field(default_factory=lambda: {"f16": 0.01, "q8_0": 0.05, "q4_K_M": 0.5, "gptq": 0.5})
    system_prompt: str | None = None


def calibration_texts(tokenizer, corpus: str, task: str, n: int) -> list[str]:
    """Rendered eval/test rows of our own corpus (never a downloaded dataset)."""
    rows = []
    for split in ("eval", "test"):
        rows += read_split(corpus, task, split, verbose=False)[0]
    if not rows:
        rows = read_split(corpus, task, "train", verbose=False)[0]
    texts = []
    for row in rows[:n]:
        if task == "specialist":
            texts.append(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False))
        else:
            texts.append(tokenizer.apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False))
    return texts


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Report:
    """The verification report of one model: each artifact's numbers against the source's logits."""

    def __init__(self, spec: ModelQuantSpec, source: Path, family: str, held, reference):
        self.spec, self.held, self.reference = spec, held, reference
        self.data = {"name": spec.name, "source": str(source), "family": family, "artifacts": {}, "problems": []}

    def record(self, key: str, path: Path, logits, load: float, client: str, extra: dict | None = None) -> None:
        metrics = verify.compare_logits(self.reference, logits, self.held, self.spec.decisive_margin)
        qtype = key.split(":")[0]
        metrics.update(
            {"path": str(path), "bytes": _size(path), "load_seconds": round(load, 3), "client": client, **(extra or {})}
        )
        problems = verify.check(
            metrics, f"{self.spec.name} {key}", self.spec.min_top1.get(qtype, 0.5), self.spec.max_kl.get(qtype, 1.0)
        )
        metrics["ok"] = not problems
        self.data["artifacts"][key] = metrics
        self.data["problems"] += problems


def _merged_source(spec: ModelQuantSpec, args: QuantizeArguments, source: Path, report: dict) -> Path:
    """A LoRA output is merged into its base first (full precision); other outputs are their own source."""
    if not (source / "adapter_config.json").exists():
        return source
    t0 = time.perf_counter()
    merged = merge_adapter(source, layout.merged_model(spec.name, args.models_dir), dtype=args.merge_dtype)
    report["adapter"] = {"path": str(source), "bytes": _size(source)}
    report["merged"] = {"path": str(merged), "dtype": args.merge_dtype, "seconds": round(time.perf_counter() - t0, 2)}
    return merged


def _gguf_artifacts(spec: ModelQuantSpec, args: QuantizeArguments, source: Path, tokenizer, family, report: _Report):
    """f16 GGUF (carrying the training chat template), its quantized types, an Ollama Modelfile of the family each."""
    base = gguf.convert_to_gguf(source, layout.gguf_file(spec.name, "f16", args.models_dir), "f16")
    if gguf.gguf_chat_template(base) != tokenizer.chat_template:
        report.data["problems"].append(
            f"{spec.name} gguf: its tokenizer.chat_template is not the one the model was trained with "
            "(llama.cpp would render other prompts)"
        )
    model_type = read_model_config(str(source)).model_type
    files = {"f16": base}
    for qtype in spec.gguf_types:
        if qtype != "f16":
            files[qtype] = gguf.quantize_gguf(base, layout.gguf_file(spec.name, qtype, args.models_dir), qtype)
    for qtype, path in files.items():
        if qtype not in spec.gguf_types:
            continue
        modelfile = gguf.write_modelfile(path, family, spec.system_prompt)
        logits, load = verify.llama_cpp_logits(path, report.held)
        report.record(f"{qtype}:llama.cpp", path, logits, load, "llama-cpp-python", {"modelfile": str(modelfile)})
        if model_type == "llama" and qtype in ("f16", "q8_0"):
            # transformers' GGUF loader dequantizes Llama correctly (it drops Mixtral's experts: not used there).
            logits, load = verify.hf_logits(path.parent, report.held, gguf_file=path.name)
            report.record(f"{qtype}:transformers", path, logits, load, "transformers gguf_file")
    if "f16" not in spec.gguf_types:
        base.unlink()


def _gptq_artifact(spec: ModelQuantSpec, args: QuantizeArguments, source: Path, tokenizer, report: _Report) -> None:
    out_dir = layout.gptq_model(spec.name, args.models_dir)
    texts = calibration_texts(tokenizer, args.corpus, spec.task, spec.calibration_samples)
    info = gptq.quantize_gptq(source, out_dir, texts, spec.gptq_bits, spec.gptq_group_size)
    logits, load = gptq.gptq_logits(out_dir, report.held.ids)
    report.record(
        "gptq:gptqmodel",
        out_dir,
        logits,
        load,
        "gptqmodel",
        {"bits": spec.gptq_bits, "group_size": spec.gptq_group_size, **info},
    )


def gptq_skipped(args: QuantizeArguments) -> bool:
    """Whether this run leaves GPTQ out: the recipe asks for it only on a CUDA GPU and there is none."""
    if not args.gptq_only_on_cuda:
        return False
    import torch  # lazy: the torch stack loads only when a model is touched

    return not torch.cuda.is_available()


def quantize_model(spec: ModelQuantSpec, args: QuantizeArguments) -> dict:
    """One model's deployables, each verified against its source; the report is also written to
    `layout.quant_report(name)`."""
    # lazy: the torch stack loads only when a model is touched
    from transformers import AutoTokenizer

    source = Path(spec.source)
    if not source.exists():
        raise gguf.DeployError(f"{spec.name}: source {source} not found; train it first (make train-*/smoke)")

    refuse_nonfinite_model(source, "quantize")  # a NaN model quantizes to a GGUF that only looks like a model
    merge_info: dict = {}
    source = _merged_source(spec, args, source, merge_info)
    tokenizer = AutoTokenizer.from_pretrained(source)
    family = family_of_model(str(source), tokenizer, spec.family)
    held = verify.held_out_examples(tokenizer, args.corpus, spec.task, args.verify_samples, args.verify_max_tokens)
    reference, ref_load = verify.hf_logits(source, held)
    report = _Report(spec, Path(spec.source), family.name, held, reference)
    report.data.update(merge_info)
    report.data["reference"] = {"path": str(source), "bytes": _size(source), "load_seconds": round(ref_load, 3)}
    if "gguf" in spec.formats:
        _gguf_artifacts(spec, args, source, tokenizer, family, report)
    if "gptq" in spec.formats and gptq_skipped(args):
        report.data["skipped"] = {"gptq": "no CUDA GPU; `make quantize` on a GPU builds it"}
    elif "gptq" in spec.formats:
        _gptq_artifact(spec, args, source, tokenizer, report)
    _keep_training_record(Path(spec.source), spec, args)
    path = layout.quant_report(spec.name, args.models_dir)
    write_json_atomic(path, report.data)  # push reads it: whole or absent
    return report.data


def _keep_training_record(trained: Path, spec: ModelQuantSpec, args: QuantizeArguments) -> None:
    """The training record (recipe, corpus part size) beside each deployable, so that triage run on a GGUF or a
    GPTQ folder alone splits reports as training did (`triage.trained_part_size`)."""
    record = trained / layout.RECIPE_FILE
    targets = [layout.gguf_dir(spec.name, args.models_dir), layout.gptq_model(spec.name, args.models_dir)]
    for folder in targets:
        if record.exists() and folder.is_dir():
            shutil.copy2(record, folder / layout.RECIPE_FILE)


def report_table(reports: list[dict]) -> str:
    lines = [
        "| model | artifact | client | top-1 agree (decisive) | top-1 agree (all) | KL | max logit diff "
        "| ppl (source -> artifact) | MB | load s | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        for key, m in r["artifacts"].items():
            ppl = f"{m['perplexity_source']:.2f} -> {m['perplexity']:.2f}" if m.get("perplexity") is not None else "-"
            lines.append(
                f"| {r['name']} | {key.split(':')[0]} | {m['client']} | "
                f"{m.get('decisive_top1_agreement', m['top1_agreement']):.3f} | {m['top1_agreement']:.3f} | "
                f"{m['kl_divergence']:.4f} | {m['max_logit_diff']:.3f} | {ppl} | {m['bytes'] / 1e6:.2f} | "
                f"{m['load_seconds']:.2f} | {'yes' if m['ok'] else 'NO'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        groups = [
            ("recipe keys (QuantizeArguments)", QuantizeArguments),
            ("keys of each models entry (ModelQuantSpec)", ModelQuantSpec),
        ]
        description = (
            "Merges, quantizes (GGUF, GPTQ) and verifies each model of the recipe; --key value wins over the file."
        )
        print(recipe_help(QUANTIZE_USAGE, groups, description), end="")
        return 0
    if not argv or argv[0].startswith("-"):
        print(f"usage: {QUANTIZE_USAGE} (secml quantize --help lists the keys)", file=sys.stderr)
        return 2

    try:
        (args,) = load_recipe(argv[0], argv[1:], classes=(QuantizeArguments,))
        specs = [build_dataclass(ModelQuantSpec, m, f"{argv[0]}: models[{i}]") for i, m in enumerate(args.models)]
        if args.only:
            specs = [s for s in specs if s.name == args.only]
            if not specs:
                raise RecipeError(f"{argv[0]}: no model named {args.only!r} under models")
        reports = [quantize_model(s, args) for s in specs]
    except (RecipeError, DeployError, ValueError, FileNotFoundError) as err:  # FamilyError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report_table(reports))
    if any("gptq" in s.formats for s in specs) and gptq_skipped(args):
        print(f"GPTQ: skipped, no CUDA GPU here ({argv[0]}: gptq_only_on_cuda); it runs with `make quantize` on a GPU")
    problems = [p for r in reports for p in r["problems"]]
    for p in problems:
        print(f"BROKEN ARTIFACT: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
