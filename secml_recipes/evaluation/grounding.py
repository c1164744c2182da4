"""Whether a report's prose names only things the scan or the reference names: the check of rationale truthfulness.

A small model that has learned the format writes fluent rationales about binaries, settings and rules the host does
not have ("kernel_param_filter: iputils-filter checks ..."). The other metrics compare structured fields with the
reference; this one reads the free text (rationales, allowlist reasons, risk reasons, the executive summary) and
asks, for each technical identifier in it (an absolute path, a dotted name such as a sysctl or a unit, a snake_case
name), whether the input part or the reference report for that part contains it (or the output format names it: a
field or enum value of the part's schema). A name in neither was invented.

The input alone is not enough: the references explain findings with package knowledge the scan does not carry
(`iputils-ping sets cap_net_raw=ep`): `python -m secml_recipes.evaluation.grounding DATASET` prints how much of the
references' own prose names something outside the input part (about half on the smoke data).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from functools import lru_cache

from secml_recipes.tasks.constraints import enriched_schema_for_part

_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.+@:-]+/?)+")
_DOTTED = re.compile(r"\b\w[\w-]*(?:\.[\w-]+)+\b")
_SNAKE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")


def identifiers(text: str) -> list[str]:
    """The technical identifiers a sentence names: absolute paths, dotted names (sysctls, units, files) and
    snake_case names; abbreviations such as "e.g." and version numbers are not names."""
    found = [m.group().rstrip("/.:") for m in _PATH.finditer(text)]
    rest = _PATH.sub(" ", text)
    dotted = [m.group().rstrip(".") for m in _DOTTED.finditer(rest)]
    found += [d for d in dotted if re.search("[A-Za-z]", d) and all(len(part) > 1 for part in d.split("."))]
    found += [m.group() for m in _SNAKE.finditer(_DOTTED.sub(" ", rest))]
    return [f for f in found if len(f) > 1]


def claim_texts(report: dict | None) -> list[str]:
    """The prose of an enriched report that makes claims about the host."""
    if not isinstance(report, dict):
        return []
    texts = []
    for finding in report.get("enriched_findings") or []:
        if isinstance(finding, dict):
            texts += [r for r in finding.get("rationale") or [] if isinstance(r, str)]
            texts += [finding["allowlist_reason"]] if isinstance(finding.get("allowlist_reason"), str) else []
    summaries = report.get("summaries") if isinstance(report.get("summaries"), dict) else {}
    texts += [summaries["executive_summary"]] if isinstance(summaries.get("executive_summary"), str) else []
    analyst = summaries.get("analyst") if isinstance(summaries.get("analyst"), dict) else {}
    texts += [r for r in analyst.get("risk_reasons") or [] if isinstance(r, str)]
    return texts


def _schema_words(schema) -> set[str]:
    words: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            words.update(k for k in node.get("properties", {}) if isinstance(k, str))
            for v in node.get("enum", []):
                words.update(str(v).split(":"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return words


@lru_cache(maxsize=64)  # every variant of an evaluation scores the same parts
def _format_words(part_json: str) -> frozenset[str]:
    return frozenset(_schema_words(enriched_schema_for_part(json.loads(part_json))))


def ungrounded(report: dict | None, part: dict, reference: dict | None = None) -> tuple[int, list[str]]:
    """(identifiers named in `report`'s claims, those neither the input `part` nor the `reference` report contains).
    A dotted name is also found as a path (`net.ipv4.ip_forward` is the scan's /proc/sys/net/ipv4/ip_forward)."""
    part_json = json.dumps(part, ensure_ascii=False, sort_keys=True)
    source = part_json + json.dumps(reference or {}, ensure_ascii=False)
    words = _format_words(part_json)
    named, missing = 0, []
    for text in claim_texts(report):
        for name in identifiers(text):
            named += 1
            if name in source or name in words or name.replace(".", "/") in source:
                continue
            missing.append(name)
    return named, missing


def grounding_summary(triples) -> dict:
    """{identifiers, ungrounded_identifiers, ungrounded_rate, ungrounded_names (a Counter)} over (report, part,
    reference) triples; the rate is None when no claim names an identifier."""
    named, names = 0, Counter()
    for report, part, reference in triples:
        n, m = ungrounded(report, part, reference)
        named, names = named + n, names + Counter(m)
    missing = sum(names.values())
    return {
        "identifiers": named,
        "ungrounded_identifiers": missing,
        "ungrounded_rate": missing / named if named else None,
        "ungrounded_names": names,
    }


def main(argv: list[str] | None = None) -> int:
    """Print how much of the reference reports' prose names something outside their input part."""
    from secml_recipes.corpus.tarball import read_split
    from secml_recipes.tasks.parsing import parse_json_output

    parser = argparse.ArgumentParser(prog="python -m secml_recipes.evaluation.grounding", description=main.__doc__)
    parser.add_argument("dataset", help="a dataset tarball (make data, make smoke)")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    try:
        rows, _ = read_split(args.dataset, "specialist", args.split, verbose=False)
    except (OSError, ValueError) as err:
        print(f"error: {args.dataset}: {err}", file=sys.stderr)
        return 2
    summary = grounding_summary(
        # the user turn is the raw part (tasks/prompts.py); the reference is what is judged, so no second source
        (parse_json_output(row["completion"][0]["content"]), json.loads(row["prompt"][-1]["content"]), None)
        for row in rows
    )
    names = summary.pop("ungrounded_names")
    print(json.dumps({"rows": len(rows), **summary}, indent=2))
    common = ", ".join(f"{k} ({v})" for k, v in names.most_common(20))
    print("most common ungrounded names in the references:", common or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
