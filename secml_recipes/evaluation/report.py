"""eval_report.json, a Markdown summary table, and PNG plots (metric bars against baselines; risk scatter)."""

from __future__ import annotations

from pathlib import Path

from secml_recipes.atomic import atomic_path, write_json_atomic, write_text_atomic

LOWER_IS_BETTER = {
    "risk_score_mae",
    "mean_steps",
    "step_limit_rate",
    "undeclared_tool_calls",
    "harmful_action_rate",
    "judge_harmful_rate",
    "ungrounded_rate",
    "heldout_loss",
    "heldout_perplexity",
}
COUNT_KEYS = {"examples", "episodes", "calls", "tool_call_blocks", "adversarial_episodes", "actions", "heldout_tokens"}


def format_value(value, interval: list[float] | None = None) -> str:
    """A metric cell: '-' when undefined, counts as integers, rates with their 95% interval when known."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:d}"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def markdown_table(results: dict[str, dict[str, float]], intervals: dict | None = None) -> str:
    """Metrics as rows, variants (model, baselines) as columns; a rate's 95% bootstrap interval (over
    examples, `evaluation/intervals.py`) in brackets where the evaluation computed one."""
    intervals = intervals or {}
    variants = list(results)
    metrics = list(results[variants[0]])
    lines = ["| metric | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for m in metrics:
        arrow = " (lower is better)" if m in LOWER_IS_BETTER else ""
        cells = [format_value(results[v].get(m), intervals.get(v, {}).get(m)) for v in variants]
        lines.append(f"| {m}{arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plots(
    results: dict[str, dict[str, float]], out_dir: Path, scatter: list[tuple[float, float]] | None, title: str
) -> list[Path]:
    # lazy: slow to import, and only plots need it
    import matplotlib

    matplotlib.use("Agg")
    # lazy: slow to import, and only plots need it
    import matplotlib.pyplot as plt

    written = []
    variants = list(results)
    metrics = [
        m
        for m in results[variants[0]]
        if m not in COUNT_KEYS
        and m not in LOWER_IS_BETTER
        and any(isinstance(results[v].get(m), (int, float)) for v in variants)
    ]
    fig, ax = plt.subplots(figsize=(max(7, len(metrics) * 0.9), 4.2), dpi=110)
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        ax.bar([x + i * width for x in range(len(metrics))], [results[v].get(m) or 0 for m in metrics], width, label=v)
    ax.set_xticks([x + width * (len(variants) - 1) / 2 for x in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out_dir / "metrics.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    written.append(path)
    if scatter:
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
        ref, pred = zip(*scatter)
        ax.scatter(ref, pred, s=12, alpha=0.6)
        ax.plot([0, 100], [0, 100], "k--", lw=0.8)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("reference risk score")
        ax.set_ylabel("predicted risk score")
        ax.set_title("risk scores of matched findings", fontsize=10)
        fig.tight_layout()
        path = out_dir / "risk_scatter.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        written.append(path)
    return written


def write_report(out_dir: Path, report: dict, results: dict[str, dict[str, float]], scatter=None, title="") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results, report.get("intervals"))
    plots = write_plots(results, out_dir, scatter, title)
    report = {**report, "results": results, "results_markdown": table, "plots": [p.name for p in plots]}
    n = next((v for k, v in report.get("sizes", {}).items() if k in ("examples", "episodes")), None)
    note = f"n = {n} held-out examples; [low, high]: 95% bootstrap interval over examples.\n\n" if n else ""
    write_text_atomic(out_dir / "summary.md", f"# {title}\n\n{note}{table}")
    write_json_atomic(out_dir / "eval_report.json", report, default=str)  # last: its presence means done
    return report
