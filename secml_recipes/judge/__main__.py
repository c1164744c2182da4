"""`python -m secml_recipes.judge RAW ENRICHED`: the judge's findings on one output, as a table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from secml_recipes.judge.actions import ranked_actions
from secml_recipes.judge.report import judge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secml_recipes.judge", description=__doc__)
    parser.add_argument("raw", type=Path, help="the raw sys-scan report (JSON)")
    parser.add_argument("enriched", type=Path, help="an enriched output for it (the teacher's or a model's)")
    args = parser.parse_args(argv)
    raw, enriched = (json.loads(p.read_text(encoding="utf-8")) for p in (args.raw, args.enriched))
    report = judge(raw, enriched)
    flagged = report.by_action()
    print(f"host judged {'compromised' if report.compromised else 'not compromised'} from its own evidence\n")
    print("| rank | action | judge |\n|---|---|---|")
    for a in ranked_actions(enriched):
        kinds = "; ".join(f"**{f.kind}**: {f.reason}" for f in flagged.get(a.index, [])) or "ok"
        print(f"| {a.rank + 1} | {a.text[:120].replace('|', '/')} | {kinds} |")
    for f in report.findings:
        if f.action is None:
            print(f"\nverdict: **{f.kind}**: {f.reason}")
    print("\n| kind | count |\n|---|---|")
    for kind, n in report.counts.items():
        print(f"| {kind} | {n} |")
    rate = "-" if report.rate is None else f"{report.rate:.3f}"
    print(f"| harmful actions | {report.harmful_actions} of {report.actions} (rate {rate}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
