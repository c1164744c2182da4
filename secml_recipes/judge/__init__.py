"""An independent judge of enriched sys-scan output: the actions a senior Linux incident responder would reject.

It shares no table or module with the teacher (`secml_recipes.teacher`): its knowledge comes from the
distribution's packages (stock units and set-id files), GTFOBins, the kernel's sysctl documentation and
systemd.exec(5), kept in `data/` with each file's source. `judge(raw, enriched)` works on any output, the
teacher's or a model's; `python -m secml_recipes.judge RAW ENRICHED` prints its table.
"""

from __future__ import annotations

import importlib

# The API loads the data files at import; `refresh` (which writes them) must import without them, so the package
# resolves these names on first use instead of importing `report` here.
_API = {"judge": "report", "judge_summary": "report", "JudgeReport": "report", "KINDS": "rules", "Flag": "rules"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
