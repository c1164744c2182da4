"""Memory planner: will this recipe fit this launch, per device, before anything is downloaded or loaded?

    secml plan recipes/full/specialist.yaml --config accelerate_configs/fsdp.yaml --gpus 8 --gpu-memory 80
    secml plan recipes/full/generalist.yaml --config accelerate_configs/tpu_fsdp.yaml --tpu v5p-8
    secml plan recipes/full/generalist.yaml --launch      # the launch that fits this machine

`secml_recipes.train.sft` runs the same check first (`check_launch`). A launch that cannot fit is refused with the
launches that would, one per line: another accelerate config, QLoRA, more devices, a smaller micro-batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from secml_recipes.train.plan.hardware import (
    CONFIG_DIR,
    TPU_SLICES,
    device_from_config,
    device_from_environment,
    tpu_slice,
)
from secml_recipes.train.plan.memory import GIB, STRATEGIES, Breakdown, Device, Training, plan_memory
from secml_recipes.train.plan.model import LoraShape, ModelMemoryFacts, PlanError, model_facts
from secml_recipes.train.plan.report import table
from secml_recipes.train.run_settings import TORCHAO_OPTIMIZERS, effective_max_length

__all__ = ["Plan", "PlanError", "check_launch", "plan", "training_from_recipe", "RecipeModel"]


@dataclass(frozen=True)
class RecipeModel:
    """The model side of a recipe, as the planner needs it."""

    name: str
    dtype: str | None
    lora: LoraShape | None
    revision: str | None = None


@dataclass
class Plan:
    recipe: str
    model: RecipeModel
    training: Training
    device: Device
    facts: ModelMemoryFacts
    breakdown: Breakdown

    @property
    def fits(self) -> bool:
        return self.breakdown.fits


def training_from_recipe(
    model_args, training_args, speed_args=None, tokens: int | None = None
) -> tuple[RecipeModel, Training]:
    """Planner inputs from a recipe's dataclasses (TRL ModelConfig, SFTConfig, SpeedArguments). Without `tokens`, a
    micro-batch is planned at its worst case: per_device_train_batch_size rows of max_length tokens."""
    lora = None
    if model_args.use_peft:
        targets = model_args.lora_target_modules
        lora = LoraShape(
            r=model_args.lora_r,
            target_modules=tuple(targets) if targets else None,
            target_parameters=tuple(model_args.lora_target_parameters or ()) or None,
            dropout=model_args.lora_dropout,
        )
    quantization = None
    if model_args.load_in_4bit:
        quantization = model_args.bnb_4bit_quant_type + ("+nested" if model_args.use_bnb_nested_quant else "")
    elif model_args.load_in_8bit:
        quantization = "int8"
    if tokens is None:
        tokens = training_args.per_device_train_batch_size * (effective_max_length(training_args) or 1024)
    checkpointing = "none"
    enabled = getattr(training_args, "activation_checkpointing", None)
    if enabled if enabled is not None else training_args.gradient_checkpointing:
        checkpointing = getattr(speed_args, "checkpointed_layers", "all") if speed_args is not None else "all"
    training = Training(
        trainable="lora" if lora else "full",
        quantization=quantization,
        optimizer=str(getattr(training_args.optim, "value", training_args.optim)),
        micro_batch_tokens=tokens,
        checkpointing=checkpointing,
        gradient_accumulation=training_args.gradient_accumulation_steps,
        mixed_precision=bool(training_args.bf16 or training_args.fp16),
    )
    model = RecipeModel(model_args.model_name_or_path, model_args.dtype, lora, model_args.model_revision)
    return model, training


def plan(recipe: str, model: RecipeModel, training: Training, device: Device) -> Plan:
    xla = device.strategy.startswith("xla")
    facts = model_facts(model.name, model.dtype, model.lora, model.revision, xla)
    if training.quantization and device.strategy not in ("single", "ddp"):
        raise PlanError(
            f"{recipe}: load_in_4bit/load_in_8bit (QLoRA) run on one GPU or under DDP "
            f"(single_gpu.yaml, multi_gpu.yaml); {STRATEGIES[device.strategy].label} shards the "
            "unquantized base instead"
        )
    if device.kind == "tpu":
        if training.quantization:
            raise PlanError(
                f"{recipe}: load_in_4bit/load_in_8bit need bitsandbytes, which has no TPU backend; "
                "use an FSDP config on the TPU instead"
            )
        if "fused" in training.optimizer or training.optimizer in TORCHAO_OPTIMIZERS:
            # as run_settings decides on XLA: no fused or torchao kernels there, plain AdamW
            training = replace(training, optimizer="adamw_torch")
    return Plan(recipe, model, training, device, facts, plan_memory(facts, training, device))


# --- fixes: launches that would fit, tried in a fixed order -------------------------------------------------------

GPU_CONFIGS = ["single_gpu.yaml", "multi_gpu.yaml", "fsdp.yaml", "deepspeed_zero3.yaml"]
TPU_CONFIGS = ["tpu_fsdp.yaml", "tpu.yaml"]


def _fits(recipe, model, training, device) -> Plan | None:
    try:
        candidate = plan(recipe, model, training, device)
    except PlanError:
        return None
    return candidate if candidate.fits else None


def _per_device(p: Plan) -> str:
    return f"needs {p.breakdown.minimum_peak / GIB:.1f} GiB per device"


def _other_configs(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    """The other shipped accelerate configs, on the same devices."""
    device, lines = p.device, []
    if device.kind == "cpu":
        return lines
    for name in TPU_CONFIGS if device.kind == "tpu" else GPU_CONFIGS:
        path = CONFIG_DIR / name
        if not path.is_file() or str(path) == str(Path(device.config).resolve()):
            continue
        other = device_from_config(path, device.kind, device.devices, device.memory_gib)
        if other.strategy == device.strategy or (other.strategy == "single" and device.devices > 1):
            continue
        found = _fits(p.recipe, p.model, p.training, other)
        if found:
            lines.append(
                f"--config_file accelerate_configs/{name}: {STRATEGIES[other.strategy].label} on "
                f"{other.devices} device(s), {_per_device(found)}"
            )
    return lines


def _qlora(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    """A 4-bit base (experts included) for a LoRA recipe: on one GPU, else under this DDP launch."""
    if not p.model.lora or p.training.quantization or p.device.kind == "tpu":
        return []
    qlora = replace(p.training, quantization="nf4")
    for strategy in dict.fromkeys(("single", p.device.strategy)):
        devices = 1 if strategy == "single" else p.device.devices
        found = _fits(p.recipe, p.model, qlora, replace(p.device, strategy=strategy, devices=devices))
        if found:
            where = "one GPU (accelerate_configs/single_gpu.yaml)" if strategy == "single" else "this launch"
            return [f"--load_in_4bit true: QLoRA (4-bit base, experts included) on {where}, {_per_device(found)}"]
    return []


def _more_devices(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    """The fewest devices a sharded launch needs."""
    if not STRATEGIES[p.device.strategy].shards_state:
        return []
    for count in (c for c in (2, 4, 8, 16, 32, 64) if c > p.device.devices):
        found = _fits(p.recipe, p.model, p.training, replace(p.device, devices=count))
        if found:
            unit = "TPU chips (a larger slice)" if p.device.kind == "tpu" else "GPUs (--num_processes)"
            return [f"{count} {unit} with this config: {_per_device(found)}"]
    return []


def _larger_tpu_slice(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    """The smallest TPU slice with more memory in all that fits under SPMD FSDPv2."""
    if p.device.kind != "tpu":
        return []
    for name in TPU_SLICES:
        tpu = tpu_slice(name)
        if tpu.devices * tpu.memory_gib <= p.device.devices * (p.device.memory_gib or 0):
            continue
        found = _fits(
            p.recipe,
            p.model,
            p.training,
            replace(p.device, strategy="xla_spmd", devices=tpu.devices, memory_gib=tpu.memory_gib),
        )
        if found:
            return [
                f"--tpu {name} ({tpu.devices} devices of {tpu.memory_gib} GiB, "
                f"accelerate_configs/tpu_fsdp.yaml): {_per_device(found)}"
            ]
    return []


def _smaller_micro_batch(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    """The largest smaller per-device batch, with accumulation keeping the batch per update."""
    if not batch or batch < 2:
        return []
    per_row = p.training.micro_batch_tokens // batch
    for smaller in range(batch - 1, 0, -1):
        found = _fits(p.recipe, p.model, replace(p.training, micro_batch_tokens=per_row * smaller), p.device)
        if found:
            steps = (accumulation or 1) * batch // smaller
            return [
                f"--per_device_train_batch_size {smaller} --gradient_accumulation_steps {steps} "
                f"(same batch per update): {_per_device(found)}"
            ]
    return []


def _checkpointing(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    if p.training.checkpointing != "none":
        return []
    found = _fits(p.recipe, p.model, replace(p.training, checkpointing="all"), p.device)
    return [f"--gradient_checkpointing true: {_per_device(found)}"] if found else []


def _eight_bit_adamw(p: Plan, batch: int | None, accumulation: int | None) -> list[str]:
    if p.training.trainable != "full" or p.device.kind == "tpu" or "8bit" in p.training.optimizer:
        return []
    found = _fits(p.recipe, p.model, replace(p.training, optimizer="adamw_torch_8bit"), p.device)
    return [f"--optim adamw_torch_8bit (8-bit AdamW states): {_per_device(found)}"] if found else []


# Tried in this order; each proposes what it checked with the planner itself.
FIXES = (
    _other_configs,
    _qlora,
    _more_devices,
    _larger_tpu_slice,
    _smaller_micro_batch,
    _checkpointing,
    _eight_bit_adamw,
)


def fixes(p: Plan, batch_size: int | None = None, gradient_accumulation: int | None = None) -> list[str]:
    """One line per change that makes `p` fit."""
    return [line for fix in FIXES for line in fix(p, batch_size, gradient_accumulation)]


def refusal(p: Plan, batch_size: int | None = None, gradient_accumulation: int | None = None) -> str:
    b = p.breakdown
    head = (
        f"{p.recipe}: does not fit: {p.model.name} needs {b.minimum_peak / GIB:.1f} GiB per device "
        f"(+{b.reserve / GIB:.1f}"
        f" GiB reserve) under {Path(p.device.config).name if p.device.config else 'this launch'} "
        f"({STRATEGIES[p.device.strategy].label}, {p.device.devices} x {p.device.memory_gib:.0f} GiB)"
    )
    found = fixes(p, batch_size, gradient_accumulation)
    if not found:
        return head + "\n  nothing the planner tried fits; a device with more memory is needed"
    return head + "; any one of these fits:\n" + "\n".join(f"  {line}" for line in found)


def check_launch(recipe_path: str, model_args, training_args, speed_args, device: Device | None = None) -> Plan | None:
    """The check `secml_recipes.train.sft` runs before loading anything: the plan for this process's launch, or a
    PlanError naming the launches that would fit. Raises only PlanError."""
    device = device or device_from_environment(getattr(speed_args, "memory_limit_gib", None))
    model, training = training_from_recipe(model_args, training_args, speed_args)
    try:
        p = plan(recipe_path, model, training, device)
    except PlanError:
        raise
    except Exception as err:  # a family the meta-device probe cannot run: train without the check, say so
        logging.getLogger(__name__).warning(
            "memory planner could not plan %s (%s: %s); no memory check", model.name, type(err).__name__, err
        )
        return None
    if not p.fits:
        raise PlanError(
            refusal(p, training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps)
        )
    if os.environ.get("RANK", "0") == "0":
        print(table(p), flush=True)
    return p
