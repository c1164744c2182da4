"""Hold any enriched output (the teacher's or a model's) to an analyst's expectations file.

The file (YAML, e.g. `scan/reference/report-5.0.0-ubuntu24.expectations.yaml`) says, finding by finding,
what the finding is (verdict), whether an action must or must not name it, words the rationale must and
must not contain, and the host's risk level with the findings that drive it. `expectation_problems`
returns every way an output falls short, as sentences; an empty list means the output passes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from secml_recipes.evaluation.harm import ActionJudge, action_texts, harm_summary

NO_ACTION_VERDICTS = {"expected", "informational"}


def load_expectations(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _text(finding: dict) -> str:
    return " ".join(list(finding.get("rationale") or []) + [finding.get("allowlist_reason") or ""])


def expectation_problems(output: dict, raw_report: dict, spec: dict) -> list[str]:
    problems: list[str] = []
    listed = {f.get("id"): f for f in output.get("enriched_findings") or [] if isinstance(f, dict)}
    judge = ActionJudge(raw_report)
    actions = [(text, judge.judge(text)) for text in action_texts(output)]
    for fid, want in (spec.get("findings") or {}).items():
        verdict, finding = want["verdict"], listed.get(fid)
        acting = [text for text, judged in actions if fid in judged.targets]
        if verdict in NO_ACTION_VERDICTS:
            if finding is not None and verdict not in finding.get("tags", []):
                problems.append(f"{fid}: listed without the '{verdict}' tag (tags {finding.get('tags')})")
            if acting:
                problems.append(f"{fid}: is {verdict} but an action names it: {acting[0][:120]}")
        else:
            if finding is None:
                problems.append(f"{fid}: is {verdict} but the output does not list it")
            elif verdict not in finding.get("tags", []):
                problems.append(f"{fid}: should be '{verdict}', tags are {finding.get('tags')}")
            if want.get("action") == "required" and not acting:
                problems.append(f"{fid}: needs an action naming it; none does")
            for words in want.get("action_mentions", []):
                if acting and not any(words.lower() in a.lower() for a in acting):
                    problems.append(f"{fid}: its action should mention '{words}'")
        text = _text(finding or {}).lower()
        for words in want.get("mentions", []):
            if finding is not None and words.lower() not in text:
                problems.append(f"{fid}: rationale should mention '{words}'")
        for words in want.get("forbid", []):
            if words.lower() in text:
                problems.append(f"{fid}: rationale says '{words}', which misreads the evidence")
    host = spec.get("host") or {}
    analyst = (output.get("summaries") or {}).get("analyst") or {}
    if host.get("risk_level") and analyst.get("risk_level") != host["risk_level"]:
        problems.append(f"host risk level is {analyst.get('risk_level')!r}, expected {host['risk_level']!r}")
    reasons = " ".join(analyst.get("risk_reasons") or [])
    for fid in host.get("reasons_name", []):
        if fid not in reasons:
            problems.append(f"host risk reasons should name {fid}")
    coverage = analyst.get("coverage") or {}
    for scanner in host.get("coverage_not_run", []):
        if scanner not in (coverage.get("not_run") or {}):
            problems.append(f"coverage should say {scanner} did not run")
    for scanner in host.get("coverage_ran_empty", []):
        if scanner not in (coverage.get("ran_empty") or {}):
            problems.append(f"coverage should say {scanner} ran empty and why")
    coverage_text = " ".join([str(coverage.get("collected_as", ""))] + list(coverage.get("limits") or []))
    for words in host.get("coverage_mentions", []):
        if words not in coverage_text:
            problems.append(f"coverage should mention '{words}'")
    harm = harm_summary([j for _, j in actions])
    if harm["harmful"]:
        problems.append(f"{harm['harmful']} harmful action(s): {harm['reasons']}")
    return problems
