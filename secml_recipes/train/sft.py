"""Supervised fine-tuning of the specialist and the generalist from one recipe.

Usage:
    secml train recipes/<profile>/<task>.yaml [--key value ...]   (one process; `secml train --help` lists the keys)
    accelerate launch --config_file accelerate_configs/<cfg>.yaml -m secml_recipes.sft recipes/<profile>/<task>.yaml
        [--key value ...]

The recipe's `task` picks the trainer; everything else (model, LoRA, data, SFTConfig) is in the YAML. What the run
will do on this machine with this model is decided once (`run_settings.resolve_run_settings`, from the recipe, the
machine and the model's tokenizer and config: its family's chat template and tokens included), logged as a table at
the start and saved beside the model as `run_settings.json`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import transformers
from transformers import AutoTokenizer
from trl import get_peft_config, get_quantization_config

from secml_recipes import layout
from secml_recipes.atomic import write_json_atomic
from secml_recipes.command_help import wants_help
from secml_recipes.corpus.mixture import load_task_split
from secml_recipes.corpus.tarball import CorpusError, corpus_record
from secml_recipes.env_errors import describe_environment_error, free_space
from secml_recipes.families import canonical_row
from secml_recipes.families.templates import read_template
from secml_recipes.hub import hub_token
from secml_recipes.model_config import read_model_config
from secml_recipes.plotting import write_loss_plot
from secml_recipes.run_lock import OutputDirLock, RunLocked
from secml_recipes.train.attention import register as register_varlen_attention
from secml_recipes.train.checkpoints import (
    CheckpointError,
    checkpoints_newest_first,
    newest_complete_checkpoint,
    require_complete,
)
from secml_recipes.train.guards import NonFiniteError
from secml_recipes.train.plan import PlanError, check_launch
from secml_recipes.train.quantized_experts import experts_aware
from secml_recipes.train.recipe import TRAIN_USAGE, RecipeError, build_recipe, resolve_recipe, training_recipe_help
from secml_recipes.train.recipe_checks import check_recipe_values
from secml_recipes.train.run_settings import describe_model, detect_environment, resolve_run_settings
from secml_recipes.train.sharding import launch_settings, save_final_model
from secml_recipes.train.trainers import trainer_class
from secml_recipes.train.truncation import shortest_rows_fit

logger = logging.getLogger("secml_recipes.train.sft")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print(training_recipe_help(), end="")
        return 0
    if not argv or argv[0].startswith("-"):
        print(f"usage: {TRAIN_USAGE} (secml train --help lists the keys)", file=sys.stderr)
        return 2
    recipe_path, overrides = argv[0], argv[1:]
    try:
        resolved = launch_settings(resolve_recipe(recipe_path, overrides))  # XLA SPMD FSDPv2 on a TPU host
        data_args, model_args, training_args, speed_args = build_recipe(resolved, recipe_path)
        check_recipe_values(data_args, model_args, training_args, recipe_path)  # ranges and finite numbers
        # --- memory plan: refuse a launch that cannot fit before any weight is downloaded or loaded ----------
        check_launch(recipe_path, model_args, training_args, speed_args)
    except (RecipeError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return train(data_args, model_args, training_args, speed_args, resolved, recipe_path)


class _Refused(Exception):
    """A bad input found before training: printed as one line, exit 2."""


def train(data_args, model_args, training_args, speed_args, resolved: dict, recipe_path: str) -> int:
    """One run that owns its output_dir (run_lock.py); a full disk or an unreachable Hub ends it with one line
    that says what happened and how the run resumes (env_errors.py)."""
    output_dir = Path(training_args.output_dir)
    lock = OutputDirLock(output_dir) if training_args.process_index == 0 else None
    stage = ["starting"]
    try:
        if lock is not None:
            lock.acquire()
        return _train(data_args, model_args, training_args, speed_args, resolved, recipe_path, stage)
    except RunLocked as err:
        lock = None  # not ours to release
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        message = _environment_message(err, stage[0], output_dir, training_args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.release()


def _environment_message(err: BaseException, stage: str, output_dir: Path, training_args) -> str | None:
    """One line for a full disk or a network failure during `stage`, with what was kept and how to go on."""
    described = describe_environment_error(err)
    if described is None:
        return None
    kind, what = described
    last = newest_complete_checkpoint(output_dir, set_aside=False).checkpoint if output_dir.is_dir() else None
    resume = f"it resumes from {last.name}" if last else "it starts over (no complete checkpoint yet)"
    if kind == "disk":
        return (
            f"{what} while {stage} ({free_space(output_dir if output_dir.exists() else output_dir.parent)} for "
            f"{output_dir}); free space and rerun the same command: {resume}, an incomplete checkpoint is set aside"
        )
    if stage == "pushing to the Hub":
        return (
            f"{what} while {stage}; the trained model is saved in {output_dir}: publish it later with "
            "`secml push`, or rerun with --push_to_hub false"
        )
    return f"{what} while {stage}; rerun when the Hub is reachable (or with --push_to_hub false): {resume}"


def _train(data_args, model_args, training_args, speed_args, resolved: dict, recipe_path: str, stage: list) -> int:
    # --- seed, logging and what this run will do --------------------------------------------------
    transformers.set_seed(training_args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    output_dir = Path(training_args.output_dir)
    try:
        stage[0] = "reading the model's tokenizer and the data"
        settings, tokenizer = resolve_run(data_args, model_args, training_args, speed_args, detect_environment())
        if training_args.process_index == 0:
            logger.info("%s", settings.table())
        _export_hub_token(training_args)
        # --- data ----------------------------------------------------------------------------------
        train_dataset, eval_dataset = _load_datasets(data_args, settings, output_dir, training_args.seed)
        # a max_length that would cut (and drop) every row fails before the model loads
        shortest_rows_fit(
            train_dataset, tokenizer, settings.max_length, not settings.drops_cut_rows, data_args.train_split
        )
        resume = _resume_checkpoint(model_args, training_args, output_dir)
    except (RecipeError, _Refused) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # --- model and trainer -----------------------------------------------------------------------
    stage[0] = "loading the model" + (" and creating the Hub repository" if training_args.push_to_hub else "")
    trainer = build_trainer(settings, model_args, training_args, train_dataset, eval_dataset, tokenizer)
    n_rows, kept = len(train_dataset), len(trainer.train_dataset)
    truncation = trainer.planned.get("truncation", {})
    if truncation and trainer.accelerator.is_main_process:
        logger.info(
            "max_length=%s: %s",
            settings.max_length,
            "; ".join(
                f"{name}: {c['rows']} rows, {c['cut']} cut, {c['dropped']} dropped" for name, c in truncation.items()
            ),
        )

    # --- train (resuming from the newest complete checkpoint in output_dir) and save ---------------
    stage[0] = "training (writing checkpoints)"
    try:
        result = trainer.train(resume_from_checkpoint=resume)
        trainer.guard.check_weights(trainer.state, trainer.model)  # a non-finite model is never saved
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stage[0] = "saving the trained model"
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    save_final_model(trainer, str(output_dir))  # full safetensors (or the adapter) whatever the sharding
    if trainer.accelerator.is_main_process:
        summary = {
            "recipe": str(recipe_path),
            "resolved": resolved,
            "train_rows": n_rows,
            "trained_rows": kept,
            "truncation": truncation,
            "corpus": _corpus_record(data_args),
        }
        _save_outputs(trainer, tokenizer, data_args, model_args, output_dir, summary)

    # --- evaluate and push -----------------------------------------------------------------------
    if eval_dataset is not None:
        stage[0] = "evaluating"
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if training_args.push_to_hub:
        stage[0] = "pushing to the Hub"
        trainer.push_to_hub(tags=list(type(trainer)._tag_names))
    if trainer.accelerator.is_main_process:
        files = sorted(p.name for p in output_dir.iterdir() if p.is_file())
        print(f"[secml sft] saved {data_args.task} model to {output_dir}: {', '.join(files)}")
    if trainer.accelerator.num_processes > 1:
        # No rank leaves while the main one still writes the outputs, and the process group is closed before the
        # interpreter exits (a rank exiting with its communication threads alive aborts).
        trainer.accelerator.wait_for_everyone()
        trainer.accelerator.end_training()
    return 0


def _export_hub_token(training_args) -> None:
    """With push_to_hub, the token goes to huggingface_hub through the environment only: training_args.bin
    pickles the whole TrainingArguments, a hub_token in it included."""
    if not training_args.push_to_hub:
        return
    token = hub_token()
    if not token:
        raise _Refused(
            "push_to_hub is set but no Hub token was found: export HF_TOKEN (or HUGGINGFACE_TOKEN), "
            "or log in with `hf auth login`"
        )
    os.environ["HF_TOKEN"] = token


def _load_datasets(data_args, settings, output_dir: Path, seed: int):
    """The training split and, when the run evaluates, the evaluation split (the weighted mixture of
    `dataset_mixture` when set, see corpus/mixture.py); bad rows go to the rejects folder."""
    rejects_dir = data_args.rejects_dir or str(layout.rejects_dir(output_dir))
    try:
        train_dataset = load_task_split(
            data_args, data_args.train_split, rejects_dir, data_args.max_train_samples, seed, log_dir=output_dir
        )
        eval_dataset = None
        if settings.evaluate:
            eval_dataset = load_task_split(
                data_args,
                data_args.eval_split,
                rejects_dir,
                data_args.max_eval_samples,
                seed,
                log_dir=output_dir,
                weighted=False,
            )
    except CorpusError as err:
        raise _Refused(str(err)) from None
    if len(train_dataset) == 0:
        raise _Refused(f"{data_args.dataset_path}: no valid {data_args.task}/{data_args.train_split} rows")
    return train_dataset, eval_dataset


def _resume_checkpoint(model_args, training_args, output_dir: Path) -> str | None:
    """The recipe's resume_from_checkpoint (refused when incomplete), else the newest complete checkpoint in
    output_dir if it is of this model. Newer incomplete ones (a crash or a full disk while one was written) are set
    aside as `incomplete-checkpoint-N` and the fall-back is said in one line (checkpoints.py)."""
    model_only = bool(training_args.save_only_model)
    if training_args.resume_from_checkpoint is not None:
        try:
            require_complete(training_args.resume_from_checkpoint, model_only)
        except CheckpointError as err:
            raise _Refused(str(err)) from None
        return training_args.resume_from_checkpoint
    if not output_dir.is_dir():
        return None
    newest = checkpoints_newest_first(output_dir)
    if newest:  # another model's checkpoint is refused, complete or not: it is never set aside as ours
        _refuse_another_models_checkpoint(newest[0], model_args, training_args)
    resume = newest_complete_checkpoint(output_dir, model_only, set_aside=training_args.process_index == 0)
    if resume.message() and training_args.process_index == 0:
        logger.warning("%s", resume.message())
    if resume.checkpoint is None:
        return None
    logger.info("resuming from %s (found in output_dir)", resume.checkpoint)
    return str(resume.checkpoint)


def _refuse_another_models_checkpoint(checkpoint: Path, model_args, training_args) -> None:
    """Recipes for other models share the layout's output folder (recipes/qwen3/ and the defaults): a checkpoint
    left there by another base model cannot resume this run, which says so before loading any weights."""
    adapter, config = checkpoint / "adapter_config.json", checkpoint / "config.json"
    model = model_args.model_name_or_path
    if adapter.is_file():
        theirs, ours = json.loads(adapter.read_text()).get("base_model_name_or_path"), model
        if theirs and Path(theirs).exists() and Path(ours).exists():  # the same folder, however it was spelled
            theirs, ours = str(Path(theirs).resolve()), str(Path(ours).resolve())
    elif config.is_file():
        theirs = _model_type(str(checkpoint))
        ours = _model_type(model, model_args.model_revision, training_args.trust_remote_code)
        if ours is None:
            return
    else:
        return
    if theirs and theirs != ours:
        raise _Refused(
            f"output_dir: {checkpoint} is a checkpoint of {theirs}, this run trains {ours}; give --output_dir "
            "another folder, or remove its checkpoint-* folders to start over"
        )


def _corpus_record(data_args) -> dict | None:
    """The corpus' identity and part size, kept with the model: triage splits reports as training did."""
    return corpus_record(data_args.dataset_path) if getattr(data_args, "dataset_path", None) else None


