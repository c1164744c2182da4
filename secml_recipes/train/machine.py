"""The machine this process trains on, probed once: the backend, how many devices, their names and memory.

The run settings (`run_settings.detect_environment`), the memory planner (`plan.hardware`) and the TPU launch
(`sharding.launch_settings`) all read `detect_machine()` instead of asking torch, torch_xla and the environment
each in their own way, so they cannot disagree about where the run trains. The backend follows transformers' and
accelerate's rule: XLA whenever torch_xla is importable (and USE_TORCH_XLA does not turn it off), else CUDA, else
Apple MPS, else CPU.

On a TPU host the first detection touches the XLA device: `sharding.launch_settings` (which must switch SPMD on
before that) runs first. Tests describe machines by patching `_probe_cuda` / `_probe_xla` and calling
`detect_machine.cache_clear()`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class Machine:
    """What this machine offers a run (not how the run is launched: WORLD_SIZE and accelerate's variables are the
    launch's)."""

    backend: str = "cpu"  # cuda, xla, mps or cpu
    device_count: int = 1
    device_names: tuple[str, ...] = ()
    device_memory_gib: tuple[float, ...] = ()  # per device; empty when the runtime gives no figure
    cuda_capability: tuple[int, int] | None = None
    xla_device_kind: str | None = None  # PJRT_DEVICE under XLA, lower case (tpu, cpu, cuda)

    def local_memory_gib(self) -> float | None:
        """Memory of the device this process drives (LOCAL_RANK's), or None when unknown."""
        if not self.device_memory_gib:
            return None
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return self.device_memory_gib[local % len(self.device_memory_gib)]


def torch_xla_installed() -> bool:
    """torch_xla can be imported (checked without importing it: that alone would start the XLA runtime)."""
    return importlib.util.find_spec("torch_xla") is not None


def _probe_cuda() -> Machine | None:
    import torch  # lazy: seconds to import, and a recipe's errors are reported before any probe

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    props = [torch.cuda.get_device_properties(i) for i in range(count)]
    return Machine(
        backend="cuda",
        device_count=count,
        device_names=tuple(p.name for p in props),
        device_memory_gib=tuple(p.total_memory / GIB for p in props),
        cuda_capability=tuple(torch.cuda.get_device_capability(0)),
    )


def _probe_xla() -> Machine | None:
    from transformers.utils import is_torch_xla_available  # lazy: imports torch (seconds)

    if not is_torch_xla_available():
        return None
    pjrt = os.environ.get("PJRT_DEVICE", "").lower() or None
    if pjrt is None:  # torch_xla installed but no PJRT device chosen: the runtime is not started to count devices
        return Machine(backend="xla", xla_device_kind=None)
    # Lazy: torch_xla is an optional (TPU) dependency, and importing it starts the XLA runtime.
    import torch_xla
    import torch_xla.core.xla_model as xm
    import torch_xla.runtime as xr

    count, memory = xr.global_runtime_device_count(), ()
    if pjrt == "tpu":
        try:
            limit = (xm.get_memory_info(torch_xla.device()).get("bytes_limit") or 0) / GIB
            memory = (limit,) * count if limit else ()
        except Exception:  # no per-chip figure on this runtime: plan without a memory bound
            memory = ()
    return Machine(
        backend="xla", device_count=count, device_names=(pjrt,) * count, device_memory_gib=memory, xla_device_kind=pjrt
    )


def _probe_mps() -> Machine | None:
    import torch  # lazy: seconds to import

    mps = getattr(torch.backends, "mps", None)
    return Machine(backend="mps", device_names=("mps",)) if mps is not None and mps.is_available() else None


@functools.cache
def detect_machine() -> Machine:
    """This machine, probed once per process (`detect_machine.cache_clear()` probes again)."""
    return _probe_xla() or _probe_cuda() or _probe_mps() or Machine()
