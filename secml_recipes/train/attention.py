"""`attn_implementation: varlen`: exact per-sequence causal attention for padding-free batches, no extra package.

Why it exists: a padding-free batch is one row holding all of the batch's sequences. transformers' `sdpa`
keeps them apart with a dense block-diagonal mask, which rules out SDPA's flash kernel and computes
attention across the whole row (the reason TRL's padding-free packing with sdpa was no faster than
padding). flash-attn's varlen kernel avoids both, but it is a separate CUDA build. torch ships the same
kind of kernel (`torch.nn.attention.varlen.varlen_attn`, flash attention 2 with a backward pass); transformers
does not wire it, so this module registers it with transformers' `AttentionInterface` under the name
`varlen`. It reads the sequence boundaries (`cu_seq_lens_q`) that TRL's padding-free collator already
sends, or derives them from `position_ids`.

Where that kernel cannot run (CPU, GPUs older than Ampere, fp32, attention dropout), every sequence goes
through SDPA with `is_causal=True` on its own: the same mathematics, one call per sequence. Batches that
are not packed (padded batches, generation with a KV cache) go to transformers' own `sdpa` unchanged.
"""

from __future__ import annotations

import functools

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "varlen"


@functools.cache
def _torch_varlen():
    try:
        # lazy: the torch stack loads only when a model is touched
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch < 2.10
        return None
    return varlen_attn


def kernel_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch's fused varlen kernel (flash attention 2) can run for tensors on `device` of `dtype`."""
    if device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16) or _torch_varlen() is None:
        return False
    return torch.cuda.get_device_capability(device) >= (8, 0)


def sequence_boundaries(query: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, int] | None:
    """(cu_seqlens int32 on the query's device, longest sequence) when the batch is one packed row, else None."""
    if query.shape[0] != 1:
        return None
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        max_len = kwargs.get("max_length_q")
        cu = cu.to(device=query.device, dtype=torch.int32)
        return cu, int(max_len) if max_len is not None else int(cu.diff().max())
    position_ids = kwargs.get("position_ids")
    if position_ids is None or position_ids.shape[-1] != query.shape[2]:
        return None
    starts = (position_ids.reshape(-1) == 0).nonzero().flatten()
    if starts.numel() <= 1:
        return None  # one sequence: plain causal attention is already exact
    end = torch.tensor([position_ids.shape[-1]], device=starts.device)
    cu = torch.cat([starts, end]).to(device=query.device, dtype=torch.int32)
    return cu, int(cu.diff().max())


def varlen_attention_forward(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
):
    """transformers attention function. query (1, Hq, T, D), key/value (1, Hkv, T, D) -> (1, T, Hq, D)."""
    packed = None
    if attention_mask is None and query.shape[2] == key.shape[2]:
        packed = sequence_boundaries(query, kwargs)
    if packed is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    cu, max_len = packed
    heads_q, heads_kv = query.shape[1], key.shape[1]
    if dropout == 0.0 and kernel_available(query.device, query.dtype):
        q = query[0].transpose(0, 1).contiguous()  # (T, Hq, D), the kernel's layout
        k = key[0].transpose(0, 1).contiguous()
        v = value[0].transpose(0, 1).contiguous()
        out = _torch_varlen()(
            q, k, v, cu, cu, max_len, max_len, scale=scaling, window_size=(-1, 0), enable_gqa=heads_q != heads_kv
        )
        return out.unsqueeze(0), None
    outs = []
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        outs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end],
                key[:, :, start:end],
                value[:, :, start:end],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
                enable_gqa=heads_q != heads_kv,
            )
        )
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


def varlen_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    attention_mask: torch.Tensor | None = None,
    **kwargs,
):
    """No mask for packed or unpadded rows (the attention function keeps sequences apart); transformers' sdpa
    mask for everything else (padding, KV caches), which `varlen_attention_forward` hands to sdpa."""
    if attention_mask is None and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    return sdpa_mask(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        attention_mask=attention_mask,
        **kwargs,
    )


def register() -> str:
    """Make `attn_implementation="varlen"` known to transformers (idempotent); returns the name."""
    AttentionInterface.register(NAME, varlen_attention_forward)
    AttentionMaskInterface.register(NAME, varlen_mask)
    return NAME


register()
