"""A full disk or an unreachable Hub as one line that says what happened and what to do, never a traceback.

`describe_environment_error(err)` recognises, anywhere in an exception's chain: a full disk or quota (OSError
ENOSPC/EDQUOT, and torch's `[enforce fail at inline_container.cc]` / `PytorchStreamWriter failed` that a full
disk becomes inside `torch.save`), and a network failure (connection refused or reset, DNS, timeouts, the Hub's
5xx answers, huggingface_hub's offline mode). The patterns are a table; anything else returns None and is raised
as it is (a bug must stay visible).
"""

from __future__ import annotations

import errno
import shutil
import socket

DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}
# Messages torch and others give a full disk without its errno.
DISK_MESSAGES = ("inline_container.cc", "PytorchStreamWriter failed", "No space left on device", "file write failed")
NETWORK_TYPES = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "ConnectError",
    "TimeoutException",
    "OfflineModeIsEnabled",
    "MaxRetryError",
    "NewConnectionError",
    "RemoteDisconnected",
)


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _is_network(err: BaseException) -> bool:
    if isinstance(err, (ConnectionError, socket.gaierror, socket.timeout, TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & set(NETWORK_TYPES):
        return True
    response = getattr(err, "response", None)  # huggingface_hub's HfHubHTTPError: a server that failed
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and status >= 500


def describe_environment_error(err: BaseException) -> tuple[str, str] | None:
    """("disk" | "network", what happened) for an environment failure in `err`'s chain, else None."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            where = f" writing {e.filename}" if getattr(e, "filename", None) else ""
            return "disk", f"{DISK_ERRNOS[e.errno]}{where}"
        if any(m in str(e) for m in DISK_MESSAGES) and not _is_network(e):
            return "disk", "the disk is full (torch could not finish writing a file)"
    for e in _chain(err):
        if _is_network(e):
            reason = " ".join(str(e).split())[:160] or type(e).__name__
            return "network", f"the network or the Hugging Face Hub is unreachable ({type(e).__name__}: {reason})"
    return None


def free_space(path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1024**3:.1f} GiB free"
    except OSError:
        return "free space unknown"
