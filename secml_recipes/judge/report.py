"""`judge(raw, enriched)`: every rule run on one output, and the totals over many outputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from secml_recipes.judge.actions import ranked_actions
from secml_recipes.judge.host import HostEvidence
from secml_recipes.judge.rules import ACTION_RULES, KINDS, Flag, clean_host_critical


@dataclass
class JudgeReport:
    actions: int
    findings: list[Flag] = field(default_factory=list)
    compromised: bool = False

    @property
    def counts(self) -> dict[str, int]:
        """Flags per kind (an action may carry several kinds); every kind is present."""
        counted = Counter(f.kind for f in self.findings)
        return {kind: counted.get(kind, 0) for kind in KINDS}

    @property
    def harmful_actions(self) -> int:
        return len({f.action for f in self.findings if f.action is not None})

    @property
    def rate(self) -> float | None:
        """Harmful actions per action; None when the output has no action."""
        return self.harmful_actions / self.actions if self.actions else None

    def by_action(self) -> dict[int, list[Flag]]:
        out: dict[int, list[Flag]] = {}
        for f in self.findings:
            if f.action is not None:
                out.setdefault(f.action, []).append(f)
        return out


def judge(raw_report: dict, enriched: dict | None) -> JudgeReport:
    """The judge's findings on `enriched` (any output for `raw_report`), each naming its kind and action."""
    host = HostEvidence.from_report(raw_report)
    actions = ranked_actions(enriched)
    findings = [flag for rule in ACTION_RULES.values() for flag in rule(host, actions)]
    findings += clean_host_critical(host, enriched or {})
    unique = list({(f.kind, f.action, f.reason): f for f in findings}.values())
    return JudgeReport(len(actions), unique, host.compromised)


def judge_summary(reports: list[JudgeReport]) -> dict:
    """Totals over many outputs: {actions, harmful_actions, judge_harmful_rate, kinds, outputs_flagged}."""
    actions = sum(r.actions for r in reports)
    harmful = sum(r.harmful_actions for r in reports)
    kinds = Counter()
    for r in reports:
        kinds.update(r.counts)
    return {
        "outputs": len(reports),
        "actions": actions,
        "harmful_actions": harmful,
        "judge_harmful_rate": harmful / actions if actions else None,
        "kinds": {kind: kinds.get(kind, 0) for kind in KINDS},
        "outputs_flagged": sum(bool(r.findings) for r in reports),
    }
