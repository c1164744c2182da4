"""Trained outputs -> verified deployables: merged model, GPTQ 4-bit, GGUF (f16, q8_0, q4_K_M) + Modelfile.

Usage:
    python -m secml_recipes.quantize recipes/quantize.yaml [--only specialist] [--key value ...]

Per model (see the recipe): a LoRA output is first merged into its base in bf16/fp32 (the adapter
itself stays a deployable); GPTQ runs through GPTQModel in its own environment, calibrated on the
corpus' held-out rows; GGUF through llama.cpp's converter and quantizer. Every artifact is then loaded
in a real client and compared with its source on held-out text; the numbers go to
`models/<name>-quant-report.json` and a table. A broken artifact fails the command.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .recipe import RecipeError, build_dataclass, load_recipe


@dataclass
class QuantizeArguments:
    """Keys shared by every model of the recipe."""

    corpus: str = field(default="data/massive_datasets.tar.gz", metadata={"help": "held-out rows for calibration and checks"})
    models_dir: str = "models"
    only: str | None = field(default=None, metadata={"help": "quantize only the model with this name"})
    merge_dtype: str = field(default="bfloat16", metadata={"choices": ["bfloat16", "float32"]})
    verify_samples: int = 4
    verify_max_tokens: int = 384
    models: list[dict] = field(default_factory=list, metadata={"help": "one entry per model (ModelQuantSpec keys)"})


@dataclass
class ModelQuantSpec:
    """One model's deployables."""

    name: str
    source: str
    family: str | None = field(default=None, metadata={"help": "model family for the Ollama template (default: "
                                                                "detected from the source model; docs/models.md)"})
    task: str = "specialist"
    formats: list[str] = field(default_factory=lambda: ["gptq", "gguf"])
    gguf_types: list[str] = field(default_factory=lambda: ["f16", "q8_0", "q4_K_M"])
    gptq_bits: int = 4
    gptq_group_size: int = 128
    calibration_samples: int = 128
    min_top1: dict = field(default_factory=lambda: {"f16": 0.99, "q8_0": 0.97, "q4_K_M": 0.85, "gptq": 0.85})
    max_kl: dict = field(default_factory=lambda: {"f16": 0.01, "q8_0": 0.05, "q4_K_M": 0.5, "gptq": 0.5})
    system_prompt: str | None = None


def calibration_texts(tokenizer, corpus: str, task: str, n: int) -> list[str]:
    """Rendered eval/test rows of our own corpus (never a downloaded dataset)."""
    from .data.corpus import read_split

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


