"""secml plan RECIPE.yaml --config accelerate_configs/X.yaml [--gpus N --gpu-memory GiB | --tpu SLICE]
[--launch | --table] [--key value ...]

Prints the per-device memory table of RECIPE under the launch, and exits 2 with the launches that would fit when it
does not. `--launch` prints instead the `accelerate launch` command of the first shipped config that fits (this
machine's GPUs or TPU chips unless --gpus/--gpu-memory or --tpu say otherwise); `make train-*` runs it. `--table`
prints the verdict of every shipped config on common GPUs and TPU slices (docs/scale.md). Other
`--key value` pairs override recipe keys, as on `secml_recipes.train.sft` (e.g. --load_in_4bit true).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.train.plan import GPU_CONFIGS, TPU_CONFIGS, PlanError, plan, refusal, training_from_recipe
from secml_recipes.train.plan.hardware import CONFIG_DIR, device_from_config, local_devices, tpu_slice
from secml_recipes.train.plan.report import table
from secml_recipes.train.recipe import RecipeError, SpeedArguments, resolve_recipe


def recipe_settings(recipe: str, overrides: list[str]):
    """(ModelConfig, an SFTConfig-like view, SpeedArguments) of a recipe, without building SFTConfig: its
    __post_init__ checks this machine (bf16 needs a GPU), and planning is for another machine."""
    # lazy: the torch stack loads only when a model is touched
    from trl import ModelConfig, SFTConfig

    try:
        values = resolve_recipe(recipe, overrides)
    except RecipeError as err:
        raise PlanError(str(err)) from None

    def pick(cls):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        return {k: v for k, v in values.items() if k in names}

    defaults = {f.name: f.default for f in dataclasses.fields(SFTConfig) if f.default is not dataclasses.MISSING}
    training = {**defaults, **pick(SFTConfig)}
    if "activation_checkpointing" not in values:  # the deprecated name, as SFTConfig itself maps it
        training["activation_checkpointing"] = training["gradient_checkpointing"]
    return ModelConfig(**pick(ModelConfig)), SimpleNamespace(**training), SpeedArguments(**pick(SpeedArguments))


def _devices(args) -> tuple[str, int | None, float | None]:
    if args.tpu:
        tpu = tpu_slice(args.tpu)
        return "tpu", tpu.devices, tpu.memory_gib
    if args.gpus or args.gpu_memory:
        return "gpu", args.gpus, args.gpu_memory
    if args.launch:
        kind, count, memory = local_devices()
        if kind == "cpu":
            raise PlanError(
                "--launch: no GPU or TPU on this machine; say which with --gpus N --gpu-memory GiB or "
                "--tpu SLICE (CPU runs use accelerate_configs/cpu.yaml and the recipes in recipes/smoke/ or "
                "recipes/tiny/)"
            )
        return kind, count, memory
    return "gpu", None, None


def launch_command(recipe: str, config: Path, devices: int, overrides: list[str]) -> str:
    venv_accelerate = Path(sys.executable).with_name("accelerate")
    on_path = shutil.which("accelerate")
    accelerate = "accelerate" if on_path or not venv_accelerate.exists() else str(venv_accelerate)
    parts = [
        accelerate,
        "launch",
        "--config_file",
        str(config.relative_to(CONFIG_DIR.parent)) if config.is_relative_to(CONFIG_DIR.parent) else str(config),
    ]
    if config.name not in ("single_gpu.yaml", "tpu_fsdp.yaml"):
        parts += ["--num_processes", str(devices)]
    parts += ["-m", "secml_recipes.sft", recipe, *overrides]  # the stable launch path (sft.py)
    return shlex.join(parts)


def pick_launch(recipe: str, overrides: list[str], kind: str, devices: int, memory: float | None) -> str:
    """The first shipped config (fastest first) under which the recipe fits; else QLoRA on one GPU; else refuse."""
    model_args, training_args, speed_args = recipe_settings(recipe, overrides)
    model, training = training_from_recipe(model_args, training_args, speed_args)
    names = TPU_CONFIGS if kind == "tpu" else GPU_CONFIGS
    first = None
    for name in names:
        if name == "single_gpu.yaml" and devices > 1 and kind == "gpu":
            continue
        device = device_from_config(CONFIG_DIR / name, kind, devices, memory)
        candidate = plan(recipe, model, training, device)
        first = first or candidate
        if candidate.fits:
            return launch_command(recipe, CONFIG_DIR / name, devices, overrides)
    if model.lora and not training.quantization and kind == "gpu":
        qlora = dataclasses.replace(training, quantization="nf4")
        device = device_from_config(CONFIG_DIR / "single_gpu.yaml", kind, 1, memory)
        if plan(recipe, model, qlora, device).fits:
            return launch_command(recipe, CONFIG_DIR / "single_gpu.yaml", 1, [*overrides, "--load_in_4bit", "true"])
    raise PlanError(
        refusal(first, training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps)
    )


def launch_table(recipe: str, overrides: list[str]) -> str:
    """Markdown: for each shipped config and common hardware, the planner's verdict and need per device."""
    model_args, training_args, speed_args = recipe_settings(recipe, overrides)
    model, training = training_from_recipe(model_args, training_args, speed_args)
    qlora = dataclasses.replace(training, quantization="nf4") if model.lora else None
    hardware = [("1x H100 80GB", "gpu", 1, 80.0), ("1x H200 141GB", "gpu", 1, 141.0), ("8x H100 80GB", "gpu", 8, 80.0)]
    hardware += [
        (f"TPU {name}", "tpu", tpu_slice(name).devices, tpu_slice(name).memory_gib)
        for name in ("v5e-8", "v4-8", "v6e-8", "v5p-8")
    ]
    rows = ["| config | hardware | per device (all layers checkpointed) | verdict |", "|---|---|---:|---|"]
    for label, kind, devices, memory in hardware:
        names = TPU_CONFIGS if kind == "tpu" else GPU_CONFIGS
        for name in names:
            if (name == "single_gpu.yaml") != (devices == 1) and kind == "gpu":
                continue
            device = device_from_config(CONFIG_DIR / name, kind, devices, memory)
            qlora_runs = qlora and device.strategy in ("single", "ddp")  # where QLoRA is supported and tested
            variants = [("", training)] + ([(" + --load_in_4bit true", qlora)] if qlora_runs else [])
            for suffix, variant in variants:
                p = plan(recipe, model, variant, device)
                need = p.breakdown.minimum_peak / 2**30
                rows.append(f"| {name}{suffix} | {label} | {need:.1f} GiB | {'fits' if p.fits else 'refused'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml plan",
        description=__doc__,
        formatter_class=CommandHelpFormatter,
    )
    parser.add_argument("recipe")
    parser.add_argument("--config", help="accelerate config file (accelerate_configs/*.yaml)")
    parser.add_argument("--gpus", type=int, help="number of GPUs (default: the config's num_processes)")
    parser.add_argument("--gpu-memory", type=float, help="memory of one GPU in GiB, e.g. 80 (H100) or 141 (H200)")
    parser.add_argument("--tpu", help="TPU slice, e.g. v5e-8, v5p-8, v6e-8")
    parser.add_argument("--tokens", type=int, help="tokens per micro-batch per device (default: batch x max_length)")
    parser.add_argument("--launch", action="store_true", help="print the accelerate launch command that fits")
    parser.add_argument(
        "--table", action="store_true", help="print the verdict for every shipped config on common GPUs and TPU slices"
    )
    args, overrides = parser.parse_known_args(argv)
    try:
        if args.table:
            print(launch_table(args.recipe, overrides))
            return 0
        kind, devices, memory = _devices(args)
        if args.launch:
            print(pick_launch(args.recipe, overrides, kind, devices or 1, memory))
            return 0
        if not args.config:
            raise PlanError("--config accelerate_configs/X.yaml is needed (or --launch to pick one)")
        model_args, training_args, speed_args = recipe_settings(args.recipe, overrides)
        model, training = training_from_recipe(model_args, training_args, speed_args, args.tokens)
        device = device_from_config(args.config, kind, devices, memory)
        p = plan(args.recipe, model, training, device)
        print(table(p))
        if not p.fits:
            print(
                "\n" + refusal(p, training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps),
                file=sys.stderr,
            )
            return 2
        if device.memory_gib is None:
            print("\n(no verdict: pass --gpu-memory GiB or --tpu SLICE)")
        return 0
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
