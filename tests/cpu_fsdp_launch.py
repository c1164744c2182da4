"""`python -m secml_recipes.sft` under `accelerate launch --config_file accelerate_configs/fsdp.yaml` on CPU, for tests.

accelerate 1.15 turns FSDP on only for accelerators: `AcceleratorState` switches to `DistributedType.FSDP` when the
backend is a GPU-like one (MULTI_GPU, MULTI_XPU, ...), and on CPU it keeps MULTI_CPU, so the FSDP settings that
`accelerate launch` exports are ignored and the model is wrapped in DDP. This entry point lifts that one gate (the
state becomes FSDP with the plugin accelerate built from the config); everything else is accelerate's own FSDP2
code (fully_shard per decoder layer, DCP checkpoints, state-dict gathering) on gloo.
"""

import sys

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_init = AcceleratorState.__init__


def _init_with_cpu_fsdp(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    plugin = kwargs.get("fsdp_plugin") or getattr(self, "fsdp_plugin", None)
    if self.distributed_type == DistributedType.MULTI_CPU and plugin is not None:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = plugin


AcceleratorState.__init__ = _init_with_cpu_fsdp

if __name__ == "__main__":
    from secml_recipes.sft import main

    sys.exit(main(sys.argv[1:]))
