"""Attention alone, forward + backward, for one batch of the scan length mix: the paths a padding-free or
padded batch can take, timed side by side, with each path's largest difference from per-sequence SDPA.

    python bench/attention_paths.py                      # GPU: Llama-3-8B attention shape, bf16
    python bench/attention_paths.py --heads 4 --kv-heads 2 --dim 16 --repeats 3   # CPU sanity check

Paths:
- `padded sdpa`: the batch padded to its longest row, SDPA with `is_causal` (what TRL's default runs;
  padding is computed and thrown away);
- `packed sdpa + block mask`: one padding-free row with transformers' dense block-diagonal mask (what
  `sdpa` does with padding-free batches: no flash kernel, attention across the whole row);
- `varlen` (this repository's `attn_implementation: varlen`): torch's varlen flash kernel on a GPU, one
  SDPA call per sequence elsewhere.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def lengths_of_batch(batch: int, seed: int, scale: float) -> list[int]:
    rng = random.Random(seed)
    return [int((rng.randint(256, 1536) + rng.randint(128, 768)) * scale) for _ in range(batch)]


def timed(fn, repeats: int, cuda: bool) -> float:
    fn()  # warm-up (kernel selection, allocator)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from types import SimpleNamespace

    from secml_recipes.attention import kernel_available, varlen_attention_forward

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    lengths = lengths_of_batch(args.batch, args.seed, 1.0 if cuda else 0.1)
    total, longest = sum(lengths), max(lengths)
    torch.manual_seed(args.seed)
    q = torch.randn(1, args.heads, total, args.dim, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(1, args.kv_heads, total, args.dim, device=device, dtype=dtype, requires_grad=True)
    v = torch.randn(1, args.kv_heads, total, args.dim, device=device, dtype=dtype, requires_grad=True)
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32, device=device)
    module = SimpleNamespace(is_causal=True, training=True)
    gqa = args.heads != args.kv_heads
    starts = cu[:-1].tolist()

    def padded(t: torch.Tensor) -> torch.Tensor:
        out = t.new_zeros(args.batch, t.shape[1], longest, args.dim)
        for i, (a, n) in enumerate(zip(starts, lengths)):
            out[i, :, :n] = t[0, :, a:a + n]
        return out

    pq, pk, pv = (padded(t.detach()).requires_grad_() for t in (q, k, v))
    seq_ids = torch.repeat_interleave(torch.arange(args.batch, device=device), torch.tensor(lengths, device=device))
    block = (seq_ids[:, None] == seq_ids[None, :]) & torch.ones(total, total, dtype=torch.bool, device=device).tril()

    def run_padded():
        torch.nn.functional.scaled_dot_product_attention(pq, pk, pv, is_causal=True, enable_gqa=gqa).sum().backward()

    def run_block():
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=block[None, None],
                                                         enable_gqa=gqa).sum().backward()

    def run_varlen():
        out, _ = varlen_attention_forward(module, q, k, v, None, cu_seq_lens_q=cu, max_length_q=longest)
        out.sum().backward()

    def per_sequence():
        outs = [torch.nn.functional.scaled_dot_product_attention(
            q[:, :, a:a + n].float(), k[:, :, a:a + n].float(), v[:, :, a:a + n].float(), is_causal=True,
            enable_gqa=gqa) for a, n in zip(starts, lengths)]
        return torch.cat(outs, 2).transpose(1, 2)

    with torch.no_grad():
        reference = per_sequence()
        varlen_out = varlen_attention_forward(module, q, k, v, None, cu_seq_lens_q=cu, max_length_q=longest)[0]
        block_out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=block[None, None],
                                                                     enable_gqa=gqa).transpose(1, 2)
        pad_out = torch.nn.functional.scaled_dot_product_attention(pq, pk, pv, is_causal=True, enable_gqa=gqa)
        pad_flat = torch.cat([pad_out[i, :, :n] for i, n in enumerate(lengths)], 1).transpose(0, 1)[None]
    rows = [("padded sdpa (TRL default)", run_padded, pad_flat), ("packed sdpa + block mask", run_block, block_out),
            ("varlen (this repository)", run_varlen, varlen_out)]
    kernel = "torch varlen flash kernel" if kernel_available(device, dtype) else "per-sequence SDPA fallback"
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, {dtype}, lengths {lengths} "
          f"({total} tokens, longest {longest}), heads {args.heads}/{args.kv_heads}, dim {args.dim}; varlen uses "
          f"the {kernel}")
    print("| path | fwd+bwd ms | speed vs padded | max abs diff vs per-sequence fp32 |")
    print("|---|---|---|---|")
    base = None
    for name, fn, out in rows:
        ms = timed(fn, args.repeats, cuda)
        base = base or ms
        diff = (out.float() - reference).abs().max().item()
        print(f"| {name} | {ms:.2f} | {base / ms:.2f}x | {diff:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
