"""The real sys-scan output that ships beside the repository, used as ground truth."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

SEVERITY_SCORES = {"info": 10, "low": 30, "medium": 50, "high": 70, "critical": 90, "error": 80}

SCANNERS = [
    "processes", "network", "kernel_params", "modules", "world_writable", "suid_sgid", "ioc", "mac",
    "mounts", "kernel_hardening", "systemd_units", "auditd", "containers", "integrity", "yara",
    "ebpf_exec_trace",
]


def fixtures_dir() -> Path:
    """`../shared/fixtures/sys-scan` beside the checkout, or $SECML_SYS_SCAN_FIXTURES."""
    env = os.environ.get("SECML_SYS_SCAN_FIXTURES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "fixtures" / "sys-scan"
        if candidate.is_dir():
            return candidate
        candidate = parent / "shared" / "fixtures" / "sys-scan"
        if candidate.is_dir():
            return candidate
    return Path("../shared/fixtures/sys-scan")


def schema_v2() -> dict:
    """The scanner's own report schema (schema-v2.json); a copy ships in the package as a fallback."""
    path = fixtures_dir() / "schema-v2.json"
    if not path.is_file():
        path = Path(__file__).with_name("schemas") / "sys-scan-schema-v2.json"
    return json.loads(path.read_text())


def real_report_paths() -> list[Path]:
    return sorted(fixtures_dir().glob("report-*.json"))


def real_reports() -> Iterator[dict]:
    for path in real_report_paths():
        yield json.loads(path.read_text())
