"""Publish the adapter, the full/merged models and the quantized artifacts to the Hugging Face Hub.

Usage:
    HF_TOKEN=... secml push --namespace your-org [--only specialist] [--public] [--dry-run]

Repos are private unless --public. Each gets a model card with the base model, recipe, data manifest
hash, evaluation metrics, quantization report and license (a `huggingface_hub.ModelCard`). The token is
found as every Hugging Face tool finds it (HF_TOKEN, `hf auth login`; also HUGGINGFACE_TOKEN);
--huggingface-token works but warns (it lands in shell history). The token is only ever handed to
`huggingface_hub.HfApi`; it is scrubbed from every message this command prints. Folders come from `layout`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from secml_recipes import layout
from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.corpus.tarball import CorpusError, manifest_sha256
from secml_recipes.deploy.quantize import report_table
from secml_recipes.hub import hub_token, scrub
from secml_recipes.model_folders import adapter_base
from secml_recipes.train.guards import NonFiniteModelError, refuse_nonfinite_model

# Licenses of the default base models, for when no card of theirs is on this machine. Any other base is looked up
# in what is local (`license_of`); a base whose license cannot be read gets a card that says so rather than a guess.
LICENSES = {
    "meta-llama/Llama-3.1-8B-Instruct": (
        "llama3.1",
        "Llama 3.1 Community License (derivative of meta-llama/Llama-3.1-8B-Instruct)",
    ),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (
        "apache-2.0",
        "Apache 2.0 (derivative of mistralai/Mixtral-8x7B-Instruct-v0.1)",
    ),
}
IGNORE = ["checkpoint-*", "checkpoint-*/**", "training_args.bin", "rejects/**", "*.pt", "optimizer*", "rng_state*"]


@dataclass
class Artifact:
    """One folder to publish and what its card should say."""

    name: str  # model name in the recipes: specialist / generalist
    kind: str  # adapter, model, merged, gptq, gguf
    folder: Path
    base_model: str


def resolve_token(cli_token: str | None) -> str | None:
    if cli_token:
        print(
            "warning: --huggingface-token puts the token in your shell history and process list; "
            "prefer `export HF_TOKEN=...`",
            file=sys.stderr,
        )
        return cli_token
    return hub_token()


def _local_card_license(card_path: Path | str | None) -> str | None:
    """The `license:` of a model card (README.md front matter) on this machine, or None."""
    # lazy: only when the Hub is used
    from huggingface_hub import ModelCard

    if not card_path or not Path(card_path).is_file():
        return None
    try:
        return ModelCard.load(card_path).data.license
    except Exception:  # a README without front matter or with bad YAML: no license to read
        return None


def base_model_record(base_model: str) -> dict:
    """What a local base folder says about itself (`make base-models` writes secml_base_model.json)."""
    if not base_model:
        return {}
    return _read_json(Path(base_model) / layout.BASE_MODEL_RECORD) or {}


def hub_id_of(base_model: str) -> str:
    """The Hub id a card names as the base: a local base folder's recorded origin, else what the recipe named."""
    return base_model_record(base_model).get("hub_id") or base_model


def license_of(base_model: str) -> tuple[str, str]:
    """(Hub license id, card text) of a derivative of `base_model`, read from what is on this machine: a local base
    folder's record or README.md, the Hub cache's copy of the base's card, then the defaults' table."""
    # lazy: only when the Hub is used
    from huggingface_hub import try_to_load_from_cache

    hub_id = hub_id_of(base_model)
    local = bool(base_model) and Path(base_model).is_dir()
    found = base_model_record(base_model).get("license") if local else None
    found = found or (_local_card_license(Path(base_model) / "README.md") if local else None)
    if not found and hub_id and "/" in hub_id and not Path(hub_id).exists():
        try:
            cached = try_to_load_from_cache(hub_id, "README.md")
        except ValueError:  # not a valid repo id (huggingface_hub's HFValidationError): nothing cached under it
            cached = None
        found = _local_card_license(cached if isinstance(cached, str) else None)
    if found:
        return found, f"{found} (derivative of {hub_id}; its license applies)"
    unknown = f"the license of its base model `{base_model or 'unknown'}` (see that model's card)"
    return LICENSES.get(hub_id, ("other", unknown))