def _save_outputs(trainer, tokenizer, data_args, model_args, output_dir: Path, summary: dict) -> None:
    """Beside the weights: tokenizer, the recipe and run settings, the loss history and plot, the model card."""
    tokenizer.save_pretrained(str(output_dir))
    settings = {**trainer.run_settings.to_dict(), "planned": run_plan(trainer)}
    write_json_atomic(output_dir / layout.RUN_SETTINGS_FILE, settings, default=str)
    write_json_atomic(output_dir / layout.RECIPE_FILE, {**summary, "run_settings": settings}, default=str)
    history = trainer.state.log_history
    write_json_atomic(output_dir / "loss_history.json", history)
    if data_args.loss_plot:
        write_loss_plot(history, output_dir / "loss.png", title=f"{data_args.task}: {model_args.model_name_or_path}")
    trainer.create_model_card(model_name=output_dir.name, tags=list(type(trainer)._tag_names))


def run_plan(trainer) -> dict:
    """What the trainer planned from the data and the model once they were loaded (XLA buckets, checkpointed
    layers), to complete the settings saved with the model."""
    plan = dict(trainer.planned)
    checkpointing = getattr(trainer, "checkpointing", None)
    if checkpointing is not None and checkpointing.checkpointed is not None:
        plan["checkpointed_layers"] = checkpointing.checkpointed
    return plan


