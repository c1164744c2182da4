"""The real sys-scan output that ships beside the repository, used as ground truth."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

# What the scanner registers and how it scores a severity have one place each: the 5.0.0 spec and generator.
from secml_recipes.scan.spec_5_0_0 import SCANNERS
from secml_recipes.scan.v5_0_0 import SEVERITY_SCORE as SEVERITY_SCORES

__all__ = ["SCANNERS", "SEVERITY_SCORES", "fixtures_dir", "real_report_paths", "real_reports", "schema_v2"]

PACKAGED = Path(__file__).with_name("reference")


def fixtures_dir() -> Path:
    """$SECML_SYS_SCAN_FIXTURES, else `shared/fixtures/sys-scan` beside the checkout, else the copy in the package."""
    env = os.environ.get("SECML_SYS_SCAN_FIXTURES")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "sys-scan"
        if candidate.is_dir():
            return candidate
    return PACKAGED


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