DERIVED = {"merged": layout.merged_model, "gptq": layout.gptq_model, "gguf": layout.gguf_dir}


def find_artifacts(models_dir: Path, only: str | None = None) -> list[Artifact]:
    """What training and `make quantize` left in models/ (see `layout`)."""
    found = []
    for name in layout.TASKS:
        if only and name != only:
            continue
        trained, base = layout.trained_model(name, models_dir), ""
        if trained.exists():
            recipe = _read_json(trained / layout.RECIPE_FILE) or {}
            base = recipe.get("resolved", {}).get("model_name_or_path", "")
            if (trained / "adapter_config.json").exists():
                base = adapter_base(trained)
                found.append(Artifact(name, "adapter", trained, base))
            else:
                found.append(Artifact(name, "model", trained, base))
        for kind, folder_of in DERIVED.items():
            folder = folder_of(name, models_dir)
            if folder.exists():
                found.append(Artifact(name, kind, folder, base))
    return found


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def data_manifest_hash(recipe: dict | None) -> str | None:
    path = (recipe or {}).get("resolved", {}).get("dataset_path")
    try:
        return manifest_sha256(path) if path else None
    except CorpusError:
        return None


TASK_TEXT = {
    "specialist": "raw sys-scan report -> enriched security report (JSON)",
    "generalist": "agentic analysis of sys-scan findings with tool calls",
}


