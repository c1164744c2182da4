"""Evaluate a trained specialist or generalist against the reference and against baselines.

Usage:
    secml eval recipes/full/eval-specialist.yaml --model models/specialist_model
    secml eval recipes/full/eval-generalist.yaml --model models/generalist_model_lora
    secml eval recipes/full/eval-generalist.yaml \
        --model mistralai/Mixtral-8x7B-Instruct-v0.1 --adapter models/generalist_model_lora

Writes <output_dir>/eval_report.json, summary.md, metrics.png (and risk_scatter.png for the specialist).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from secml_recipes.atomic import write_text_atomic
from secml_recipes.command_help import recipe_help, wants_help
from secml_recipes.corpus.tarball import manifest_sha256, read_scans, read_split
from secml_recipes.deploy.gguf import DeployError
from secml_recipes.evaluation.heldout_loss import heldout_loss, scoring_source
from secml_recipes.evaluation.intervals import bootstrap_intervals
from secml_recipes.evaluation.report import markdown_table, write_report
from secml_recipes.evaluation.rollout import run_rollouts, score_generalist
from secml_recipes.evaluation.specialist_metrics import risk_score_pairs, rule_baseline, score_specialist
from secml_recipes.families.toolcalls import canonical_conversation
from secml_recipes.model_folders import adapter_base, trained_tokenizer_folder
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.constraints import TOOL_CHOICES, report_constraint
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.tasks.validate import raw_report_error
from secml_recipes.train.guards import refuse_nonfinite_model
from secml_recipes.train.recipe import RecipeError, load_recipe
from secml_recipes.use.generation import load_generator
from secml_recipes.use.gguf_cache import as_gguf

EVAL_USAGE = "secml eval recipes/<profile>/eval-<task>.yaml --model PATH [--adapter PATH] [--key value ...]"


@dataclass
class EvalArguments:
    """What to evaluate, on which data, against which baselines."""

    task: str = field(default="specialist", metadata={"choices": ["specialist", "generalist"]})
    model: str | None = field(default=None, metadata={"help": "model folder or hub id (or an adapter folder)"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter on top of `model`"})
    gguf_file: str | None = field(default=None, metadata={"help": "evaluate a GGUF file inside `model`"})
    backend: str = field(
        default="transformers",
        metadata={
            "help": "transformers (full model, adapter, Llama GGUF) or llama_cpp (any GGUF, Mixtral included; a model "
            "or adapter folder, and the base, are converted to a cached f16 GGUF first: faster on CPUs)",
            "choices": ["transformers", "llama_cpp"],
        },
    )
    gguf_type: str = field(
        default="f16",
        metadata={
            "help": "llama_cpp backend: the GGUF type model and base folders are converted to (f16, or q8_0: the "
            "type `triage` and `serve` load, ~1.4x faster decoding on a CPU; both variants get the same type)",
            "choices": ["f16", "q8_0"],
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "llama_cpp backend: the source model folder whose tokenizer and chat template render prompts"
        },
    )
    base_model: str | None = field(default=None, metadata={"help": "untrained baseline (default: the adapter's base)"})
    baselines: list[str] = field(
        default_factory=lambda: ["base", "rule"],
        metadata={"help": "base (untrained model) and/or rule (specialist only)"},
    )
    dataset_path: str = "data/massive_datasets.tar.gz"
    split: str = "test"
    max_samples: int | None = None
    include_fixtures: bool = field(
        default=True, metadata={"help": "also score the real sys-scan reports shipped with the repo"}
    )
    reports: list[str] = field(default_factory=list, metadata={"help": "more real reports to score (specialist)"})
    max_prompt_chars: int = 12000
    max_new_tokens: int = 2048
    max_steps: int = field(default=6, metadata={"help": "tool-use steps before a rollout is cut off"})
    heldout_loss: bool = field(
        default=True,
        metadata={
            "help": "also score the reference answers' trained tokens (cross-entropy, teacher-forced) for every "
            "variant with weights in a folder (evaluation/heldout_loss.py)"
        },
    )
    constrain: bool = field(
        default=True,
        metadata={
            "help": "also decode under the task's constraint (tasks/constraints.py: the part's enriched-report schema, "
            "the declared tools in the family's call format) and report those columns (`model+constrained`, "
            "`base+constrained`) beside free decoding; --no-constrain skips the constrained pass"
        },
    )
    stop_loops: bool = field(
        default=True,
        metadata={
            "help": "end a free answer (or a tool loop's answer-only turn) once its last 192 tokens repeat a unit of "
            "at most 64 (use/generation.py "
            "is_looping: a cycle greedy decoding does not leave) instead of running it to max_new_tokens; the count "
            "is in the report's timings (`loops_stopped`); --no-stop-loops runs every answer to its end"
        },
    )
    first_turn_tool_choice: str = field(
        default="auto",
        metadata={
            "help": "generalist, constrained columns: required makes each rollout's first turn call a tool (OpenAI's "
            "tool_choice), as an agent that looks at the evidence before it answers; free decoding is never forced",
            "choices": list(TOOL_CHOICES),
        },
    )
    conclude_tool_loops: bool = field(
        default=True,
        metadata={
            "help": "generalist, constrained columns: the last turn of a rollout, and a turn after one that only "
            "repeated earlier calls, must answer instead of calling (tasks/tool_loop.py turn_tool_choice), as agent "
            "frameworks end a loop that runs out of steps with a generated answer; --no-conclude-tool-loops lets a "
            "rollout call until max_steps and end unanswered"
        },
    )
    concurrent_variants: int = field(
        default=1,
        metadata={
            "help": "llama_cpp backend: decode this many variants (trained, base) at once, the cores shared out "
            "between them; on a small CPU two decoders of one thread each finish sooner than one after the other on "
            "all cores (llama.cpp releases the GIL while it decodes); each variant's model is in memory meanwhile"
        },
    )
    batch_size: int = 4
    dtype: str = field(default="bfloat16", metadata={"choices": ["float32", "bfloat16", "float16"]})
    output_dir: str = "eval/specialist"


def _identity(path: str | None) -> dict | None:
    """Where a model came from and a cheap fingerprint (configs and file sizes), for the report."""
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return {"id": path}
    if p.is_file():  # a GGUF: hash its header (metadata and tensor index), not gigabytes of weights
        with open(p, "rb") as fh:
            return {
                "path": str(p.resolve()),
                "bytes": p.stat().st_size,
                "header_sha256": hashlib.sha256(fh.read(1 << 20)).hexdigest(),
            }
    digest = hashlib.sha256()
    files = {}
    for f in sorted(p.iterdir()):
        if f.is_file():
            files[f.name] = f.stat().st_size
            if f.suffix in (".json", ".jinja"):
                digest.update(f.read_bytes())
    return {"path": str(p.resolve()), "config_sha256": digest.hexdigest(), "files": files}


def _data_identity(path: str) -> dict:
    return {"path": str(path), "manifest_sha256": manifest_sha256(path)}


def _specialist_items(args) -> list[dict]:
    rows, _ = read_split(args.dataset_path, "specialist", args.split, Path(args.output_dir) / "rejects")
    rows = rows[: args.max_samples] if args.max_samples else rows
    items = [
        {
            "source": f"corpus:{r['id']}",
            "prompt": r["prompt"],
            "completion": r["completion"][0]["content"],
            "raw": json.loads(r["prompt"][-1]["content"]),
            "reference": json.loads(r["completion"][0]["content"]),
        }
        for r in rows
    ]
    extra = list(real_reports()) if args.include_fixtures else []
    for path in args.reports:
        report = json.loads(Path(path).read_text())
        problem = raw_report_error(report)
        if problem:
            raise ValueError(f"{path}: not a sys-scan v2 report: {problem}")
        extra.append(report)
    for report in extra:
        host = report["meta"].get("hostname", "real")
        for ex in specialist_examples(report, host, args.max_prompt_chars):
            items.append(
                {
                    "source": f"real:{ex['id']}",
                    "prompt": ex["prompt"],
                    "completion": ex["completion"][0]["content"],
                    "raw": json.loads(ex["prompt"][-1]["content"]),
                    "reference": json.loads(ex["completion"][0]["content"]),
                }
            )
    return items


def _as_gguf_variants(variants: dict, qtype: str = "f16") -> tuple[dict, dict]:
    """The llama.cpp backend's variants: model and adapter folders replaced by their cached GGUF of `qtype` and the
    trained tokenizer; the second dict records which folders each GGUF was converted from (for the report)."""
    out, sources = {}, {}
    for name, gen_args in variants.items():
        model, adapter = gen_args["model_path"], gen_args.get("adapter_path")
        if gen_args.get("gguf_file"):
            model = str(Path(model) / gen_args["gguf_file"])
        if Path(model).is_dir() or adapter:
            print(
                f"[secml eval] {name}: converting {model}{' + ' + adapter if adapter else ''} to {qtype} GGUF for "
                "llama.cpp"
            )
            sources[name] = {
                "converted_from": {"model": _identity(model), "adapter": _identity(adapter)},
                "gguf_type": qtype,
            }
        gguf, tokenizer = as_gguf(model, adapter, qtype)
        out[name] = dict(
            model_path=gguf,
            adapter_path=None,
            gguf_file=None,
            backend="llama_cpp",
            tokenizer_path=gen_args.get("tokenizer_path") or tokenizer,
        )
    return out, sources


@dataclass
class _Scored:
    """One task's outcome for every variant, and what the report needs besides the metrics."""

    results: dict
    timings: dict
    identities: dict
    loss_rows: list[dict]
    sizes: dict
    scatter: list | None = None
    intervals: dict = field(default_factory=dict)  # variant -> metric -> [low, high] (evaluation/intervals.py)


