"""Supervised fine-tuning of the specialist and the generalist from one recipe.

Usage:
    accelerate launch --config_file accelerate_configs/<cfg>.yaml -m secml_recipes.sft recipes/<recipe>.yaml [--key value ...]
    python -m secml_recipes.sft recipes/<recipe>.yaml [--key value ...]

The recipe's `task` picks the trainer; everything else (model, LoRA, data, SFTConfig) is in the YAML.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from .plan import PlanError, check_launch
from .recipe import RecipeError, build_recipe, resolve_recipe
from .sharding import launch_settings, save_final_model

logger = logging.getLogger("secml_recipes.sft")


def _hub_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACE_TOKEN")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m secml_recipes.sft RECIPE.yaml [--key value ...]", file=sys.stderr)
        return 2
    recipe_path, overrides = argv[0], argv[1:]
    try:
        resolved = launch_settings(resolve_recipe(recipe_path, overrides))
        data_args, model_args, training_args, speed_args = build_recipe(resolved, recipe_path)
        # --- memory plan: refuse a launch that cannot fit before any weight is downloaded or loaded ----------
        check_launch(recipe_path, model_args, training_args, speed_args)
    except (RecipeError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return train(data_args, model_args, training_args, speed_args, resolved, recipe_path)


def train(data_args, model_args, training_args, speed_args, resolved: dict, recipe_path: str) -> int:
    # --- imports that cost seconds come after the recipe is known to be valid ---------------------
    import transformers
    from transformers.trainer_utils import get_last_checkpoint
    from .data.corpus import CorpusError, load_split_dataset
    from .plotting import write_loss_plot

    # --- seed and logging ------------------------------------------------------------------------
    transformers.set_seed(training_args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    if training_args.push_to_hub:
        token = _hub_token()
        if not token:
            print("error: push_to_hub is set but neither HF_TOKEN nor HUGGINGFACE_TOKEN is in the environment",
                  file=sys.stderr)
            return 2
        # Through the environment only: training_args.bin pickles the whole TrainingArguments, hub_token included.
        os.environ["HF_TOKEN"] = token

    # --- resume detection ------------------------------------------------------------------------
    output_dir = Path(training_args.output_dir)
    last_checkpoint = None
    if output_dir.is_dir() and training_args.resume_from_checkpoint is None:
        last_checkpoint = get_last_checkpoint(str(output_dir))
        if last_checkpoint:
            logger.info("resuming from %s (found in output_dir)", last_checkpoint)

    # --- data ------------------------------------------------------------------------------------
    rejects_dir = data_args.rejects_dir or str(output_dir / "rejects")
    try:
        train_dataset = load_split_dataset(data_args.dataset_path, data_args.task, data_args.train_split,
                                           rejects_dir, data_args.max_train_samples)
        eval_dataset = None
        if data_args.eval_split and training_args.eval_strategy != "no":
            eval_dataset = load_split_dataset(data_args.dataset_path, data_args.task, data_args.eval_split,
                                              rejects_dir, data_args.max_eval_samples)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(train_dataset) == 0:
        print(f"error: {data_args.dataset_path}: no valid {data_args.task}/{data_args.train_split} rows", file=sys.stderr)
        return 2

    # --- tokenizer and chat template -------------------------------------------------------------
    try:
        tokenizer = load_tokenizer(model_args, training_args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # --- model and trainer -----------------------------------------------------------------------
    n_rows = len(train_dataset)
    trainer = build_trainer(data_args, model_args, training_args, train_dataset, eval_dataset, tokenizer, speed_args)
    kept = len(trainer.train_dataset)
    if kept < n_rows:
        logger.warning("%d of %d training rows were fully truncated by max_length=%s and carry no trained token; "
                       "raise max_length or lower the corpus' --max-prompt-chars", n_rows - kept, n_rows,
                       training_args.max_length)

    # --- train -----------------------------------------------------------------------------------
    resume = training_args.resume_from_checkpoint or last_checkpoint
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    # --- save ------------------------------------------------------------------------------------
    save_final_model(trainer, str(output_dir))  # full safetensors (or the adapter) whatever the sharding
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(output_dir))
        (output_dir / "secml_recipe.json").write_text(json.dumps(
            {"recipe": str(recipe_path), "resolved": resolved, "train_rows": n_rows, "trained_rows": kept},
            indent=2, default=str))
        history = trainer.state.log_history
        (output_dir / "loss_history.json").write_text(json.dumps(history, indent=2))
        if data_args.loss_plot:
            write_loss_plot(history, output_dir / "loss.png", title=f"{data_args.task}: {model_args.model_name_or_path}")
        trainer.create_model_card(model_name=output_dir.name, tags=list(type(trainer)._tag_names))

    # --- evaluate and push -----------------------------------------------------------------------
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if training_args.push_to_hub:
        trainer.push_to_hub(tags=list(type(trainer)._tag_names))
    if trainer.accelerator.is_main_process:
        files = sorted(p.name for p in output_dir.iterdir() if p.is_file())
        print(f"[secml sft] saved {data_args.task} model to {output_dir}: {', '.join(files)}")
    return 0


def load_tokenizer(model_args, training_args):
    """The model's tokenizer, carrying the recipe's chat template when it names one (saved with the model)."""
    from transformers import AutoTokenizer

    from .templates import read_template

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                              trust_remote_code=training_args.trust_remote_code)
    if training_args.chat_template_path:
        tokenizer.chat_template = read_template(training_args.chat_template_path)
        training_args.chat_template_path = None  # applied here; TRL must not apply it again
    if tokenizer.chat_template is None:
        raise ValueError(f"{model_args.model_name_or_path} has no chat template; set chat_template_path in the recipe")
    return tokenizer


def build_trainer(data_args, model_args, training_args, train_dataset, eval_dataset, tokenizer, speed_args=None):
    """The task's trainer, built from the recipe's dataclasses exactly as `train` builds it."""
    from trl import get_peft_config, get_quantization_config

    from .quantized_experts import experts_aware

    from .speed import SpeedArguments, resolve_attn_implementation
    from .trainers import GeneralistTrainer, SpecialistTrainer, is_xla_device

    speed_args = speed_args or SpeedArguments()
    attn = resolve_attn_implementation(model_args.attn_implementation, training_args.padding_free, is_xla_device())
    if attn != model_args.attn_implementation:
        logger.info("attn_implementation %s -> %s", model_args.attn_implementation, attn)
    model_init_kwargs = {"revision": model_args.model_revision, "dtype": model_args.dtype,
                         "attn_implementation": attn,
                         "trust_remote_code": training_args.trust_remote_code}
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs
    if data_args.task == "specialist":
        training_args.completion_only_loss = True
        trainer_cls = SpecialistTrainer
    else:
        training_args.assistant_only_loss = True
        trainer_cls = GeneralistTrainer
    return trainer_cls(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=experts_aware(get_quantization_config(model_args)),  # MoE experts in 4-bit too
        bucket_lengths=data_args.xla_bucket_lengths,
        bucket_count=data_args.xla_bucket_count,
        speed=speed_args,
    )


if __name__ == "__main__":
    sys.exit(main())
