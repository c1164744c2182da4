"""Where a run trains: an accelerate config file (or the environment `accelerate launch` sets) plus the devices.

accelerate's `distributed_type` says how the model is placed; the devices come from the command line
(`--gpus N --gpu-memory GiB`, `--tpu v5p-8`), from the machine itself inside `secml_recipes.train.sft`, or from
`memory_limit_gib`. On TPU, `distributed_type: FSDP` is run as XLA SPMD FSDPv2 (`secml_recipes.train.sharding`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from secml_recipes.train.plan.memory import Device
from secml_recipes.train.plan.model import PlanError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "accelerate_configs"

# TPU generations: HBM per device (GiB), how slice names count (chips, or TensorCores with two per chip), and
# devices per host. A v4/v5p chip is one device (megacore); v5e/v6e slices are named by chips.
TPU_GENERATIONS: dict[str, dict] = {
    "v4": {"memory_gib": 32, "cores_per_device": 2, "devices_per_host": 4},
    "v5p": {"memory_gib": 95, "cores_per_device": 2, "devices_per_host": 4},
    "v5e": {"memory_gib": 16, "cores_per_device": 1, "devices_per_host": 8},
    "v6e": {"memory_gib": 32, "cores_per_device": 1, "devices_per_host": 8},
}
# Slices worth proposing, smallest first (single host first: the shipped TPU configs are single-host).
TPU_SLICES = ["v5e-8", "v4-8", "v6e-8", "v5p-8", "v5e-16", "v6e-16", "v5p-16", "v5e-32", "v5p-32", "v5p-64"]


@dataclass(frozen=True)
class TpuSlice:
    name: str
    devices: int
    memory_gib: float
    hosts: int


def tpu_slice(name: str) -> TpuSlice:
    match = re.fullmatch(r"(v\d[a-z]?)-(\d+)", name.strip().lower().replace("litepod", "e"))
    if not match or match.group(1) not in TPU_GENERATIONS:
        raise PlanError(
            f"--tpu {name}: expected a slice like v5e-8, v5p-8, v4-8 or v6e-16 "
            f"(generations: {', '.join(TPU_GENERATIONS)})"
        )
    gen = TPU_GENERATIONS[match.group(1)]
    devices = max(1, int(match.group(2)) // gen["cores_per_device"])
    return TpuSlice(name, devices, gen["memory_gib"], max(1, devices // gen["devices_per_host"]))


def read_accelerate_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        candidates = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
        raise PlanError(f"accelerate config not found: {path} (shipped: {candidates})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PlanError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or "distributed_type" not in data:
        raise PlanError(f"{path}: not an accelerate config (no distributed_type key)")
    return data


def strategy_of(config: dict, kind: str) -> str:
    """The planner's strategy for an accelerate config on devices of `kind` (gpu, tpu, cpu)."""
    dist = str(config.get("distributed_type", "NO")).upper()
    processes = int(config.get("num_processes", 1) or 1)
    if dist == "FSDP":
        return "xla_spmd" if kind == "tpu" else "fsdp2"
    if dist == "DEEPSPEED":
        stage = int((config.get("deepspeed_config") or {}).get("zero_stage", 0))
        if stage != 3:
            raise PlanError(
                f"DeepSpeed ZeRO stage {stage}: the planner knows stage 3 (accelerate_configs/"
                "deepspeed_zero3.yaml); use that or an FSDP config"
            )
        return "zero3"
    if dist == "XLA":
        return "xla_dp"
    if dist in ("MULTI_GPU", "MULTI_CPU") or processes > 1:
        return "ddp"
    return "single"


def device_from_config(path: str | Path, kind: str, devices: int | None, memory_gib: float | None) -> Device:
    """A `Device` for an accelerate config: `devices` overrides the file's num_processes (GPUs) or is the slice's
    device count (TPU SPMD, where one process per host drives every device)."""
    config = read_accelerate_config(path)
    if config.get("use_cpu") and kind != "cpu":
        kind = "cpu"
    strategy = strategy_of(config, kind)
    if strategy == "fsdp2" and kind == "cpu":
        raise PlanError(
            f"{path}: FSDP on CPU: accelerate 1.15 turns FSDP on only for accelerators (on CPU it "
            "starts unsharded copies); use accelerate_configs/cpu.yaml, or a GPU/TPU machine"
        )
    count = devices or int(config.get("num_processes", 1) or 1)
    if strategy == "single":
        count = 1
    return Device(strategy=strategy, devices=count, memory_gib=memory_gib, kind=kind, config=str(path))


def device_from_environment(memory_limit_gib: float | None = None) -> Device:
    """The launch this process is part of, as `accelerate launch` (or torchrun) left it in the environment, and this
    machine's accelerator memory (`memory_limit_gib` wins)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    kind, memory, devices, xla = _local_accelerator()
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if xla:  # one process drives every device under SPMD; data parallel XLA runs a process per device
        strategy = "xla_spmd" if fsdp else ("xla_dp" if devices > 1 else "single")
        world = devices
    elif fsdp:
        strategy = "fsdp2"
    elif os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        strategy = "zero3" if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3") == "3" else "ddp"
    else:
        strategy = "ddp" if world > 1 else "single"
    if memory_limit_gib is not None:
        memory = memory_limit_gib
    return Device(strategy=strategy, devices=world, memory_gib=memory, kind=kind, config="this launch")


def _local_accelerator() -> tuple[str, float | None, int, bool]:
    """(kind, memory per device in GiB or None, device count, whether it is XLA) of this machine."""
    import importlib.util

    import torch

    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        props = torch.cuda.get_device_properties(local % torch.cuda.device_count())
        return "gpu", props.total_memory / 2**30, torch.cuda.device_count(), False
    pjrt = os.environ.get("PJRT_DEVICE", "").upper()
    if pjrt and importlib.util.find_spec("torch_xla") is not None:
        import torch_xla.runtime as xr

        kind, memory = ("tpu" if pjrt == "TPU" else "cpu"), None
        if kind == "tpu":
            try:
                import torch_xla
                import torch_xla.core.xla_model as xm

                info = xm.get_memory_info(torch_xla.device())
                memory = (info.get("bytes_limit") or 0) / 2**30 or None
            except Exception:  # no per-chip figure on this runtime: plan without a memory bound
                memory = None
        return kind, memory, xr.global_runtime_device_count(), True
    return "cpu", None, 1, False


def local_devices() -> tuple[str, int, float | None]:
    """(kind, count, memory GiB per device) for `--launch`: the GPUs or TPU chips of this machine."""
    kind, memory, count, _ = _local_accelerator()
    return kind, count, memory
