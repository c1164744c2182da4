"""Content fingerprints of files and folders: what the pipeline compares to decide whether a stage's output is up to
date, and what names a cached conversion of a model folder."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint_path(path: Path) -> str:
    """Content hash of a file, or of a folder's small files plus every file's name and size."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            skip = ".secml_stage.json" in p.name or "checkpoint-" in str(p) or "__pycache__" in p.parts
            if p.is_file() and not skip:
                h.update(f"{p.relative_to(path)}:{p.stat().st_size}".encode())
                if p.stat().st_size < 1_000_000:
                    h.update(p.read_bytes())
    return h.hexdigest()
