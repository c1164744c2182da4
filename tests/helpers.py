"""Build the real trainers on tiny models for tests, through the same code path as `secml_recipes.sft`."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from secml_recipes.recipe import load_recipe
from secml_recipes.run_settings import Environment, detect_environment, resolve_run_settings
from secml_recipes.sft import build_trainer, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
# Machines the tests describe without having them (the trainer itself still runs on this CPU).
XLA = Environment(accelerator="xla")


def make_trainer(
    task: str, model_path, rows: list[dict], tmp_path, *overrides: str, eval_rows=None, env: Environment | None = None
):
    recipe = ROOT / "recipes" / "smoke" / f"{task}.yaml"
    # The smoke recipes say use_cpu: true, which wins over any accelerator; a described machine needs it off.
    described = ["--use_cpu", "false"] if env is not None and env.accelerator != "cpu" else []
    args = [
        *described,
        "--model_name_or_path",
        str(model_path),
        "--output_dir",
        str(tmp_path / f"out-{task}"),
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--dataloader_num_workers",
        "0",
        *overrides,
    ]
    data_args, model_args, sft_args, speed_args = load_recipe(recipe, args)
    settings = resolve_run_settings(data_args, model_args, sft_args, speed_args, env or detect_environment())
    tokenizer = load_tokenizer(model_args, sft_args)
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
    return build_trainer(settings, model_args, sft_args, Dataset.from_list(rows), eval_ds, tokenizer)


def first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))
