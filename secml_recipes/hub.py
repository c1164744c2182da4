"""The Hugging Face Hub token, looked up once, never written anywhere.

`huggingface_hub.get_token` finds it where every Hugging Face tool does (`HF_TOKEN`, the token file that
`hf auth login` writes, a Colab secret); `HUGGINGFACE_TOKEN` is also read, for setups that use that name. The token
is handed to `huggingface_hub` only, through the environment for training runs (never in the recipe, the
saved `training_args.bin`, logs or cards), and `scrub` removes it from any message we print.
"""

from __future__ import annotations

import os


def hub_token() -> str | None:
    # lazy: only when the Hub is used
    from huggingface_hub import get_token

    return get_token() or os.environ.get("HUGGINGFACE_TOKEN") or None


def scrub(text: str, token: str | None) -> str:
    """`text` with the token replaced by ***."""
    return text.replace(token, "***") if token else text
