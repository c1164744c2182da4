"""Training steps on a CPU under glibc's default allocator and under the pipeline's settings
(`secml_recipes/train/cpu_allocator.py`): wall, user and kernel seconds, minor page faults, and the ratio.

    python bench/cpu_allocator.py                                   # SmolLM2-135M (make base-models), 3 steps
    python bench/cpu_allocator.py --model PATH --tokens 1024 --steps 5

Each variant runs in its own process (glibc reads the variables at start): the same random row of `--tokens`
tokens, full fine-tuning in fp32 with AdamW, one untimed step first. The baseline is glibc's default, what plain
TRL (or any `accelerate launch` without the variables) runs under.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secml_recipes.train.cpu_allocator import CPU_ALLOCATOR_ENV


def steps(model_path: str, tokens: int, n: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    for i in range(n + 1):
        if i == 1:  # the first step allocates everything once
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": time.perf_counter() - start,
        "user_s": after.ru_utime - before.ru_utime,
        "kernel_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/base/smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=2400, help="row length (a smoke specialist row: ~2,400)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(steps(args.model, args.tokens, args.steps)))
        return 0
    if not Path(args.model).is_dir():
        print(f"error: {args.model} is not a model folder (make base-models prepares the default)", file=sys.stderr)
        return 2
    base_env = {k: v for k, v in os.environ.items() if k not in CPU_ALLOCATOR_ENV}
    results = {}
    for name, env in (("glibc default", base_env), ("pipeline settings", {**base_env, **CPU_ALLOCATOR_ENV})):
        child = [sys.executable, __file__, "--child", "--model", args.model, "--tokens", str(args.tokens)]
        out = subprocess.run([*child, "--steps", str(args.steps)], env=env, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"{name:18s} {args.steps} steps of {args.tokens} tokens: {r['wall_s']:.1f} s wall, {r['user_s']:.1f} s "
            f"user, {r['kernel_s']:.1f} s kernel, {r['minor_faults']:,} minor faults",
            flush=True,
        )
    base, ours = results["glibc default"], results["pipeline settings"]
    print(f"ratio (glibc default wall / pipeline settings wall): {base['wall_s'] / ours['wall_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
