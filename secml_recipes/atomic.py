"""Files that are whole or absent: written to a temporary file beside the target, flushed to disk, then
renamed over it. A crash or a full disk leaves the previous file (or none), never a truncated one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; on any error the temporary file is removed and the error raised."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`write_atomic` for text (UTF-8)."""
    write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, **dumps_kwargs) -> None:
    """`obj` as JSON (indent 2 unless told otherwise), whole or absent."""
    dumps_kwargs.setdefault("indent", 2)
    write_text_atomic(path, json.dumps(obj, **dumps_kwargs))


class atomic_path:
    """`with atomic_path(target) as tmp:` a library writes `tmp` (a sibling with the same suffix), which replaces
    `target` only when the block ends without error; on an error the temporary file is removed."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        self.tmp = self.target.with_name(f".tmp-{os.getpid()}-{self.target.name}")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None and self.tmp.exists():
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
        return False
