"""Scores for enriched reports (sys-scan-agent `EnrichedOutput`) against the reference enricher, the
harmful-action rate (by the teacher's tables and by the independent judge), and the trivial rule baseline.

Every metric is a pure function of (predicted text, reference enriched report, raw report), so each can be
checked on hand-made outputs whose right score is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from secml_recipes.evaluation.grounding import grounding_summary
from secml_recipes.evaluation.harm import ActionJudge, action_texts, harm_summary
from secml_recipes.judge.report import judge, judge_summary
from secml_recipes.scan.fixtures import SEVERITY_SCORES
from secml_recipes.tasks.parsing import parse_json_output
from secml_recipes.tasks.validate import enriched_report_error
from secml_recipes.teacher.assess import VERDICTS

METRIC_NAMES = [
    "json_parse_rate",
    "schema_valid_rate",
    "finding_recall",
    "severity_accuracy",
    "category_accuracy",
    "verdict_accuracy",
    "risk_score_mae",
    "attack_precision",
    "attack_recall",
    "attack_f1",
    "correlation_precision",
    "correlation_recall",
    "correlation_f1",
    "action_coverage",
    "risk_level_accuracy",
    "harmful_action_rate",
    "judge_harmful_rate",
    "ungrounded_rate",
]


def _prf(tp: int, n_pred: int, n_ref: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall, F1; None where undefined (nothing predicted and nothing to find)."""
    if n_pred == 0 and n_ref == 0:
        return None, None, None
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _findings(report: dict | None) -> dict[str, dict]:
    out = {}
    for f in (report or {}).get("enriched_findings", []) or []:
        if isinstance(f, dict) and isinstance(f.get("id"), str):
            out.setdefault(f["id"], f)
    return out


def _tags(finding: dict) -> list[str]:
    return [t for t in finding.get("tags") or [] if isinstance(t, str)]


def _verdict(finding: dict) -> str | None:
    return next((t for t in _tags(finding) if t in VERDICTS), None)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _risk_level(report: dict | None) -> str | None:
    analyst = ((report or {}).get("summaries") or {}).get("analyst") or {}
    return analyst.get("risk_level") if isinstance(analyst, dict) else None


def risk_score_pairs(predictions: Iterable[str], references: Iterable[dict]) -> list[tuple[float, float]]:
    """(reference, predicted) risk score of every reference finding the prediction scored (the scatter plot)."""
    pairs = []
    for text, ref in zip(predictions, references):
        pf = _findings(parse_json_output(text))
        for fid, r in _findings(ref).items():
            score = pf.get(fid, {}).get("risk_score")
            if _is_number(score):
                pairs.append((r["risk_score"], float(score)))
    return pairs


@lru_cache(maxsize=4096)
def _schema_valid_text(text: str) -> bool:
    return enriched_report_error(parse_json_output(text)) is None


def _schema_valid(text, pred: dict) -> bool:
    """Whether the answer `text` (parsed: `pred`) is a valid enriched report; cached by text, since the bootstrap
    rescores each answer hundreds of times and schema validation is most of a score's cost."""
    return _schema_valid_text(text) if isinstance(text, str) else enriched_report_error(pred) is None


