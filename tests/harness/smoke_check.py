"""After `make smoke`: check what the smoke run must leave behind, and that the loss fell by half."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def first_and_last_loss(model_dir: Path) -> tuple[float, float]:
    history = json.loads((model_dir / "loss_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    if len(losses) < 2:
        raise SystemExit(f"{model_dir}: fewer than two logged losses in loss_history.json")
    return losses[0], losses[-1]


def main(argv: list[str]) -> int:
    specialist, generalist = Path(argv[0]), Path(argv[1])
    problems = []
    if not list(specialist.glob("*.safetensors")):
        problems.append(f"{specialist}: no safetensors weights")
    adapter_config = generalist / "adapter_config.json"
    if not adapter_config.exists():
        problems.append(f"{generalist}: no adapter_config.json")
    else:
        cfg = json.loads(adapter_config.read_text())
        if (cfg.get("r"), cfg.get("lora_alpha"), sorted(cfg.get("target_modules") or [])) != (
            16,
            32,
            ["q_proj", "v_proj"],
        ):
            problems.append(
                f"{adapter_config}: expected r=16, alpha=32, q_proj/v_proj, got {cfg.get('r')}, "
                f"{cfg.get('lora_alpha')}, {cfg.get('target_modules')}"
            )
    print("| model | first loss | last loss | ratio |\n|---|---|---|---|")
    for d in (specialist, generalist):
        first, last = first_and_last_loss(d)
        print(f"| {d} | {first:.3f} | {last:.3f} | {last / first:.2f} |")
        if last > first / 2:
            problems.append(f"{d}: loss fell from {first:.3f} to {last:.3f}, less than half")
        if not (d / "loss.png").exists():
            problems.append(f"{d}: no loss.png")
    for p in problems:
        print(f"smoke check failed: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