def resolve_run(data_args, model_args, training_args, speed_args, env):
    """What the run will do (`RunSettings`) and the tokenizer it trains with. The model's tokenizer and config are
    read first (no weights): the settings decide its family, chat template and special tokens from them, and
    `apply_chat_settings` puts those on the tokenizer, the one place that changes it."""
    tokenizer, facts = load_tokenizer(model_args, training_args)
    settings = resolve_run_settings(data_args, model_args, training_args, speed_args, env, facts)
    apply_chat_settings(tokenizer, settings)
    return settings, tokenizer


def load_tokenizer(model_args, training_args):
    """The model's tokenizer as it ships, and what the run's settings need to know of the model (`ModelChatFacts`:
    its vocabulary and own pad token, and its config's model_type)."""
    source = model_args.model_name_or_path
    kwargs = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())
        raise RecipeError(f"model_name_or_path: cannot load the tokenizer of {source}: {reason}") from None
    return tokenizer, describe_model(
        tokenizer, _model_config(source, model_args.model_revision, training_args.trust_remote_code), source
    )


def _model_config(source: str, revision: str | None = None, trust_remote_code: bool = False):
    """The model's config facts (model_config.py), or None when it has no readable config (a tokenizer-only
    folder): then its family is told from the vocabulary alone."""
    try:
        return read_model_config(source, revision, trust_remote_code)
    except (OSError, ValueError):  # ModelConfigError is a ValueError; transformers raises either for a bad config
        return None


