"""What a run will do, read from one table: the production recipes on a CPU, a GPU-like and an XLA machine."""

import copy
import json

import pytest

from helpers import ROOT
from secml_recipes.recipe import load_recipe
from secml_recipes.run_settings import Environment, RunSettingsError, resolve_run_settings

CPU = Environment("cpu", packages=frozenset({"torchao"}))
GPU = Environment(
    "cuda", cuda_capability=(9, 0), packages=frozenset({"flash_attn", "liger_kernel", "torchao"}), num_processes=8
)
XLA = Environment("xla", num_processes=8)
# Production recipes train in bf16, which this CPU-only machine refuses to even configure: the tables are read with
# bf16 off, everything else as the recipe says.
HERE = ["--use_cpu", "false", "--bf16", "false"]


def settings(env, recipe="specialist", *overrides):
    return resolve_run_settings(*load_recipe(ROOT / "recipes" / f"{recipe}.yaml", [*HERE, *overrides]), env)


def table(env, recipe="specialist", *overrides) -> dict[str, str]:
    return {name: value for name, value, _ in settings(env, recipe, *overrides).rows()}


def test_the_specialist_table_on_cpu_gpu_and_xla():
    cpu, gpu, xla = table(CPU), table(GPU), table(XLA)
    assert cpu["backend"] == "cpu, 1 process(es)" and gpu["backend"] == "cuda, 8 process(es)"
    assert xla["backend"] == "xla, 8 process(es)"
    for row in (cpu, gpu, xla):
        assert row["trainer"] == "SpecialistTrainer (completion_only_loss=True)"
        assert row["loss"] == "nll, secml path" and row["precision"] == "bfloat16 weights, no autocast"
    # Attention and batch shape: padding-free rows with a varlen kernel, except on XLA (static shapes).
    assert (cpu["attention"], gpu["attention"], xla["attention"]) == ("varlen", "flash_attention_2", "sdpa")
    assert (cpu["padding_free"], gpu["padding_free"], xla["padding_free"]) == ("on", "on", "off")
    assert cpu["batch"] == "2 rows, one flat row each x 8 accumulation x 1 process(es) = 16 per optimizer step"
    assert xla["batch"] == "2 padded rows x 8 accumulation x 8 process(es) = 128 per optimizer step"
    assert cpu["truncation"].startswith("keep_start at 8192 tokens")
    # Optimizer: torchao's 8-bit AdamW where torchao runs, plain AdamW on XLA. Liger only on the GPU.
    assert (cpu["optimizer"], gpu["optimizer"], xla["optimizer"]) == ("adamw_torch_8bit",) * 2 + ("adamw_torch",)
    assert (cpu["liger_kernels"], gpu["liger_kernels"], xla["liger_kernels"]) == ("off", "on", "off")
    # checkpointed_layers: auto is planned from free memory on the GPU only.
    assert cpu["checkpointing"] == xla["checkpointing"] == "every decoder layer"
    assert gpu["checkpointing"] == "auto: layers planned at train start within free memory"
    assert cpu["xla_buckets"] == gpu["xla_buckets"] == "-"
    assert xla["xla_buckets"] == "4 lengths planned from the data (multiples of 128)"
    assert cpu["evaluation"] == "on"


def test_the_table_says_why_and_is_saved_as_json():
    xla = settings(XLA)
    why = {name: reason for name, _, reason in xla.rows()}
    assert why["padding_free"].startswith("XLA: varying shapes would compile a graph each step")
    assert "no XLA path" in why["optimizer"]
    text = xla.table()
    assert text.splitlines()[0] == "run settings (secml_recipes.run_settings)"
    assert all(name in text for name, _, _ in xla.rows())
    saved = json.loads(json.dumps(xla.to_dict()))
    assert saved["backend"] == "xla" and saved["optim"] == "adamw_torch" and saved["table"][0][0] == "backend"


def test_the_generalist_table():
    gpu = table(GPU, "generalist")
    assert gpu["trainer"] == "GeneralistTrainer (assistant_only_loss=True)"
    cpu = settings(CPU, "generalist")
    assert cpu.optim == "adamw_torch_fused" and cpu.model_init_kwargs["attn_implementation"] == "varlen"


def test_resolving_changes_none_of_its_inputs():
    args = load_recipe(ROOT / "recipes/specialist.yaml", HERE)

    def state():
        return [a.to_dict() if hasattr(a, "to_dict") else copy.deepcopy(vars(a)) for a in args]

    before = state()
    resolved = resolve_run_settings(*args, XLA)
    assert state() == before
    training = resolved.training_arguments(args[2])
    assert training is not args[2] and not training.padding_free and args[2].padding_free


def test_use_cpu_wins_over_a_gpu_but_not_over_xla():
    # accelerate trains on XLA whenever torch_xla is importable, use_cpu or not: the table must say so.
    assert settings(GPU, "specialist", "--use_cpu", "true").backend == "cpu"
    assert settings(XLA, "specialist", "--use_cpu", "true").backend == "xla"


@pytest.mark.parametrize(
    "overrides, env, key",
    [
        (["--optim", "adamw_torch_8bit"], Environment("cuda", (9, 0)), "optim: adamw_torch_8bit needs the torchao"),
        (["--attn_implementation", "flash_attention_2"], CPU, "attn_implementation: flash_attention_2 needs"),
        (["--liger_kernels", "true"], CPU, "liger_kernels: true needs the liger-kernel"),
        (["--optim", "adamw_bnb_8bit"], XLA, "optim: adamw_bnb_8bit needs bitsandbytes"),
        (["--completion_only_loss", "false"], CPU, "completion_only_loss: the specialist trainer always trains"),
        (["--xla_bucket_count", "0"], XLA, "xla_bucket_count: must be at least 1"),
    ],
)
def test_what_cannot_run_fails_before_loading_with_one_line_naming_the_key(overrides, env, key):
    with pytest.raises(RunSettingsError) as err:
        settings(env, "specialist", *overrides)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_bf16_needs_an_ampere_gpu():
    data, model, training, speed = load_recipe(ROOT / "recipes/specialist.yaml", HERE)
    training.bf16 = True  # what the recipe says on a real GPU machine
    with pytest.raises(RunSettingsError, match="bf16: needs an Ampere"):
        resolve_run_settings(data, model, training, speed, Environment("cuda", (7, 5), frozenset({"torchao"})))


def test_xla_bucket_lengths_are_sorted():
    assert settings(XLA, "specialist", "--xla_bucket_lengths", "[4096, 1024, 2048, 1024]").bucket_lengths == (
        1024,
        2048,
        4096,
    )