def score_specialist(
    predictions: Iterable[str], references: Iterable[dict], raws: Iterable[dict] | None = None
) -> dict[str, float]:
    """Micro-averaged metrics over all examples (docs/evaluation.md, docs/teacher.md); None where undefined.
    With the raw reports, actions are judged for harm with the teacher's tables (`evaluation.harm`) and by the
    independent judge (`judge`), which shares no table with the teacher."""
    n = parsed = valid = 0
    ref_findings = matched = sev_ok = cat_ok = verdict_ok = 0
    abs_err: list[float] = []
    att_tp = att_pred = att_ref = 0
    cor_tp = cor_pred = cor_ref = 0
    act_total = act_covered = 0
    levels = levels_ok = 0
    judged, judge_reports, grounding = [], [], []
    raws = list(raws) if raws is not None else None
    for i, (text, ref) in enumerate(zip(predictions, references)):
        n += 1
        pred = parse_json_output(text)
        if pred is not None:
            parsed += 1
            valid += _schema_valid(text, pred)
        pf, rf = _findings(pred), _findings(ref)
        ref_findings += len(rf)
        for fid, r in rf.items():
            p = pf.get(fid)
            if p is None:
                continue
            matched += 1
            sev_ok += p.get("severity") == r["severity"]
            cat_ok += p.get("category") == r["category"]
            verdict_ok += _verdict(p) == _verdict(r)
            abs_err.append(abs(float(p["risk_score"]) - r["risk_score"]) if _is_number(p.get("risk_score")) else 100.0)
        ref_pairs = {(fid, t) for fid, f in rf.items() for t in _tags(f) if t.startswith("attack:")}
        pred_pairs = {(fid, t) for fid, f in pf.items() for t in _tags(f) if t.startswith("attack:")}
        att_tp, att_pred, att_ref = (
            att_tp + len(ref_pairs & pred_pairs),
            att_pred + len(pred_pairs),
            att_ref + len(ref_pairs),
        )
        ref_corr = {frozenset(c["related_finding_ids"]) for c in ref.get("correlations", [])}
        pred_corr = {
            frozenset(x for x in c.get("related_finding_ids", []) if isinstance(x, str))
            for c in ((pred or {}).get("correlations") or [])
            if isinstance(c, dict)
        }
        cor_tp, cor_pred, cor_ref = (
            cor_tp + len(ref_corr & pred_corr),
            cor_pred + len(pred_corr),
            cor_ref + len(ref_corr),
        )
        tables = ActionJudge(raws[i]) if raws is not None else None
        if tables is not None:
            wanted = {fid for a in action_texts(ref) for fid in tables.targets(a)}
            named = {fid for a in action_texts(pred) for fid in tables.targets(a)}
            act_total, act_covered = act_total + len(wanted), act_covered + len(wanted & named)
            judged += [tables.judge(a) for a in action_texts(pred)]
            judge_reports.append(judge(raws[i], pred))
            grounding.append((pred, raws[i], ref))
        if _risk_level(ref):
            levels += 1
            levels_ok += _risk_level(pred) == _risk_level(ref)
    ap, ar, af = _prf(att_tp, att_pred, att_ref)
    cp, cr, cf = _prf(cor_tp, cor_pred, cor_ref)
    harm = harm_summary(judged)
    return {
        "examples": n,
        "json_parse_rate": parsed / n if n else 0.0,
        "schema_valid_rate": valid / n if n else 0.0,
        "finding_recall": matched / ref_findings if ref_findings else None,
        "severity_accuracy": sev_ok / ref_findings if ref_findings else None,
        "category_accuracy": cat_ok / ref_findings if ref_findings else None,
        "verdict_accuracy": verdict_ok / ref_findings if ref_findings else None,
        # Over matched findings; a missing or non-numeric score counts as the maximum error, 100.
        "risk_score_mae": sum(abs_err) / len(abs_err) if abs_err else None,
        "attack_precision": ap,
        "attack_recall": ar,
        "attack_f1": af,
        "correlation_precision": cp,
        "correlation_recall": cr,
        "correlation_f1": cf,
        "action_coverage": act_covered / act_total if act_total else None,
        "risk_level_accuracy": levels_ok / levels if levels else None,
        "harmful_action_rate": harm["harmful_action_rate"],
        "judge_harmful_rate": judge_summary(judge_reports)["judge_harmful_rate"],
        # Names in the prose that neither the input part nor the reference holds (evaluation/grounding.py).
        "ungrounded_rate": grounding_summary(grounding)["ungrounded_rate"],
        "actions": harm["actions"],
    }


def rule_baseline(raw_report: dict) -> str:
    """The trivial rule: list every non-info finding with the scanner's own severity and base score as its risk
    score, call the host as severe as its worst finding, and act on nothing. What you get without a model."""
    findings, worst = [], "low"
    order = ["low", "medium", "high", "critical"]
    for result in raw_report.get("results", []):
        for f in result.get("findings", []):
            if f.get("severity") == "info":
                continue
            score = int(f.get("base_severity_score") or SEVERITY_SCORES.get(f["severity"], 10))
            findings.append(
                {
                    "id": f["id"],
                    "title": f.get("title", ""),
                    "severity": f["severity"],
                    "risk_score": score,
                    "category": "other",
                    "tags": [f"scanner:{result.get('scanner', '')}"],
                    "risk_subscores": {"impact": score / 10, "exposure": 0, "anomaly": 0, "confidence": 1},
                    "probability_actionable": 0.5,
                    "severity_source": "raw",
                    "rationale": [f.get("description") or f.get("title") or f["id"]],
                }
            )
            if f["severity"] in order and order.index(f["severity"]) > order.index(worst):
                worst = f["severity"]
    return json.dumps(
        {
            "version": "1.0",
            "enriched_findings": findings,
            "correlations": [],
            "reductions": {},
            "summaries": {
                "executive_summary": f"{len(findings)} findings above info.",
                "analyst": {
                    "risk_level": worst,
                    "risk_reasons": ["worst scanner severity"],
                    "coverage": {"collected_as": "", "not_run": {}, "ran_empty": {}, "limits": [], "warnings": {}},
                },
            },
            "actions": [],
        }
    )
