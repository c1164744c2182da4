"""glibc's allocator settings for training and scoring on a CPU. glibc serves every allocation above 32 MiB with a
fresh mmap and returns it on free, so each step's large tensors (activations, a 49,152-way logits block) are
faulted in page by page again at every step; in a virtual machine a page fault is costly, and on the 2-core machine
of `make smoke` half of a training step's CPU time was the kernel's. With no mmap (`MALLOC_MMAP_MAX_=0`) and no
trimming of the heap's top, freed memory is reused instead: `bench/cpu_allocator.py` measures the ratio. Applied to
the pipeline's stage processes (a variable the user set wins); glibc reads them only at process start."""

from __future__ import annotations

import sys

CPU_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 << 30)}


def with_cpu_allocator(env: dict[str, str]) -> dict[str, str]:
    """`env` with `CPU_ALLOCATOR_ENV` added where unset (Linux only: the variables are glibc's)."""
    if not sys.platform.startswith("linux"):
        return dict(env)
    return {**CPU_ALLOCATOR_ENV, **env}