def model_card(art: Artifact, models_dir: Path, eval_dir: Path):
    """The model card (README.md) pushed with an artifact, as a `huggingface_hub.ModelCard`."""
    # lazy: only when the Hub is used
    from huggingface_hub import ModelCard, ModelCardData

    recipe = _read_json(layout.trained_model(art.name, models_dir) / layout.RECIPE_FILE)
    license_id, license_text = license_of(art.base_model)
    data = ModelCardData(
        license=license_id,
        base_model=hub_id_of(art.base_model) or None,
        library_name="peft" if art.kind == "adapter" else "transformers",
        tags=["secml-recipes", "security", "sys-scan"] + ([art.kind] if art.kind in DERIVED else []),
    )
    lines = [
        f"# secml {art.name} ({art.kind})",
        "",
        f"Task: {TASK_TEXT[art.name]}.",
        "",
        f"- Base model: `{art.base_model}`",
        f"- Artifact: {art.kind}",
        f"- License: {license_text}",
        f"- Recipe: `{(recipe or {}).get('recipe', 'unknown')}`",
        f"- Data manifest sha256: `{data_manifest_hash(recipe) or 'unknown'}`",
        "",
    ]
    lines += _card_sections(
        art,
        recipe,
        _read_json(eval_dir / art.name / "eval_report.json"),
        _read_json(layout.quant_report(art.name, models_dir)),
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _card_sections(art: Artifact, recipe: dict | None, evaluation: dict | None, quant: dict | None) -> list[str]:
    lines = []
    if recipe:
        keys = {
            k: v for k, v in recipe.get("resolved", {}).items() if "token" not in k or k in ("pad_token", "eos_token")
        }
        lines += ["## Training recipe", "", "```json", json.dumps(keys, indent=2, default=str), "```", ""]
    if evaluation and evaluation.get("results_markdown"):  # the table the evaluation wrote (evaluation/report.py)
        lines += ["## Evaluation", "", evaluation["results_markdown"], ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (`make eval`).", ""]
    if quant:
        lines += ["## Quantization report", "", report_table([quant]), ""]
    if art.kind == "gguf":
        qtype = _card_gguf_type(art)
        lines += [
            "## Use",
            "",
            "```bash",
            "ollama create secml-" + art.name + f" -f Modelfile.{qtype}",
            f"llama-cli -m {art.name}-{qtype}.gguf -cnv",
            "```",
            "",
        ]
    elif art.kind == "gptq":
        lines += [
            "## Use",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM",
            "model = AutoModelForCausalLM.from_pretrained('<this repo>', device_map='auto')  # needs gptqmodel",
            "```",
            "",
        ]
    return lines


QUANTIZED = {"gguf": lambda key: not key.startswith("gptq:"), "gptq": lambda key: key.startswith("gptq:")}


def _card_gguf_type(art: Artifact) -> str:
    """The GGUF type the card's usage lines name: the folder's q4_K_M (smallest verified), else q8_0, else any."""
    present = [p.name[len(art.name) + 1 : -len(".gguf")] for p in Path(art.folder).glob(f"{art.name}-*.gguf")]
    return next((q for q in ("q4_K_M", "q8_0") if q in present), sorted(present)[0] if present else "q4_K_M")


def refusal(art: Artifact, models_dir: Path) -> str | None:
    """Why `art` must not be published, or None: non-finite weights, or a quantized artifact that its quantize
    report does not verify as ok (or that has no report)."""
    if art.kind in QUANTIZED:
        report_path = layout.quant_report(art.name, models_dir)
        report = _read_json(report_path)
        if report is None:
            return f"{art.folder}: no quantize report ({report_path}); run `make quantize` to verify it first"
        mine = {k: v for k, v in report.get("artifacts", {}).items() if QUANTIZED[art.kind](k)}
        broken = sorted(k for k, v in mine.items() if not v.get("ok"))
        if not mine or broken:
            what = f"marks {', '.join(broken)} as not ok" if broken else f"verifies no {art.kind} artifact"
            return f"{art.folder}: its quantize report {report_path.name} {what}; fix and rerun `make quantize`"
        return None
    try:
        refuse_nonfinite_model(art.folder, "push")
    except NonFiniteModelError as err:
        return str(err)
    return None


def push(
    namespace: str,
    models_dir: Path,
    eval_dir: Path,
    token: str,
    private: bool = True,
    only: str | None = None,
    api=None,
    dry_run: bool = False,
) -> list[dict]:
    """Create (private) repos and upload each artifact with its card. Returns what was done."""
    if api is None and not dry_run:
        # lazy: only when the Hub is used
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    artifacts = find_artifacts(models_dir, only)
    refused = [r for r in (refusal(a, models_dir) for a in artifacts) if r]
    if refused:  # nothing is pushed when any artifact is refused: a repo never gets half a release
        raise RuntimeError("refused: " + " | ".join(refused))
    done = []
    for art in artifacts:
        suffix = {"model": "", "adapter": "-lora"}.get(art.kind, f"-{art.kind}")
        repo_id = f"{namespace}/secml-{art.name}{suffix}"
        card = model_card(art, models_dir, eval_dir)
        entry = {"repo_id": repo_id, "folder": str(art.folder), "private": private, "kind": art.kind}
        if not dry_run:
            try:
                api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
                api.upload_folder(
                    repo_id=repo_id,
                    folder_path=str(art.folder),
                    ignore_patterns=IGNORE,
                    commit_message=f"secml-recipes: {art.name} {art.kind}",
                )
                api.upload_file(
                    repo_id=repo_id,
                    path_or_fileobj=str(card).encode(),
                    path_in_repo="README.md",
                    commit_message="secml-recipes: model card",
                )
            except Exception as err:
                raise RuntimeError(scrub(f"push of {art.folder} to {repo_id} failed: {err}", token)) from None
        done.append(entry)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml push",
        description=__doc__,
        formatter_class=CommandHelpFormatter,
    )
    parser.add_argument("--namespace", required=True, help="your user or organisation on the Hub")
    parser.add_argument("--models-dir", default=str(layout.MODELS))
    parser.add_argument("--eval-dir", default=str(layout.EVAL))
    parser.add_argument("--only", choices=["specialist", "generalist"])
    parser.add_argument("--public", action="store_true", help="make new repos public (default: private)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be pushed")
    parser.add_argument("--huggingface-token", help="discouraged: use HF_TOKEN")
    args = parser.parse_args(argv)
    token = resolve_token(args.huggingface_token)
    if not token and not args.dry_run:
        print(
            "error: no Hub token: export HF_TOKEN (or HUGGINGFACE_TOKEN), or log in with `hf auth login`",
            file=sys.stderr,
        )
        return 2
    try:
        done = push(
            args.namespace,
            Path(args.models_dir),
            Path(args.eval_dir),
            token or "",
            not args.public,
            args.only,
            dry_run=args.dry_run,
        )
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not done:
        print(f"nothing to push under {args.models_dir} (train first)", file=sys.stderr)
        return 1
    for d in done:
        print(
            f"{'would push' if args.dry_run else 'pushed'} {d['folder']} -> {d['repo_id']} "
            f"({'private' if d['private'] else 'public'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
