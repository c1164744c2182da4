"""Refuse to start a large install on a disk that cannot hold it, in one line, before pip fills the disk.

Stdlib only: the Makefile calls it before any virtual environment exists.
`python -m secml_recipes.disk_check PATH GIB WHAT` exits 0 when PATH's disk has GIB GiB free, else prints what
is needed and how much is free, and exits 2.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def existing_parent(path: Path) -> Path:
    """The nearest folder of `path` that exists (the install target may not exist yet)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def shortfall(path: Path, need_gib: float) -> str | None:
    """Why `need_gib` GiB do not fit on `path`'s disk, or None when they do."""
    free = shutil.disk_usage(existing_parent(path)).free / 1024**3
    if free >= need_gib:
        return None
    return f"{free:.1f} GiB free on the disk of {path}, {need_gib:g} GiB needed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m secml_recipes.disk_check PATH GIB WHAT", file=sys.stderr)
        return 2
    path, need, what = Path(argv[0]), float(argv[1]), argv[2]
    problem = shortfall(path, need)
    if problem:
        print(
            f"error: not enough disk for {what}: {problem}. Free some space (or set TMPDIR and the clone on a "
            f"larger disk) and rerun the same command.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
