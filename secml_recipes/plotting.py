"""Loss curves as PNG: people would rather see a training run than read its log."""

from __future__ import annotations

from pathlib import Path

from secml_recipes.atomic import atomic_path


def write_loss_plot(log_history: list[dict], out: str | Path, title: str = "training loss") -> Path | None:
    """Plot train (and eval) loss against step; returns the PNG path, or None when nothing was logged."""
    # lazy: slow to import, and only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # lazy: slow to import, and only plots need it
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", color="#1f77b4")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color="#d62728")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("completion-only cross-entropy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out)

    with atomic_path(out) as tmp:  # a crash never leaves half a PNG
        fig.savefig(tmp)
    plt.close(fig)
    return out
