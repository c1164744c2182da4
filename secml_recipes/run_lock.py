"""One run per output folder: a lock file that names its holder, and a stale one taken over.

Two runs writing one `output_dir` would both report success while the last writer silently wins. The first process
of a run creates `.<output_dir name>.lock` beside the folder (outside it, so never uploaded with it; O_EXCL:
exactly one creator wins) holding its host, pid, the process' start time and the command; a second run refuses
with the holder's pid and start time. A lock whose process is gone (killed, or the machine rebooted) is taken over
and said: the folder's checkpoints then resume as usual. A lock held from another host cannot be checked from here
and is always respected.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

LOCK_SUFFIX = ".lock"
logger = logging.getLogger(__name__)


class RunLocked(RuntimeError):
    """output_dir is in use by another live run."""


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), which a reused pid does not share; None where
    /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    started = holder.get("proc_start")
    return started is None or _proc_start(pid) in (None, started)


def _read(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"


class OutputDirLock:
    """`with OutputDirLock(output_dir):` the run owns the folder; released on exit (a killed run leaves a stale lock
    that the next run takes over)."""

    def __init__(self, output_dir: str | os.PathLike):
        output_dir = Path(output_dir).absolute()
        self.output_dir, self.path = output_dir, output_dir.with_name(f".{output_dir.name}{LOCK_SUFFIX}")
        self.me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "proc_start": _proc_start(os.getpid()),
            "started": time.time(),
            "command": " ".join(sys.argv)[:500],
        }
        self.took_over: dict | None = None

    def acquire(self) -> OutputDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                local = holder.get("host") == self.me["host"]
                if holder and (not local or _alive(holder)):
                    raise RunLocked(
                        f"output_dir: {self.output_dir} is in use by another run ({describe(holder)}); wait for it "
                        f"to finish or give another --output_dir (if that run is gone, delete {self.path})"
                    ) from None
                # Stale (its process is gone) or unreadable: move it aside, then race for a fresh O_EXCL create.
                aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
                try:
                    os.replace(self.path, aside)
                    aside.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                self.took_over = holder or {"pid": "?"}
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self.me, fh)
            if self.took_over is not None:
                logger.warning(
                    "output_dir: took over the lock of a run that is no longer running (%s); resuming from its "
                    "checkpoints",
                    describe(self.took_over),
                )
            return self
        raise RunLocked(f"output_dir: {self.output_dir}: could not take its lock {self.path}")

    def release(self) -> None:
        if _read(self.path).get("pid") == self.me["pid"] and _read(self.path).get("host") == self.me["host"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
