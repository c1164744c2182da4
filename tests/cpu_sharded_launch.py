"""`python -m secml_recipes.train.sft` under `accelerate launch` with the FSDP or DeepSpeed configs, on CPU, for tests.

accelerate 1.15 runs both only on accelerators, in two places this entry point lifts (everything else is accelerate's,
torch's and DeepSpeed's own code, on gloo):
- FSDP: `AcceleratorState` switches to `DistributedType.FSDP` only from GPU-like backends (MULTI_GPU, MULTI_XPU, ...);
  on CPU it keeps MULTI_CPU, ignores the FSDP settings `accelerate launch` exported and wraps the model in DDP. Here
  the state becomes FSDP with the plugin accelerate built from the config.
- DeepSpeed: `PartialState._prepare_backend` finds no backend on a machine without an accelerator (unless `cpu` is
  set, which turns DeepSpeed off), so the state counts one process while DeepSpeed's process group has them all and
  its batch-size check fails. Here the backend is gloo (MULTI_CPU) and DeepSpeed runs on its CPU accelerator
  (DS_ACCELERATOR=cpu).
"""

import os
import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_accelerator_state_init = AcceleratorState.__init__
_prepare_backend = PartialState._prepare_backend


def _init_with_cpu_fsdp(self, *args, **kwargs):
    _accelerator_state_init(self, *args, **kwargs)
    plugin = kwargs.get("fsdp_plugin") or getattr(self, "fsdp_plugin", None)
    if self.distributed_type == DistributedType.MULTI_CPU and plugin is not None:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = plugin


def _cpu_backend(self, cpu=False, sagemaker_dp=False, backend=None):
    found, distributed_type = _prepare_backend(self, cpu, sagemaker_dp, backend)
    if distributed_type == DistributedType.NO and int(os.environ.get("LOCAL_RANK", -1)) != -1:
        return "gloo", DistributedType.MULTI_CPU
    return found, distributed_type


AcceleratorState.__init__ = _init_with_cpu_fsdp
PartialState._prepare_backend = _cpu_backend

if __name__ == "__main__":
    from secml_recipes.train.sft import main

    sys.exit(main(sys.argv[1:]))
