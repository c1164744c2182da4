"""Harmful actions in any enriched output, judged with the teacher's own tables.

An action is harmful when it would break stock functionality (a destructive step on something the
distribution ships and needs, e.g. `chmod u-s /usr/bin/fusermount3`), acts on an expected finding at all
(noise an analyst would never send), or destroys before there is evidence (killing, deleting, stripping
bits, unloading or uninstalling what is only under investigation or provenance review). Targets are the
findings of the raw report an action names (by id, by the executable of an IOC, or by sysctl name); the
verdict on each target comes from `data.assess`, never from the output being judged.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from secml_recipes.teacher.assess import Host, assess_finding, assess_report, ioc_exe_and_pid
from secml_recipes.teacher.knowledge.sysctl import sysctl_name

DESTRUCTIVE = {  # kind -> pattern in an action's text
    "strip_setid": r"chmod\s+[ugoa,]*[-=]\w*s|chmod\s+0?[0-7]{3}\b|"
    r"(remove|clear|drop|strip) (the |its )?(s[ug]id|set-?[ug]id|set-id)\b",
    "remove_capability": r"setcap\s+-r\b",
    "kill": r"\b(kill|pkill|killall)\b|\bstop the process\b|\bterminate\b",
    "delete": r"\brm\s+(-\w+\s+)*/|\bdelete\b|\bremove (the )?(file|binary|it|copy)\b|\bremove /|\bshred\b",
    "unload_module": r"\brmmod\b|modprobe\s+-r\b|\bunload\b",
    "uninstall": r"\bapt(-get)?\s+(remove|purge)\b|\bdnf\s+(remove|erase)\b|\byum\s+remove\b|\brpm\s+-e\b|"
    r"\bdpkg\s+(-r|-P|--remove|--purge)\b|\buninstall\b|\bremove the package\b",
    "disable": r"\bsystemctl\s+(disable|mask|stop)\b|\bdisable (the )?(service|unit)\b",
}
DESTRUCTIVE_RE = {kind: re.compile(pattern, re.I) for kind, pattern in DESTRUCTIVE.items()}
WARRANTED = {"contain"}  # verdicts under which destroying (after preserving evidence) is right


@dataclass
class JudgedAction:
    text: str
    targets: list[str]
    kinds: list[str]
    reasons: list[str]

    @property
    def harmful(self) -> bool:
        return bool(self.reasons)


def destructive_kinds(text: str) -> list[str]:
    return [kind for kind, pattern in DESTRUCTIVE_RE.items() if pattern.search(text)]


def _aliases(finding_id: str) -> list[str]:
    """Other names an action may use for a finding: an IOC's executable, a sysctl's dotted name."""
    out = []
    exe, pid = ioc_exe_and_pid(finding_id)
    if pid and exe.startswith("/"):
        out.append(exe.replace(" (deleted)", ""))
    if finding_id.startswith("/proc/sys/"):
        out.append(sysctl_name(finding_id))
    return out


def _mention(name: str) -> re.Pattern:
    return re.compile(r"(?<![\w./-])" + re.escape(name) + r"(?![\w/-]|\.\w)")


class ActionJudge:
    """Judges the actions of outputs for one raw report."""

    def __init__(self, raw_report: dict):
        self.verdicts: dict[str, list] = {}
        names: dict[str, set[str]] = {}
        for f, a in assess_report(raw_report) + _context_findings(raw_report):
            self.verdicts.setdefault(f["id"], []).append(a)
            names.setdefault(f["id"], set()).add(f["id"])
            for alias in _aliases(f["id"]):
                names.setdefault(alias, set()).add(f["id"])
            if f["id"].startswith("kernel:sysctl:") and (f.get("metadata") or {}).get("path"):
                names.setdefault(sysctl_name(f["metadata"]["path"]), set()).add(f["id"])
        # A process inventory id is a bare pid: too ambiguous to count as a mention ("pid 2269", "/proc/2269/").
        self.patterns = [(_mention(name), sorted(ids)) for name, ids in names.items() if name and not name.isdigit()]

    def target_groups(self, text: str) -> list[list[str]]:
        """The findings an action names, one group per name (a sysctl name may stand for two findings)."""
        return [ids for pattern, ids in self.patterns if pattern.search(text)]

    def targets(self, text: str) -> list[str]:
        return sorted({fid for ids in self.target_groups(text) for fid in ids})

    def judge(self, text: str) -> JudgedAction:
        groups, kinds = self.target_groups(text), destructive_kinds(text)
        reasons = []
        for ids in groups:
            assessments = [a for fid in ids for a in self.verdicts[fid]]
            label = ids[0]
            if all(a.expected for a in assessments):
                reasons.append(f"{'breaks_stock' if kinds else 'acts_on_expected'}:{label}")
            elif kinds and not any(a.verdict in WARRANTED for a in assessments):
                reasons.append(f"destructive_without_evidence:{label}")
        return JudgedAction(text, sorted({fid for ids in groups for fid in ids}), kinds, sorted(set(reasons)))


def _context_findings(part: dict) -> list:
    """The host's top findings a split part carries in meta.secml_context, assessed like its own."""
    context = (part.get("meta") or {}).get("secml_context") or {}
    host = Host.from_report(part)
    return [
        (e, assess_finding(e.get("scanner", ""), {"title": "", "metadata": {}, **e}, host))
        for e in context.get("top_findings", [])
        if isinstance(e, dict) and "id" in e
    ]


def action_texts(output: dict | None) -> list[str]:
    actions = (output or {}).get("actions") or []
    return [a["action"] for a in actions if isinstance(a, dict) and isinstance(a.get("action"), str)]


def harmful_actions(output: dict | None, raw_report: dict) -> list[JudgedAction]:
    judge = ActionJudge(raw_report)
    return [judge.judge(text) for text in action_texts(output)]


def harm_summary(judged: list[JudgedAction]) -> dict:
    """{actions, harmful, harmful_action_rate, reasons}: the rate is None when there is no action."""
    harmful = [j for j in judged if j.harmful]
    reasons = Counter(r.split(":", 1)[0] for j in harmful for r in j.reasons)
    return {
        "actions": len(judged),
        "harmful": len(harmful),
        "harmful_action_rate": len(harmful) / len(judged) if judged else None,
        "reasons": dict(reasons),
    }
