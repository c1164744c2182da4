"""The whole speed table in one command: every real shape and mode, TRL vs this repository, with
the goals checked, a markdown summary and a plot.

    python bench/gpu_suite.py --out bench/results            # one GPU (H100 80 GB or H200)
    python bench/gpu_suite.py --out /tmp/r --shape tiny --steps 3 --warmup 1   # CPU dry run of the machinery

Each case runs `bench/train_throughput.py` (TRL and secml in their own processes); a case that does not fit
the GPU is reported as failed, not skipped silently. Goals:
LoRA >= 2x TRL tokens/s at <= 1.5x its peak memory; full fine-tuning >= 1.5x; losses of the first steps
within 1% of TRL's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, shape, mode, batch size, minimum GPU memory in GiB, speed goal vs TRL)
CASES = [
    ("llama-8b LoRA r16 q/v", "llama-8b", "lora", 4, 0, 2.0),
    ("llama-8b full FT", "llama-8b", "full", 2, 0, 1.5),
    ("mixtral-8x7b QLoRA (4-bit base)", "mixtral-8x7b", "qlora", 4, 0, 2.0),
    ("mixtral-8x7b LoRA bf16", "mixtral-8x7b", "lora", 4, 120, 2.0),  # 92.5 GiB for TRL: H200 only
]


def gpu_memory_gib() -> float:
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else 0.0


def run_case(name, shape, mode, batch, args, out_dir: Path) -> dict | None:
    slug = name.split(" (")[0].replace(" ", "_").replace("/", "")
    results = out_dir / f"{slug}.json"
    log = out_dir / f"{slug}.log"
    if args.shape == "tiny":  # CPU dry run: the tiny shape of the same family
        shape = "tiny-moe" if shape.startswith("mixtral") else "tiny"
    cmd = [
        sys.executable,
        str(HERE / "train_throughput.py"),
        "--shape",
        shape,
        "--mode",
        mode,
        "--batch-size",
        str(batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    with log.open("w") as fh:
        proc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ, BENCH_RESULTS=str(results))
        )
    if proc.returncode != 0 or not results.exists():
        print(f"   failed (exit {proc.returncode}); see {log}")
        return None
    return json.loads(results.read_text())


def summarize(rows: list[tuple[str, float, dict | None]], out_dir: Path, note: str = "") -> str:
    lines = [
        "| case | TRL tokens/s | secml tokens/s | ratio (goal) | TRL peak GiB | secml peak GiB | memory ratio | "
        "secml utilisation | loss diff (first steps) | goals met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, goal, r in rows:
        if r is None:
            lines.append(f"| {name} | failed | | | | | | | | no |")
            continue
        trl, ours = r["trl"], r["secml"]
        ratio = ours["tokens_per_s"] / trl["tokens_per_s"]
        memory = ours["peak_gib"] / trl["peak_gib"]
        k = min(len(trl["losses"]), len(ours["losses"]))
        diff = max(abs(a - b) / abs(a) for a, b in zip(trl["losses"][:k], ours["losses"][:k]))
        util = f"{ours['utilisation']:.1%}" if ours["utilisation"] is not None else "n/a"
        met = ratio >= goal and diff <= 0.01 and (memory <= 1.5 or "full" in name)
        lines.append(
            f"| {name} | {trl['tokens_per_s']:,.0f} | {ours['tokens_per_s']:,.0f} | {ratio:.2f}x ({goal}x) | "
            f"{trl['peak_gib']:.1f} | {ours['peak_gib']:.1f} | {memory:.2f}x | {util} | {diff:.1e} | "
            f"{'yes' if met else 'no'} |"
        )
    table = "\n".join(lines)
    (out_dir / "summary.md").write_text(table + "\n")
    _plot(rows, out_dir / "summary.png", note)
    return table


def _plot(rows, path: Path, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(name, r) for name, _, r in rows if r is not None]
    if not done:
        return
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 0.8 + 0.6 * len(done)))
    names = [name for name, _ in done]
    speed.barh(names, [r["secml"]["tokens_per_s"] / r["trl"]["tokens_per_s"] for _, r in done], color="tab:green")
    speed.axvline(1.0, color="grey", lw=1)
    speed.set_xlabel("tokens/s vs plain TRL (x)")
    memory.barh(names, [r["secml"]["peak_gib"] / r["trl"]["peak_gib"] for _, r in done], color="tab:blue")
    memory.axvline(1.5, color="red", lw=1, ls="--")
    memory.set_xlabel("peak memory vs plain TRL (x); red: 1.5x bound")
    memory.set_yticks([])
    fig.suptitle(f"secml-recipes vs TRL SFTTrainer defaults on {done[0][1]['trl']['device']}{note}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--shape", choices=["tiny"], help="tiny: CPU dry run of every case at the tiny shapes")
    parser.add_argument("--only", help="comma-separated case names (prefix match)")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    memory = gpu_memory_gib()
    rows = []
    for name, shape, mode, batch, min_gib, goal in CASES:
        if args.only and not any(name.startswith(p.strip()) for p in args.only.split(",")):
            continue
        if args.shape is None and memory < min_gib:
            print(f"== {name}: not run, needs {min_gib} GiB of GPU memory, this GPU has {memory:.0f}")
            continue
        if args.shape == "tiny" and mode == "qlora" and memory == 0:
            continue  # bitsandbytes' 4-bit loading in the benchmark places the model on GPU 0
        rows.append((name, goal, run_case(name, shape, mode, batch, args, out_dir)))
    table = summarize(rows, out_dir, " (tiny shapes: dry run)" if args.shape else "")
    print(table)
    print(f"written: {out_dir / 'summary.md'}, {out_dir / 'summary.png'}")
    return 0 if all(r is not None for _, _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
