"""Checkpoints that resume, or are set aside: what makes `checkpoint-N` complete, and the newest complete one.

A process killed (or a disk filled) while the Trainer writes `checkpoint-N` leaves a folder without
`trainer_state.json`, or with a truncated `optimizer.pt`; transformers' `get_last_checkpoint` would pick it and every
rerun would die loading it. `newest_complete_checkpoint` checks each candidate, newest first, against the table
below (every file present, parseable, and as long as its own header says) without loading any tensor, moves an
incomplete one aside as `incomplete-checkpoint-N` (the Trainer's rotation and `get_last_checkpoint` never see it)
and returns the newest complete one, so the run resumes from there and says so in one line.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
INCOMPLETE_PREFIX = "incomplete-"


class CheckpointError(ValueError):
    """A checkpoint named by the recipe cannot resume the run; the message says which file and why."""


# --- file checks: each returns why the file cannot be loaded, or None -------------------------------------------


def _json_state(path: Path) -> str | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path.name} is not readable JSON ({type(err).__name__})"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return f"{path.name} has no global_step"
    return None


def _safetensors(path: Path) -> str | None:
    """The header's length, the header, and a file exactly as long as the tensors the header lists."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                return f"{path.name} is truncated (header of {n} bytes in a {size}-byte file)"
            header = json.loads(fh.read(n))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path.name} has no readable safetensors header ({type(err).__name__})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size != 8 + n + end:
        return f"{path.name} is {size} bytes, its header describes {8 + n + end}"
    return None


def _torch_zip(path: Path) -> str | None:
    """torch.save's zip container: the central directory is written last, and every member must fit the file."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.header_offset + info.compress_size > size:
                    return f"{path.name} is truncated (member {info.filename} runs past the end)"
    except (OSError, zipfile.BadZipFile) as err:
        return f"{path.name} is not a complete torch file ({type(err).__name__})"
    return None


def _sharded_safetensors(index: Path) -> str | None:
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{index.name} is not a readable weight index"
    for name in sorted(shards):
        shard = index.with_name(name)
        problem = _safetensors(shard) if shard.is_file() else f"{name} (listed in {index.name}) is missing"
        if problem:
            return problem
    return None


def _non_empty_dir(path: Path) -> str | None:
    return None if any(path.iterdir()) else f"{path.name}/ is empty"


CHECKS = {
    ".safetensors": _safetensors,
    ".json": _json_state,
    ".pt": _torch_zip,
    ".pth": _torch_zip,
    ".bin": _torch_zip,
    "": _non_empty_dir,
}
# (what, glob patterns: the first that matches decides, required unless the run saves only the model)
PARTS = (
    ("trainer state", ("trainer_state.json",), True),
    (
        "model weights",
        (
            "model.safetensors.index.json",
            "model.safetensors",
            "adapter_model.safetensors",
            "pytorch_model.bin",
            "pytorch_model_fsdp_0",
            "pytorch_model_fsdp*.bin",
        ),
        True,
    ),
    ("optimizer state", ("optimizer.pt", "optimizer_0", "global_step*"), False),
    ("scheduler state", ("scheduler.pt", "global_step*"), False),
    ("RNG state", ("rng_state.pth", "rng_state_*.pth"), False),
)


def _check_file(path: Path) -> str | None:
    if path.name.endswith(".index.json"):
        return _sharded_safetensors(path)
    if path.is_dir():
        return _non_empty_dir(path)
    check = CHECKS.get(path.suffix)
    return check(path) if check else None


def checkpoint_problem(folder: str | Path, model_only: bool = False) -> str | None:
    """Why `folder` cannot resume a run (the first missing or truncated part), or None when it is complete."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    for what, patterns, always in PARTS:
        if model_only and not always:
            continue
        found = next((sorted(folder.glob(p)) for p in patterns if any(folder.glob(p))), [])
        if not found:
            return f"{what} missing ({patterns[0]})"
        for path in found:
            problem = _check_file(path)
            if problem:
                return problem
    return None


@dataclass
class Resume:
    """Where a run resumes (None: from scratch) and the incomplete checkpoints set aside on the way."""

    checkpoint: Path | None
    set_aside: list[tuple[str, str, Path]]  # (checkpoint name, why incomplete, where it was moved)

    def message(self) -> str | None:
        """One line when anything was set aside; None otherwise."""
        if not self.set_aside:
            return None
        skipped = "; ".join(
            f"{name} is incomplete ({why}), moved to {moved.name}" for name, why, moved in self.set_aside
        )
        target = f"resuming from {self.checkpoint.name}" if self.checkpoint else "no complete checkpoint: starting over"
        return f"{skipped}; {target}"


def checkpoints_newest_first(output_dir: str | Path) -> list[Path]:
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def newest_complete_checkpoint(output_dir: str | Path, model_only: bool = False, set_aside: bool = True) -> Resume:
    """The newest complete `checkpoint-N` in `output_dir`; newer incomplete ones are renamed
    `incomplete-checkpoint-N` (kept for inspection, invisible to the Trainer) unless `set_aside` is False."""
    moved: list[tuple[str, str, Path]] = []
    for folder in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(folder, model_only)
        if problem is None:
            return Resume(folder, moved)
        target = folder.with_name(INCOMPLETE_PREFIX + folder.name)
        if set_aside:
            suffix = 1
            while target.exists():
                target, suffix = folder.with_name(f"{INCOMPLETE_PREFIX}{folder.name}.{suffix}"), suffix + 1
            folder.rename(target)
        moved.append((folder.name, problem, target))
    return Resume(None, moved)


def require_complete(folder: str | Path, model_only: bool = False) -> None:
    """A checkpoint the recipe names (`resume_from_checkpoint`) must be complete: it is never replaced silently."""
    problem = checkpoint_problem(folder, model_only)
    if problem:
        raise CheckpointError(
            f"resume_from_checkpoint: {folder} cannot resume the run: {problem}; name a complete checkpoint-N, or "
            "remove the key to resume from the newest complete one in output_dir"
        )
