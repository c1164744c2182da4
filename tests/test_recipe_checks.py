"""Every numeric recipe value is checked before anything loads: one line naming the key and what is valid."""

import pytest

from helpers import ROOT
from secml_recipes.train.sft import main

BAD = [
    (["--learning_rate", "nan"], "'learning_rate' must be a finite number > 0"),
    (["--learning_rate=inf"], "'learning_rate' must be a finite number > 0 (e.g. 2e-5), got inf"),
    (["--learning_rate=-1e-4"], "'learning_rate' must be a finite number > 0 (e.g. 2e-5), got -0.0001"),
    (["--per_device_train_batch_size", "0"], "'per_device_train_batch_size' must be an integer >= 1, got 0"),
    (["--gradient_accumulation_steps", "0"], "'gradient_accumulation_steps' must be an integer >= 1"),
    (["--max_train_samples", "-5"], "'max_train_samples' must be an integer >= 1, or null for every row, got -5"),
    (["--max_eval_samples", "0"], "'max_eval_samples' must be an integer >= 1"),
    (["--max_length", "0"], "'max_length' must be an integer >= 1, or null"),
    (["--max_steps", "0"], "'max_steps' must be an integer >= 1, or -1"),
    (["--max_grad_norm", "nan"], "'max_grad_norm' must be a finite number >= 0"),
    (["--weight_decay", "-0.1"], "'weight_decay' must be a finite number >= 0"),
    (["--xla_bucket_lengths", "[512, 0]"], "'xla_bucket_lengths' must be a non-empty list of integers >= 1"),
    (["--nonfinite_skip_steps", "-1"], "'nonfinite_skip_steps' must be an integer >= 0"),
    (["--loss_explosion_factor", "0.5"], "'loss_explosion_factor' must be a finite number > 1, or 0"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_a_bad_value_is_one_line_before_loading(tmp_path, capsys, override, message):
    recipe = ROOT / "recipes" / "tiny" / "specialist.yaml"
    # The model path does not exist: the check must come before anything reads it.
    assert (
        main(
            [
                str(recipe),
                "--model_name_or_path",
                str(tmp_path / "no-model"),
                "--output_dir",
                str(tmp_path / "o"),
                *override,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_the_shipped_recipes_pass(tmp_path):
    from secml_recipes.train.recipe import load_recipe
    from secml_recipes.train.recipe_checks import check_recipe_values

    for recipe in sorted((ROOT / "recipes").rglob("*.yaml")):
        if recipe.name.startswith("eval-") or recipe.name == "quantize.yaml":
            continue
        data, model, training, _ = load_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])
        check_recipe_values(data, model, training, str(recipe))


def test_every_recipe_is_a_profile_stage_that_loads_and_says_how_to_run_it():
    """recipes/<profile>/<stage>.yaml: each file is a training, evaluation or quantize recipe of one profile, loads
    as one, and opens with a header comment (what it trains, how to launch it, the hardware it was planned for)."""
    from secml_recipes.deploy.quantize import QuantizeArguments
    from secml_recipes.evaluation.evaluate import EvalArguments
    from secml_recipes.train.recipe import load_recipe

    recipes = sorted((ROOT / "recipes").rglob("*.yaml"))
    assert len(recipes) == 19  # full, smoke, tiny: 5 stages each; qwen3, qwen3-tiny: 2
    for recipe in recipes:
        assert len(recipe.relative_to(ROOT / "recipes").parts) == 2, recipe
        assert recipe.read_text().startswith("#"), f"{recipe}: no header comment"
        if recipe.name.startswith("eval-"):
            (ev,) = load_recipe(recipe, [], classes=(EvalArguments,))
            assert recipe.name == f"eval-{ev.task}.yaml"
        elif recipe.name == "quantize.yaml":
            load_recipe(recipe, [], classes=(QuantizeArguments,))
        else:
            data, *_ = load_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])
            assert recipe.name == f"{data.task}.yaml"


def test_unsorted_xla_bucket_lengths_are_sorted_for_bucketing():
    from secml_recipes.train.recipe import load_recipe
    from secml_recipes.train.run_settings import Environment, resolve_run_settings

    args = load_recipe(
        ROOT / "recipes/tiny/specialist.yaml", ["--use_cpu", "false", "--xla_bucket_lengths", "[2048, 512, 1024]"]
    )
    settings = resolve_run_settings(*args, Environment(accelerator="xla"))
    assert settings.bucket_lengths == (512, 1024, 2048)
