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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def attention_paths(args, device, dtype, lengths):
    """(name, fwd+bwd function, output) for each path on the same random q/k/v, and the per-sequence fp32
    reference output."""
    from types import SimpleNamespace

    from secml_recipes.train.attention import varlen_attention_forward

    total, longest = sum(lengths), max(lengths)
    torch.manual_seed(args.seed)
    q, k, v = (
        torch.randn(1, heads, total, args.dim, device=device, dtype=dtype, requires_grad=True)
        for heads in (args.heads, args.kv_heads, args.kv_heads)
    )
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32, device=device)
    module = SimpleNamespace(is_causal=True, training=True)
    gqa, starts = args.heads != args.kv_heads, cu[:-1].tolist()
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def padded(t: torch.Tensor) -> torch.Tensor:
        out = t.new_zeros(args.batch, t.shape[1], longest, args.dim)
        for i, (a, n) in enumerate(zip(starts, lengths)):
            out[i, :, :n] = t[0, :, a : a + n]
        return out

    pq, pk, pv = (padded(t.detach()).requires_grad_() for t in (q, k, v))
    seq_ids = torch.repeat_interleave(torch.arange(args.batch, device=device), torch.tensor(lengths, device=device))
    block = (seq_ids[:, None] == seq_ids[None, :]) & torch.ones(total, total, dtype=torch.bool, device=device).tril()
    runs = {
        "padded sdpa (TRL default)": lambda: sdpa(pq, pk, pv, is_causal=True, enable_gqa=gqa),
        "packed sdpa + block mask": lambda: sdpa(q, k, v, attn_mask=block[None, None], enable_gqa=gqa),
        "varlen (this repository)": lambda: varlen_attention_forward(
            module, q, k, v, None, cu_seq_lens_q=cu, max_length_q=longest
        )[0],
    }
    with torch.no_grad():
        reference = torch.cat(
            [
                sdpa(
                    q[:, :, a : a + n].float(),
                    k[:, :, a : a + n].float(),
                    v[:, :, a : a + n].float(),
                    is_causal=True,
                    enable_gqa=gqa,
                )
                for a, n in zip(starts, lengths)
            ],
            2,
        )
        reference = reference.transpose(1, 2)
        outputs = {name: run() for name, run in runs.items()}
    pad_out = outputs["padded sdpa (TRL default)"]
    outputs["padded sdpa (TRL default)"] = torch.cat([pad_out[i, :, :n] for i, n in enumerate(lengths)], 1)
    outputs["padded sdpa (TRL default)"] = outputs["padded sdpa (TRL default)"].transpose(0, 1)[None]
    outputs["packed sdpa + block mask"] = outputs["packed sdpa + block mask"].transpose(1, 2)
    rows = [(name, lambda run=run: run().sum().backward(), outputs[name]) for name, run in runs.items()]
    return rows, reference


def main() -> int:
    args = parse_args()
    from secml_recipes.train.attention import kernel_available

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    lengths = lengths_of_batch(args.batch, args.seed, 1.0 if cuda else 0.1)
    rows, reference = attention_paths(args, device, dtype, lengths)
    kernel = "torch varlen flash kernel" if kernel_available(device, dtype) else "per-sequence SDPA fallback"
    print(
        f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, {dtype}, lengths {lengths} "
        f"({sum(lengths)} tokens, longest {max(lengths)}), heads {args.heads}/{args.kv_heads}, dim {args.dim}; "
        f"varlen uses the {kernel}"
    )
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
