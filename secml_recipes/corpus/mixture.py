"""Training on several corpora at once, by weight: the generated corpus, folders made by `ingest` (a
team's own scans) and labelled pairs (its own triage), side by side in one recipe key.

    dataset_mixture:
      - {path: data/massive_datasets.tar.gz, weight: 0.5}
      - {path: data/our-scans, weight: 1}
      - {path: data/our-triage, weight: 4}

A weight multiplies that source's training rows: 0.5 keeps a seeded half, 1 keeps every row, 4 repeats
every row four times (2.5: every row twice plus a seeded half). Evaluation splits are taken once from each
source that has one, unweighted. The draw is fixed by the training seed; the counts taken from each
source are printed and saved as `data_mixture.json` beside the run.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from secml_recipes.corpus.tarball import CorpusError, corpus_root, load_split_dataset, read_split


@dataclass(frozen=True)
class MixtureSource:
    path: str
    weight: float = 1.0


def parse_mixture(entries) -> list[MixtureSource]:
    """The recipe's `dataset_mixture` as sources, or a ValueError naming the entry and key that is wrong."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("dataset_mixture must be a non-empty list of {path, weight} entries")
    sources = []
    for i, entry in enumerate(entries):
        where = f"dataset_mixture[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping {{path, weight}}, got {type(entry).__name__}")
        unknown = set(entry) - {"path", "weight"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; an entry has 'path' and 'weight'")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where}: 'path' must be a corpus path (tarball or folder)")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"{where}: 'weight' must be a finite number > 0, got {weight!r}")
        sources.append(MixtureSource(path, float(weight)))
    paths = [s.path for s in sources]
    if len(set(paths)) != len(paths):
        raise ValueError("dataset_mixture lists the same path twice; give it one entry with the summed weight")
    return sources


def weighted_rows(rows: list[dict], weight: float, rng: random.Random) -> list[dict]:
    """`weight` x the rows: whole copies for the integer part, a seeded sample for the fraction."""
    copies = int(weight)
    extra = round((weight - copies) * len(rows))
    return rows * copies + rng.sample(rows, extra)


def mix_split(
    sources: list[MixtureSource], task: str, split: str, seed: int, rejects_dir=None, weighted: bool = True
) -> tuple[list[dict], list[dict]]:
    """(mixed rows, one count entry per source) for `task`/`split`. With `weighted` (training) every
    source must have the split; otherwise (evaluation) a source without it contributes nothing."""
    mixed, counts = [], []
    for i, source in enumerate(sources):
        root = corpus_root(source.path)
        if not list((root / task).glob(f"{split}-*.jsonl")):
            if weighted:
                raise CorpusError(
                    f"dataset_mixture[{i}]: {source.path} has no {task}/{split} rows "
                    f"(build it with `make data` or `secml data ingest`)"
                )
            counts.append({"path": source.path, "weight": source.weight, "available": 0, "taken": 0})
            continue
        rows, _ = read_split(source.path, task, split, rejects_dir)
        rng = random.Random(f"{seed}:{i}:{source.path}")
        taken = weighted_rows(rows, source.weight, rng) if weighted else rows
        mixed += taken
        counts.append(
            {
                "path": source.path,
                "weight": source.weight if weighted else 1.0,
                "available": len(rows),
                "taken": len(taken),
            }
        )
    random.Random(f"{seed}:shuffle:{split}").shuffle(mixed)
    total = max(1, len(mixed))
    for c in counts:
        c["share"] = round(c["taken"] / total, 4)
    return mixed, counts


def load_mixed_dataset(
    entries,
    task: str,
    split: str,
    seed: int,
    rejects_dir=None,
    max_rows: int | None = None,
    weighted: bool = True,
    log_dir: str | os.PathLike | None = None,
):
    """The mixed split as a `datasets.Dataset` in TRL's format; counts printed and saved to `log_dir`."""
    # lazy: the torch stack loads only when a model is touched
    from datasets import Dataset

    sources = parse_mixture(entries)
    rows, counts = mix_split(sources, task, split, seed, rejects_dir, weighted)
    if max_rows is not None:
        rows = rows[:max_rows]
    print(f"[secml data] {task}/{split} mixture ({len(rows)} rows, seed {seed}):")
    for c in counts:
        print(
            f"  {c['path']}: weight {c['weight']:g}, {c['available']} available -> {c['taken']} taken "
            f"({100 * c['share']:.1f}%)"
        )
    if log_dir is not None:
        path = Path(log_dir) / "data_mixture.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved[f"{task}/{split}"] = {
            "seed": seed,
            "rows": len(rows),
            "sources": counts,
            "entries": [asdict(s) for s in sources],
        }
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    columns = ("id", "prompt", "completion") if task == "specialist" else ("id", "messages", "tools")
    return Dataset.from_list([{k: r[k] for k in columns} for r in rows])


def load_task_split(
    data_args, split: str, rejects_dir, max_rows: int | None, seed: int, log_dir=None, weighted: bool = True
):
    """One split for a recipe: the mixture when `dataset_mixture` is set, else `dataset_path`."""
    if getattr(data_args, "dataset_mixture", None):
        return load_mixed_dataset(
            data_args.dataset_mixture, data_args.task, split, seed, rejects_dir, max_rows, weighted, log_dir
        )
    return load_split_dataset(data_args.dataset_path, data_args.task, split, rejects_dir, max_rows)
