"""The memory planner: its predictions against measured GPU peaks, its refusals and fixes, every shipped family, and
its meta-device activation probe against the same measurement on a real model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

GIB = 2**30
LORA = dict(r=16, target_modules=("q_proj", "v_proj"), dropout=0.05)


def _cli(*args: str, module: str = "secml_recipes.train.plan") -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )


def _plan(capsys, *args: str) -> subprocess.CompletedProcess:
    """`secml plan ARGS`, in this process (the model facts it builds are cached across tests)."""
    from secml_recipes.train.plan.__main__ import main

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main(list(args))
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def _benchmark_peak_tokens(batch: int, steps: int = 25) -> int:
    """Tokens of the largest micro-batch plain TRL computed in bench/train_throughput.py (padded to the longest row
    of each batch of its synthetic length mix, batches in order), over the steps bench/gpu_suite.py runs."""
    from train_throughput import SHAPES, synthetic_rows

    vocab = SHAPES["llama-8b"][1]["vocab_size"]
    lengths = [len(r["input_ids"]) for r in synthetic_rows(batch * (steps + 2), vocab, seed=0, scale=1.0)]
    return max(batch * max(lengths[i * batch : (i + 1) * batch]) for i in range(steps))


# Peaks measured with plain TRL 1.16 (bench/train_throughput.py --variants trl, torch.cuda.max_memory_allocated) on
# an H100/H200, random weights of the real configs, gradient checkpointing on every layer, fused AdamW.
MEASURED = [
    ("meta-llama/Llama-3.1-8B-Instruct", "lora", 4, 19.1),
    ("meta-llama/Llama-3.1-8B-Instruct", "full", 2, 60.0),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "lora", 4, 92.5),
]


@pytest.mark.parametrize(
    "model,mode,batch,measured_gib", MEASURED, ids=["llama8b-lora", "llama8b-full", "mixtral-lora"]
)
def test_planner_predicts_measured_peaks_within_15_percent(model, mode, batch, measured_gib):
    from secml_recipes.train.plan import RecipeModel, plan
    from secml_recipes.train.plan.memory import Device, Training
    from secml_recipes.train.plan.model import LoraShape

    lora = LoraShape(**LORA) if mode == "lora" else None
    training = Training(
        trainable=mode,
        quantization=None,
        optimizer="adamw_torch_fused",
        micro_batch_tokens=_benchmark_peak_tokens(batch),
        checkpointing="all",
    )
    predicted = plan("bench", RecipeModel(model, "bfloat16", lora), training, Device("single", 1, None))
    gib = predicted.breakdown.peak / GIB
    print(
        f"{model} {mode}: predicted {gib:.2f} GiB, measured {measured_gib} GiB "
        f"({(gib - measured_gib) / measured_gib:+.1%})"
    )
    assert abs(gib - measured_gib) <= 0.15 * measured_gib


def test_planner_refuses_generalist_on_ddp_80gb_and_names_the_fixes(capsys):
    proc = _plan(
        capsys, "recipes/full/generalist.yaml", "--config", "accelerate_configs/multi_gpu.yaml", "--gpu-memory", "80"
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "DOES NOT FIT" in proc.stdout
    refusal = proc.stderr[proc.stderr.index("recipes/full/generalist.yaml: does not fit") :].splitlines()
    fixes = [line.strip() for line in refusal[1:] if line.strip()]
    assert any(f.startswith("--config_file accelerate_configs/fsdp.yaml") for f in fixes), fixes
    assert any(f.startswith("--load_in_4bit true") and "one GPU" in f for f in fixes), fixes


def test_mixtral_qlora_fits_one_80gb_gpu_with_experts_in_4bit(capsys):
    proc = _plan(
        capsys,
        "recipes/full/generalist.yaml",
        "--config",
        "accelerate_configs/single_gpu.yaml",
        "--gpu-memory",
        "80",
        "--load_in_4bit",
        "true",
    )
    assert proc.returncode == 0, proc.stderr
    assert "| weights | 24." in proc.stdout and "| device | 80.00 | fits |" in proc.stdout


def test_sft_refuses_a_launch_that_cannot_fit_before_loading_anything():
    # Mixtral-8x7B's name only: nothing is downloaded (HF_HUB_OFFLINE), the planner reads the shipped config.json.
    proc = _cli(
        "recipes/full/generalist.yaml",
        "--use_cpu",
        "true",
        "--bf16",
        "false",
        "--memory_limit_gib",
        "80",
        module="secml_recipes.train.sft",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "does not fit" in proc.stderr and "--load_in_4bit true" in proc.stderr
    assert "Traceback" not in proc.stderr and "Loading weights" not in proc.stderr


def test_launch_picks_a_config_that_fits(capsys):
    one_gpu = _plan(capsys, "recipes/full/generalist.yaml", "--launch", "--gpus", "1", "--gpu-memory", "80")
    assert one_gpu.returncode == 0, one_gpu.stderr
    assert "--config_file accelerate_configs/single_gpu.yaml" in one_gpu.stdout
    assert one_gpu.stdout.strip().endswith("recipes/full/generalist.yaml --load_in_4bit true")
    eight = _plan(capsys, "recipes/full/generalist.yaml", "--launch", "--gpus", "8", "--gpu-memory", "80")
    assert "--config_file accelerate_configs/fsdp.yaml --num_processes 8" in eight.stdout, eight.stderr
    tpu = _plan(capsys, "recipes/full/generalist.yaml", "--launch", "--tpu", "v5p-8")
    assert "--config_file accelerate_configs/tpu_fsdp.yaml" in tpu.stdout, tpu.stderr


def test_tpu_slices_shard_with_spmd_and_refusals_name_a_larger_slice(capsys):
    small = _plan(
        capsys, "recipes/full/generalist.yaml", "--config", "accelerate_configs/tpu_fsdp.yaml", "--tpu", "v5e-8"
    )
    assert small.returncode == 2 and "XLA SPMD FSDPv2" in small.stdout
    assert "--tpu v" in small.stderr and "Traceback" not in small.stderr
    replicated = _plan(
        capsys, "recipes/full/specialist.yaml", "--config", "accelerate_configs/tpu.yaml", "--tpu", "v4-8"
    )
    assert replicated.returncode == 2 and "tpu_fsdp.yaml" in replicated.stderr


@pytest.mark.parametrize(
    "model",
    [
        "meta-llama/Llama-3.1-8B-Instruct",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-30B-A3B",
        "google/gemma-3-12b-it",
        "google/gemma-3-1b-it",
    ],
)
def test_every_shipped_family_is_planned_from_its_config(model):
    from secml_recipes.train.plan import RecipeModel, plan
    from secml_recipes.train.plan.memory import Device, Training
    from secml_recipes.train.plan.model import LoraShape, model_facts

    facts = model_facts(model, "bfloat16", LoraShape(**LORA))
    assert facts.n_layers == len(facts.layer_bytes_per_token) and min(facts.layer_bytes_per_token) > 0
    assert (facts.expert_params > 0) == ("Mixtral" in model or "A3B" in model)
    text_lora = sum(16 * (facts.hidden + out) for out in _qv_out_features(model)) * facts.n_layers  # r x (in + out)
    if "gemma-3-12b" in model:  # multimodal: PEFT also finds q_proj/v_proj in the vision tower
        assert facts.lora_params > text_lora
    else:
        assert facts.lora_params == text_lora
    recipe_model = RecipeModel(model, "bfloat16", LoraShape(**LORA))
    sharded = plan(
        "x", recipe_model, Training("lora", None, "adamw_torch_fused", 8192, "all"), Device("fsdp2", 8, 80)
    ).breakdown
    assert facts.total_params * 2 / 8 < sharded.weights < facts.total_params * 2.01 / 8 and sharded.fits
    qlora = plan(
        "x", recipe_model, Training("lora", "nf4", "adamw_torch_fused", 8192, "all"), Device("single", 1, 80)
    ).breakdown
    assert facts.total_params * 0.5 < qlora.weights < facts.total_params * 2


def _qv_out_features(model: str) -> list[int]:
    from secml_recipes.train.plan.model import load_model_config

    text = load_model_config(model).get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return [text.num_attention_heads * head_dim, text.num_key_value_heads * head_dim]


def test_meta_probe_equals_the_measurement_on_a_real_model(tiny_models):
    """The planner's activation bytes (meta device, fused-kernel attention) are what `checkpointed_layers: auto`
    measures on real tensors with SDPA's fused CPU kernel."""
    import torch
    from transformers import AutoModelForCausalLM

    from secml_recipes.train.plan.activations import measure_saved_bytes_per_token
    from secml_recipes.train.plan.model import PROBE_TOKENS, model_facts

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32, attn_implementation="sdpa")
    real = measure_saved_bytes_per_token(model.get_decoder(), PROBE_TOKENS, model.config.vocab_size)
    planned = model_facts(str(tiny_models["llama"]), "float32").layer_bytes_per_token
    assert planned == pytest.approx(real, rel=0.02)
