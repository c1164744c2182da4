"""Sharded launches of the shipped accelerate configs, two CPU processes (gloo), against one process: FSDP2
(`fsdp.yaml`: the specialist's full fine-tune and the generalist's LoRA) and DeepSpeed ZeRO-3 (`deepspeed_zero3.yaml`).
The same losses, a final model that `from_pretrained` loads and equals the one-process model, FSDP checkpoints that
stay sharded and resume (8-bit AdamW state included). accelerate runs FSDP and DeepSpeed on accelerators only; the
test entry point `tests/cpu_sharded_launch.py` lifts those gates (its docstring says which) and runs
`secml_recipes.train.sft`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers import ROOT

STEPS = [
    "--max_steps",
    "4",
    "--num_train_epochs",
    "1",
    "--save_steps",
    "2",
    "--save_total_limit",
    "5",
    "--logging_steps",
    "1",
    "--max_train_samples",
    "16",
    "--lr_scheduler_type",
    "constant",
    "--gradient_accumulation_steps",
    "1",
    "--train_sampling_strategy",
    "sequential",
    "--shuffle_dataset",
    "false",
]


def _sft(
    recipe: str, model, corpus, out, processes: int, *extra: str, port: int = 29541, config: str = "fsdp.yaml"
) -> list[float]:
    args = [
        f"recipes/tiny/{recipe}.yaml",
        "--model_name_or_path",
        str(model),
        "--dataset_path",
        str(corpus),
        "--output_dir",
        str(out),
        *STEPS,
        *extra,
    ]
    if processes == 1:
        cmd = [sys.executable, "-m", "secml_recipes.train.sft", *args, "--per_device_train_batch_size", "2"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            f"accelerate_configs/{config}",
            "--num_processes",
            str(processes),
            "--mixed_precision",
            "no",
            "--main_process_port",
            str(port),
            "tests/cpu_sharded_launch.py",
            *args,
            "--per_device_train_batch_size",
            "1",
        ]
        if config.startswith("deepspeed"):
            cmd.extend(["--use_cpu", "false"])  # `cpu` turns DeepSpeed off in accelerate; its CPU accelerator runs
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    history = json.loads((out / "loss_history.json").read_text())
    return [h["loss"] for h in history if "loss" in h]


def _close(a: dict, b: dict, atol: float):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=atol, msg=name)


@pytest.fixture(scope="module")
def one_process(tiny_models, small_corpus, tmp_path_factory):
    """(losses, output folder) of the specialist trained by one process: what the sharded launches must equal."""
    out = tmp_path_factory.mktemp("one") / "out"
    return _sft("specialist", tiny_models["llama"], small_corpus, out, 1), out


@pytest.mark.slow
@pytest.mark.parametrize("config", ["fsdp.yaml", "deepspeed_zero3.yaml"])
def test_sharded_full_finetune_saves_whole_model_equal_to_one_process(
    tiny_models, small_corpus, tmp_path, one_process, config
):
    from transformers import AutoModelForCausalLM

    one, one_dir = one_process
    two = _sft(
        "specialist",
        tiny_models["llama"],
        small_corpus,
        tmp_path / "sharded",
        2,
        config=config,
        port=29544 if config.startswith("deepspeed") else 29541,
    )
    assert len(one) == len(two) == 4
    assert two == pytest.approx(one, rel=1e-4)
    saved = tmp_path / "sharded" / "model.safetensors"
    assert saved.is_file() and (tmp_path / "sharded" / "config.json").is_file()
    AutoModelForCausalLM.from_pretrained(tmp_path / "sharded")
    _close(load_file(one_dir / "model.safetensors"), load_file(saved), atol=2e-4)


@pytest.mark.slow
def test_fsdp2_resumes_from_sharded_checkpoint_with_8bit_adamw_state(tiny_models, small_corpus, tmp_path):
    optim = ["--optim", "adamw_torch_8bit"]  # the specialist recipe's optimizer: its state must survive a resume
    run = _sft("specialist", tiny_models["llama"], small_corpus, tmp_path / "fsdp", 2, *optim)
    # Checkpoints stay sharded: one DCP shard per rank for the model and the optimizer, no gathered weights.
    checkpoint = tmp_path / "fsdp" / "checkpoint-2"
    assert sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").glob("*.distcp")) == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    assert list((checkpoint / "optimizer_0").glob("*.distcp")) and not (checkpoint / "model.safetensors").exists()
    # Resumed from step 2 (its history comes with the checkpoint), steps 3 and 4 and the final weights are those of
    # the run that never stopped.
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(checkpoint, resumed_dir / "checkpoint-2")
    resumed = _sft("specialist", tiny_models["llama"], small_corpus, resumed_dir, 2, *optim, port=29542)
    assert len(resumed) == 4 and resumed[2:] == pytest.approx(run[2:], rel=1e-5)
    _close(load_file(tmp_path / "fsdp" / "model.safetensors"), load_file(resumed_dir / "model.safetensors"), atol=1e-6)


@pytest.mark.slow
def test_fsdp2_lora_generalist_saves_adapter_equal_to_one_process(tiny_models, small_corpus, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # Compared on what data parallelism keeps equal: the cross-entropy (the router's load-balancing loss is
    # computed over each rank's tokens, as with DDP), without LoRA dropout (each rank draws its own masks), and
    # with SGD, whose update follows the gradient (Adam turns reduction-order noise in near-zero gradients into
    # whole steps).
    no_aux = ["--router_aux_loss_coef", "0", "--lora_dropout", "0", "--optim", "sgd"]
    one = _sft("generalist", tiny_models["mixtral"], small_corpus, tmp_path / "one", 1, *no_aux)
    two = _sft("generalist", tiny_models["mixtral"], small_corpus, tmp_path / "fsdp", 2, *no_aux, port=29543)
    assert two == pytest.approx(one, rel=1e-4)
    adapter = tmp_path / "fsdp" / "adapter_model.safetensors"
    assert adapter.is_file() and not (tmp_path / "fsdp" / "model.safetensors").exists()
    one_adapter, two_adapter = load_file(tmp_path / "one" / "adapter_model.safetensors"), load_file(adapter)
    assert one_adapter.keys() == two_adapter.keys()
    for name in one_adapter:
        torch.testing.assert_close(two_adapter[name], one_adapter[name], rtol=1e-3, atol=1e-8, msg=name)
    base = AutoModelForCausalLM.from_pretrained(tiny_models["mixtral"])
    PeftModel.from_pretrained(base, tmp_path / "fsdp")  # loads onto the base it was trained on