def quantize_model(spec: ModelQuantSpec, args: QuantizeArguments) -> dict:
    from transformers import AutoConfig, AutoTokenizer

    from .deploy import gguf, gptq, verify
    from .families import family_of_model
    from .deploy.merge import merge_adapter

    models_dir = Path(args.models_dir)
    source = Path(spec.source)
    if not source.exists():
        raise gguf.DeployError(f"{spec.name}: source {source} not found; train it first (make train-*/smoke)")
    report = {"name": spec.name, "source": str(source), "artifacts": {}, "problems": []}
    if (source / "adapter_config.json").exists():
        t0 = time.perf_counter()
        merged = merge_adapter(source, models_dir / f"{spec.name}-merged", dtype=args.merge_dtype)
        report["adapter"] = {"path": str(source), "bytes": _size(source)}
        report["merged"] = {"path": str(merged), "dtype": args.merge_dtype, "seconds": round(time.perf_counter() - t0, 2)}
        source = merged
    tokenizer = AutoTokenizer.from_pretrained(source)
    family = family_of_model(str(source), tokenizer, spec.family)
    report["family"] = family.name
    model_type = AutoConfig.from_pretrained(source).model_type
    held = verify.held_out_examples(tokenizer, args.corpus, spec.task, args.verify_samples, args.verify_max_tokens)
    reference, ref_load = verify.hf_logits(source, held)
    report["reference"] = {"path": str(source), "bytes": _size(source), "load_seconds": round(ref_load, 3)}

    def record(key: str, path: Path, logits, load: float, client: str, extra: dict | None = None):
        metrics = verify.compare_logits(reference, logits, held)
        qtype = key.split(":")[0]
        metrics.update({"path": str(path), "bytes": _size(path), "load_seconds": round(load, 3), "client": client,
                        **(extra or {})})
        problems = verify.check(metrics, f"{spec.name} {key}", spec.min_top1.get(qtype, 0.5), spec.max_kl.get(qtype, 1.0))
        metrics["ok"] = not problems
        report["artifacts"][key] = metrics
        report["problems"] += problems

    if "gguf" in spec.formats:
        out_dir = models_dir / f"{spec.name}-gguf"
        out_dir.mkdir(parents=True, exist_ok=True)
        base = gguf.convert_to_gguf(source, out_dir / f"{spec.name}-f16.gguf", "f16")
        if gguf.gguf_chat_template(base) != tokenizer.chat_template:
            report["problems"].append(f"{spec.name} gguf: its tokenizer.chat_template is not the one the model was "
                                      "trained with (llama.cpp would render other prompts)")
        files = {"f16": base}
        for qtype in spec.gguf_types:
            if qtype != "f16":
                files[qtype] = gguf.quantize_gguf(base, out_dir / f"{spec.name}-{qtype}.gguf", qtype)
        for qtype, path in files.items():
            if qtype not in spec.gguf_types:
                continue
            modelfile = gguf.write_modelfile(path, family, spec.system_prompt)
            logits, load = verify.llama_cpp_logits(path, held)
            record(f"{qtype}:llama.cpp", path, logits, load, "llama-cpp-python", {"modelfile": str(modelfile)})
            if model_type == "llama" and qtype in ("f16", "q8_0"):
                # transformers' GGUF loader dequantizes Llama correctly (it drops Mixtral's experts: not used there).
                logits, load = verify.hf_logits(out_dir, held, gguf_file=path.name)
                record(f"{qtype}:transformers", path, logits, load, "transformers gguf_file")
        if "f16" not in spec.gguf_types:
            base.unlink()
    if "gptq" in spec.formats:
        out_dir = models_dir / f"{spec.name}-gptq"
        texts = calibration_texts(tokenizer, args.corpus, spec.task, spec.calibration_samples)
        info = gptq.quantize_gptq(source, out_dir, texts, spec.gptq_bits, spec.gptq_group_size)
        logits, load = gptq.gptq_logits(out_dir, held.ids)
        record("gptq:gptqmodel", out_dir, logits, load, "gptqmodel",
               {"bits": spec.gptq_bits, "group_size": spec.gptq_group_size, **info})
    path = models_dir / f"{spec.name}-quant-report.json"
    path.write_text(json.dumps(report, indent=2))
    return report


def report_table(reports: list[dict]) -> str:
    lines = ["| model | artifact | client | top-1 agree | KL | max logit diff | ppl (source -> artifact) | MB | load s | ok |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        for key, m in r["artifacts"].items():
            ppl = (f"{m['perplexity_source']:.2f} -> {m['perplexity']:.2f}" if m.get("perplexity") is not None else "-")
            lines.append(f"| {r['name']} | {key.split(':')[0]} | {m['client']} | {m['top1_agreement']:.3f} | "
                         f"{m['kl_divergence']:.4f} | {m['max_logit_diff']:.3f} | {ppl} | {m['bytes'] / 1e6:.2f} | "
                         f"{m['load_seconds']:.2f} | {'yes' if m['ok'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m secml_recipes.quantize recipes/quantize.yaml [--key value ...]", file=sys.stderr)
        return 2
    from .deploy.gguf import DeployError

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
    problems = [p for r in reports for p in r["problems"]]
    for p in problems:
        print(f"BROKEN ARTIFACT: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
