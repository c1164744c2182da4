"""secml-recipes: train security-analysis language models on sys-scan output with Accelerate + TRL."""

__version__ = "0.1.0"

import logging as _logging

# torchao (the 8-bit AdamW of the specialist recipe) warns at import about optional CUDA kernels (mxfp8,
# cutlass sm90a) its wheel cannot load into other torch builds; transformers imports it whenever it is
# installed, so every run would start with those lines. Errors still show.
# torch's pytree also warns, once per enum torchao registers, about a deprecation that is torchao's to fix.
_logging.getLogger("torchao").setLevel(_logging.ERROR)
_logging.getLogger("torch.utils._pytree").setLevel(_logging.ERROR)

# Module paths from before the stage layout keep working for one release (moved_modules.yaml).
from secml_recipes import _moved  # noqa: E402

_moved.install()