def _check_inputs(args) -> None:
    """A missing model, or a diverged run's NaN weights (which would score as empty predictions), stops here."""
    if not args.model:
        raise ValueError("no model to evaluate: pass --model PATH (a trained output folder or a hub id)")
    for folder in (args.model, args.adapter):
        if folder and Path(folder).is_dir() and not args.gguf_file and args.backend == "transformers":
            refuse_nonfinite_model(folder, "evaluate")


def _base_model(args) -> str | None:
    """The untrained baseline: the recipe's `base_model`, else the base an adapter was trained on."""
    if args.base_model:
        return args.base_model
    if args.backend == "llama_cpp" and not Path(args.model).is_dir():
        return None
    adapter = args.adapter or (args.model if (Path(args.model) / "adapter_config.json").exists() else None)
    return adapter_base(adapter) if adapter else None


def _variants(args) -> dict:
    """The trained model and, when asked, its untrained base, as keyword arguments of `load_generator`."""
    variants = {
        "model": dict(
            model_path=args.model,
            adapter_path=args.adapter,
            gguf_file=args.gguf_file,
            backend=args.backend,
            tokenizer_path=args.tokenizer,
        )
    }
    if "base" in args.baselines:
        base = _base_model(args)
        if base:
            variants["base"] = dict(model_path=base, adapter_path=None, gguf_file=None, backend=args.backend)
        else:
            print("[secml eval] no untrained baseline: set base_model (the model is not an adapter)")
    return variants