def _model_type(source: str, revision: str | None = None, trust_remote_code: bool = False) -> str | None:
    config = _model_config(source, revision, trust_remote_code)
    return config.model_type if config is not None else None


def apply_chat_settings(tokenizer, settings) -> None:
    """The chat template and padding token the run settings decided, set on the tokenizer (saved with the model).
    The end-of-turn token goes through `SFTConfig.eos_token` (RunSettings.training_arguments): TRL sets it."""
    if settings.chat_template:
        tokenizer.chat_template = read_template(settings.chat_template)
    if tokenizer.chat_template is None:
        raise RecipeError("the model has no chat template; set model_family or chat_template_path in the recipe")
    if settings.pad_token:
        tokenizer.pad_token = settings.pad_token


def build_trainer(settings, model_args, training_args, train_dataset, eval_dataset, tokenizer):
    """The task's trainer, run as `settings` (a `RunSettings`) says, exactly as `train` builds it."""
    if settings.attn_implementation == "varlen":
        register_varlen_attention()
    # Tool calls and schemas in the form every runtime renders alike (run settings row `tool_calls`).
    train_dataset = train_dataset.map(canonical_row, desc="Canonical tool calls")
    if eval_dataset is not None:
        eval_dataset = eval_dataset.map(canonical_row, desc="Canonical tool calls")
    return trainer_class(settings.task)(
        model=model_args.model_name_or_path,
        args=settings.training_arguments(training_args),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=experts_aware(get_quantization_config(model_args)),  # MoE experts in 4-bit too
        run_settings=settings,
    )


if __name__ == "__main__":
    sys.exit(main())
