"""One answer per question about a run: the machine is probed once (machine.py), a model's config is read once
(model_config.py), and max_length is decided once (the run settings' truncation row) and is what the trainer uses."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from datasets import Dataset

from helpers import ROOT
from secml_recipes.model_config import ModelConfigError, ModelConfigFacts, read_model_config
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.train import machine
from secml_recipes.train.machine import Machine, detect_machine
from secml_recipes.train.plan.hardware import device_from_environment, local_devices
from secml_recipes.train.plan.model import PlanError, load_model_config
from secml_recipes.train.recipe import load_recipe
from secml_recipes.train.run_settings import Environment, detect_environment, resolve_run_settings
from secml_recipes.train.sft import build_trainer, resolve_run
from secml_recipes.train.trainers import max_length_hidden_from_trl

H100S = Machine("cuda", 2, ("NVIDIA H100",) * 2, (79.6, 79.6), (9, 0))


@pytest.fixture
def described_machine(monkeypatch):
    """This process sees the machine the test describes; the probes are counted, the cache is cleared around."""
    probes = []

    def probe_cuda():
        probes.append("cuda")
        return H100S

    monkeypatch.setattr(machine, "_probe_xla", lambda: None)
    monkeypatch.setattr(machine, "_probe_cuda", probe_cuda)
    detect_machine.cache_clear()
    yield probes
    detect_machine.cache_clear()


def test_the_machine_is_probed_once_and_every_reader_sees_the_same_one(described_machine, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = detect_environment()
    assert (env.accelerator, env.cuda_capability, env.num_processes) == ("cuda", (9, 0), 2)
    assert local_devices() == ("gpu", 2, 79.6)
    device = device_from_environment()
    assert (device.kind, device.strategy, device.devices, device.memory_gib) == ("gpu", "ddp", 2, 79.6)
    assert detect_machine() is detect_machine()
    assert described_machine == ["cuda"]  # three readers, one probe


def test_a_cpu_machine_reads_as_cpu_everywhere(monkeypatch):
    monkeypatch.setattr(machine, "_probe_xla", lambda: None)
    monkeypatch.setattr(machine, "_probe_cuda", lambda: None)
    monkeypatch.setattr(machine, "_probe_mps", lambda: Machine("mps", device_names=("mps",)))
    detect_machine.cache_clear()
    try:
        assert detect_machine().backend == "mps"
        assert detect_environment().accelerator == "cpu"  # the run settings have no MPS rows
        assert local_devices() == ("cpu", 1, None)
    finally:
        detect_machine.cache_clear()


def test_a_models_config_is_read_once_and_answers_every_caller(tiny_models):
    mixtral = read_model_config("mistralai/Mixtral-8x7B-Instruct-v0.1")  # shipped with the package
    assert isinstance(mixtral, ModelConfigFacts) and mixtral.is_moe
    assert (mixtral.model_type, mixtral.num_experts, mixtral.n_layers, mixtral.hidden) == ("mixtral", 8, 32, 4096)
    assert read_model_config("mistralai/Mixtral-8x7B-Instruct-v0.1") is mixtral  # cached
    assert load_model_config("mistralai/Mixtral-8x7B-Instruct-v0.1") is mixtral.config  # the planner's, same read
    local = read_model_config(str(tiny_models["llama"]))
    assert local.model_type == "llama" and not local.is_moe and local.vocab == local.config.vocab_size


def test_a_model_without_a_config_says_where_it_looked(tmp_path):
    with pytest.raises(ModelConfigError, match="no local config.json, not a shipped config"):
        read_model_config(str(tmp_path / "nowhere"))
    with pytest.raises(PlanError):  # the planner's refusal, one line
        load_model_config(str(tmp_path / "nowhere"))


def _settings(*overrides):
    recipe = load_recipe(ROOT / "recipes" / "smoke" / "specialist.yaml", list(overrides))
    return resolve_run_settings(*recipe, Environment("cpu"))


@pytest.mark.parametrize(
    "overrides, applies",
    [
        (["--max_length", "512"], "after_preparation"),
        (["--max_length", "512", "--padding_free", "true"], "after_preparation"),
        (["--max_length", "512", "--packing", "true"], "packing"),
        (["--max_length", "null"], "nowhere"),
    ],
)
def test_max_length_is_one_row_of_the_run_settings(overrides, applies):
    settings = _settings(*overrides)
    assert settings.max_length_applies == applies
    assert settings.max_length == (None if applies == "nowhere" else 512)
    assert settings.drops_cut_rows == (applies == "after_preparation")
    assert ("truncation" in settings.why) == (applies != "nowhere")


def test_max_length_is_hidden_from_trl_only_while_it_builds_and_always_restored():
    args = SimpleNamespace(max_length=512)
    after_preparation = SimpleNamespace(max_length_applies="after_preparation")
    with pytest.raises(RuntimeError), max_length_hidden_from_trl(args, after_preparation):
        assert args.max_length is None
        raise RuntimeError("TRL failed")
    assert args.max_length == 512
    with max_length_hidden_from_trl(args, SimpleNamespace(max_length_applies="packing")):
        assert args.max_length == 512  # packing: TRL needs it to chunk rows


def test_the_trainer_cuts_rows_at_the_run_settings_max_length(tiny_models, tmp_path):
    rows = [
        {k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "fx", 2500)[:4]
    ]
    recipe = ROOT / "recipes" / "smoke" / "specialist.yaml"
    overrides = ["--model_name_or_path", str(tiny_models["llama"]), "--output_dir", str(tmp_path / "out")]
    data_args, model_args, sft_args, speed_args = load_recipe(recipe, [*overrides, "--max_length", "100000"])
    settings, tokenizer = resolve_run(data_args, model_args, sft_args, speed_args, detect_environment())
    limit = 64  # the settings' value, not the recipe's 100000: the trainer reads the decided one
    settings = dataclasses.replace(settings, max_length=limit, truncation_mode="keep_end", keep_truncated_rows=True)
    trainer = build_trainer(settings, model_args, sft_args, Dataset.from_list(rows), None, tokenizer)
    assert trainer.args.max_length == limit and sft_args.max_length == 100000
    assert trainer.planned["truncation"]["train"]["rows"] == len(rows)
    assert all(len(ids) <= limit for ids in trainer.train_dataset["input_ids"])