def _loss_sources(args, variants: dict) -> tuple[dict, str | None]:
    """Which variants get a held-out loss, from which weights, and the tokenizer that renders the references.

    Decided on the variants' folders, before llama.cpp conversion; a GGUF alone has no trained chat template."""
    if not args.heldout_loss:
        return {}, None
    tokenizer = args.tokenizer or (
        None if Path(args.model).is_file() else trained_tokenizer_folder(args.model, args.adapter)
    )
    if tokenizer is None:
        return {}, None
    return {
        name: scoring_source(v["model_path"], v.get("adapter_path"))
        for name, v in variants.items()
        if not v.get("gguf_file")
    }, tokenizer


def _for_each_variant(args, variants: dict, sources: dict, produce) -> tuple[dict, dict, dict]:
    """Load each variant, let `produce(name, generator, constrained)` score it with free decoding and, unless
    `--no-constrain`, under the task's constraint (column `<name>+constrained`); timings and identities alongside.
    Up to `concurrent_variants` variants run at once (llama.cpp), each on its share of the cores; when one is done
    its cores go to the others."""
    workers = _concurrent_workers(args, len(variants))
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None

    decoding: dict = {}  # name -> generator, of the variants still decoding
    lock = threading.Lock()

    def one(name: str, gen_args: dict) -> tuple[dict, dict, dict]:
        extra = {"n_threads": threads} if threads else {}
        gen = load_generator(dtype=args.dtype, batch_size=args.batch_size, name=name, **gen_args, **extra)
        with lock:
            decoding[name] = gen
        try:
            return run(name, gen)
        finally:
            with lock:  # a variant that is done hands its cores to those still decoding
                decoding.pop(name)
                for other in decoding.values():
                    if threads and hasattr(other, "set_threads"):
                        other.set_threads(max(1, (os.cpu_count() or 1) // len(decoding)))

    def run(name: str, gen) -> tuple[dict, dict, dict]:
        gen.stop_loops = args.stop_loops
        results, timings = {}, {}
        for constrained in (False, True) if args.constrain else (False,):
            column = f"{name}+constrained" if constrained else name
            gen.stats.update(generated_tokens=0, seconds=0.0, prompts=0, loops_stopped=0)
            t0 = time.perf_counter()
            results[column] = produce(name, gen, constrained)
            timings[column] = {"seconds": round(time.perf_counter() - t0, 2), **gen.stats}
            if threads:
                timings[column]["threads"] = threads  # the share it started with
        identity = {
            "base": _identity(gen.resolved_base),
            "adapter": _identity(gen.resolved_adapter),
            **sources.get(name, {}),
        }
        return results, timings, identity

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = dict(zip(variants, pool.map(one, variants, variants.values())))
    else:
        outcomes = {name: one(name, gen_args) for name, gen_args in variants.items()}
    results, timings, identities = {}, {}, {}
    for name, (res, tim, identity) in outcomes.items():
        results.update(res)
        timings.update(tim)
        identities[name] = identity
    return results, timings, identities


def _concurrent_workers(args, n_variants: int) -> int:
    """How many variants decode at once: `concurrent_variants`, at most one per variant and per core; llama.cpp only
    (transformers runs one model on every core)."""
    wanted = min(args.concurrent_variants, n_variants, os.cpu_count() or 1)
    if wanted > 1 and args.backend != "llama_cpp":
        print("[secml eval] concurrent_variants applies to the llama_cpp backend; decoding one variant at a time")
        return 1
    return max(1, wanted)


def _score_specialist(args, variants: dict, sources: dict, out_dir: Path) -> _Scored:
    """Full-length generation of enriched reports, scored against the references; the model's are kept."""
    items = _specialist_items(args)
    refs, raws = [it["reference"] for it in items], [it["raw"] for it in items]
    scatter = []

    def produce(name, gen, constrained):
        prompts = [gen.render(it["prompt"]) for it in items]
        rules = [report_constraint(raw) for raw in raws] if constrained else None
        preds = []
        desc = f"generating ({name}{', constrained' if constrained else ''})"
        for start in tqdm(range(0, len(prompts), args.batch_size), desc=desc, disable=None):
            end = start + args.batch_size
            extra = {"constraint": rules[start:end]} if rules else {}
            preds += gen.generate(prompts[start:end], args.max_new_tokens, **extra)
        if name == "model":
            if not constrained:
                scatter.extend(risk_score_pairs(preds, refs))
            out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(
                out_dir / ("predictions.constrained.jsonl" if constrained else "predictions.jsonl"),
                "".join(json.dumps({"source": it["source"], "prediction": p}) + "\n" for it, p in zip(items, preds)),
            )
        intervals[f"{name}+constrained" if constrained else name] = bootstrap_intervals(
            lambda idx: score_specialist([preds[i] for i in idx], [refs[i] for i in idx], [raws[i] for i in idx]),
            len(items),
        )
        return score_specialist(preds, refs, raws)

    intervals: dict = {}
    results, timings, identities = _for_each_variant(args, variants, sources, produce)
    if "rule" in args.baselines:
        rule = [rule_baseline(raw) for raw in raws]
        results["rule"] = score_specialist(rule, refs, raws)
        intervals["rule"] = bootstrap_intervals(
            lambda idx: score_specialist([rule[i] for i in idx], [refs[i] for i in idx], [raws[i] for i in idx]),
            len(items),
        )
    loss_rows = [
        {"messages": it["prompt"] + [{"role": "assistant", "content": it["completion"]}], "prompt": it["prompt"]}
        for it in items
    ]
    sizes = {"examples": len(items), "real_report_examples": sum(it["source"].startswith("real:") for it in items)}
    scatter = scatter if "model" in results else None
    return _Scored(results, timings, identities, loss_rows, sizes, scatter, intervals)


def _score_generalist(args, variants: dict, sources: dict, out_dir: Path) -> _Scored:
    """Tool-use rollouts over held-out scans, scored per episode; the model's trajectories are kept."""
    rows, _ = read_split(args.dataset_path, "generalist", args.split, out_dir / "rejects")
    rows = rows[: args.max_samples] if args.max_samples else rows
    scans = read_scans(args.dataset_path, args.split)

    def produce(name, gen, constrained):
        desc = f"rollouts ({name}{', constrained' if constrained else ''})"
        with tqdm(desc=desc, unit="turn", disable=None) as bar:
            trajectories = run_rollouts(
                gen,
                rows,
                scans,
                args.max_steps,
                args.max_new_tokens,
                progress=bar,
                constrain=constrained,
                first_turn_tool_choice=args.first_turn_tool_choice,
                conclude=args.conclude_tool_loops,
            )
        if name == "model":
            out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(
                out_dir / ("trajectories.constrained.jsonl" if constrained else "trajectories.jsonl"),
                "".join(
                    json.dumps(
                        {
                            "id": t.episode_id,
                            "final": t.final,
                            "steps": t.steps,
                            "calls": t.calls,
                            "messages": t.messages,
                        }
                    )
                    + "\n"
                    for t in trajectories
                ),
            )
        intervals[f"{name}+constrained" if constrained else name] = bootstrap_intervals(
            lambda idx: score_generalist([trajectories[i] for i in idx]), len(trajectories)
        )
        return score_generalist(trajectories)

    intervals: dict = {}
    results, timings, identities = _for_each_variant(args, variants, sources, produce)
    loss_rows = [dict(zip(("messages", "tools"), canonical_conversation(r["messages"], r["tools"]))) for r in rows]
    return _Scored(results, timings, identities, loss_rows, {"episodes": len(rows)}, intervals=intervals)


def _add_heldout_loss(scored: _Scored, loss_sources: dict, tokenizer: str | None) -> None:
    """Teacher-forced loss of the reference answers, for each variant that has weights in a folder."""
    for name, source in loss_sources.items():
        if source is not None and name in scored.results:
            print(f"[secml eval] {name}: held-out loss on {len(scored.loss_rows)} reference answers")
            scored.results[name].update(heldout_loss(*source, tokenizer, scored.loss_rows))


def evaluate(args) -> dict:
    """Score the model and its baselines on the task; write eval_report.json, summary.md and the plots."""
    _check_inputs(args)
    out_dir = Path(args.output_dir)
    variants = _variants(args)
    loss_sources, loss_tokenizer = _loss_sources(args, variants)
    sources = {}
    if args.backend == "llama_cpp":
        variants, sources = _as_gguf_variants(variants, args.gguf_type)
    score = _score_specialist if args.task == "specialist" else _score_generalist
    scored = score(args, variants, sources, out_dir)
    _add_heldout_loss(scored, loss_sources, loss_tokenizer)

    report = {
        "task": args.task,
        "args": dict(vars(args)),
        "models": scored.identities,
        "data": _data_identity(args.dataset_path),
        "sizes": scored.sizes,
        "timings": scored.timings,
        "intervals": scored.intervals,
    }
    title = f"{args.task} evaluation: {args.model}" + (f" + {args.adapter}" if args.adapter else "")
    report = write_report(out_dir, report, scored.results, scored.scatter, title)
    print(markdown_table(scored.results, scored.intervals))
    print(
        f"[secml eval] wrote {out_dir / 'eval_report.json'}, {out_dir / 'summary.md'}, "
        + ", ".join(str(out_dir / p) for p in report["plots"])
    )
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        description = "Scores a model and its baselines on the corpus's held-out split; --key value wins over the file."
        print(recipe_help(EVAL_USAGE, [("evaluation keys (EvalArguments)", EvalArguments)], description), end="")
        return 0
    if not argv or argv[0].startswith("-"):
        print(f"usage: {EVAL_USAGE} (secml eval --help lists the keys)", file=sys.stderr)
        return 2

    negations = {"--no-constrain": ["--constrain", "false"], "--no-stop-loops": ["--stop_loops", "false"]}
    argv = [a for x in argv for a in negations.get(x, [x])]
    try:
        (args,) = load_recipe(argv[0], argv[1:], classes=(EvalArguments,))
        evaluate(args)
    except (RecipeError, ValueError, KeyError, FileNotFoundError, DeployError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
