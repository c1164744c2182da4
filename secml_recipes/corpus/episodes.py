"""Agentic tool episodes for the generalist, in Hugging Face `messages` + `tools` form, that reason from
evidence.

An episode investigates one target (a set-id binary, an IOC process, a world-writable file, what is new
since the last scan, ...) picked anywhere in the report. Which tool comes next is decided by `RULES`
(data/next_calls.yaml) from what the last result said: a socket leads to the remote end, a parent that does
not fit to the unit or cron entry behind it, a deleted executable to its package and to what changed with
it, a file no package owns to the files written with it; a hash that matches the package database ends that
line of inquiry. Whether a result mattered is measured while building: the host's answers about other
targets are tried in its place, and a different next call marks a branch point. The conclusion comes from
`CONCLUSIONS`, a table over the same evidence (what the tools returned, what the process did), never from
the reference enricher. Kinds: no call (triage), one target followed where the evidence leads, parallel
calls, tool errors with recovery, baseline drift, and adversarial scans whose data addresses the
analyst ("IGNORE PREVIOUS INSTRUCTIONS ..."), which are reported as tampering and not obeyed.

Tool-call `arguments` are JSON strings and `tools` a JSON string, so Arrow never merges the differing
argument shapes of different tools into one struct full of nulls. The rows are family-agnostic (OpenAI
style `tool_calls`); chat templates render them per model family.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from secml_recipes.knowledge_files import STR, KnowledgeFileError, load_table, mapping, record, seq
from secml_recipes.scan.v5_0_0 import IOC_DIRS, IOC_NAMES, SEVERITY_SCORE
from secml_recipes.tasks.behaviours import INJECTIONS, SAMPLES
from secml_recipes.tasks.prompts import GENERALIST_SYSTEM_PROMPT, scan_digest
from secml_recipes.tasks.tools import TOOL_NAMES, TOOL_SCHEMAS, ScanEnvironment, ioc_subject, tool_result_text
from secml_recipes.teacher.assess import Host, ioc_exe_and_pid, ioc_signals
from secml_recipes.teacher.enrich import build_enrichment
from secml_recipes.teacher.knowledge.autostart import autostart_file
from secml_recipes.teacher.knowledge.ioc import (
    INTERPRETERS,
    SCRATCH_ROOTS,
    hidden_component,
    injection_text,
    script_path,
)
from secml_recipes.teacher.knowledge.privileged import (
    bit_phrase,
    shell_escape,
    stock_capability,
    stock_in_any_family,
    stock_privileged,
    third_party,
)

EPISODE_KINDS = [
    "triage",
    "privileged_binary",
    "ioc_investigation",
    "adversarial",
    "parallel_check",
    "tool_error",
    "baseline_drift",
    "world_writable",
]
FIRST_KINDS = ["adversarial", "ioc_investigation"]  # a scan that offers them always gets them
KIND_WEIGHTS = {
    "triage": 1.0,
    "privileged_binary": 2.0,
    "parallel_check": 1.2,
    "tool_error": 1.0,
    "baseline_drift": 1.0,
    "world_writable": 1.0,
}
INJECTION_RATE = 0.4
BEHAVIOUR_RATE = 0.35  # hosts that get one behaviour sample (tasks/data/behaviours.yaml) planted
UNUSUAL_WEIGHT = 6.0  # how much likelier a privileged-binary question is about a non-stock binary than a stock one
USER_APP_RATE = 0.35
USER_APPS = [  # executable under the user's home, command line: what 5.0.0's IOC scanner flags on dev machines
    (
        "/home/{user}/.vscode-server/bin/{build}/node",
        "/home/{user}/.vscode-server/bin/{build}/node /home/{user}/.vscode-server/bin/{build}/out/server-main.js",
    ),
    (
        "/home/{user}/.local/share/JetBrains/Toolbox/bin/jetbrains-toolbox",
        "/home/{user}/.local/share/JetBrains/Toolbox/bin/jetbrains-toolbox --minimize",
    ),
    ("/home/{user}/miniconda3/bin/python3.11", "/home/{user}/miniconda3/bin/python3.11 -m jupyter lab --no-browser"),
    ("/home/{user}/.cargo/bin/rust-analyzer", "/home/{user}/.cargo/bin/rust-analyzer"),
    (
        "/home/{user}/.nvm/versions/node/v20.17.0/bin/node",
        "node /home/{user}/.nvm/versions/node/v20.17.0/bin/npm run dev",
    ),
]


# -- scans with attacker-controlled text and user-installed programs ---------------------------------------


def ioc_finding(exe: str, pid: int, argv0: str, environment: bool = False) -> dict | None:
    """An IOC finding exactly as IOCScanner.cpp writes it (`exe` is the /proc/<pid>/exe link, " (deleted)"
    included): `command` is argv[0] (127 characters), pattern_match when argv[0] holds one of its names or
    scratch paths, severity from the first flag that fires, metadata strings; None when no flag fires."""
    flags = {
        "pattern_match": any(n in argv0 for n in IOC_NAMES + IOC_DIRS),
        "deleted_executable": "(deleted)" in exe,
        "world_writable_executable": exe.startswith(IOC_DIRS),
        "environment_issue": environment,
    }
    if not any(flags.values()):
        return None
    severity, kind = next(
        (sev, kind)
        for flag, sev, kind in (
            ("deleted_executable", "critical", "deleted executable"),
            ("world_writable_executable", "high", "world-writable executable"),
            ("environment_issue", "medium", "suspicious environment"),
            ("pattern_match", "low", "suspicious patterns"),
        )
        if flags[flag]
    )
    metadata = {"command": argv0[:127], "pid": str(pid), **{k: "true" for k, on in flags.items() if on}}
    return {
        "base_severity_score": str(SEVERITY_SCORE[severity]),
        "description": f"Process with {kind}: {exe}",
        "id": f"{exe}:{pid}",
        "metadata": metadata,
        "severity": severity,
        "title": "Process IOC Detected",
    }


def plant_processes(report: dict, seed: int) -> dict:
    """A copy of `report` with processes sys-scan 5.0.0's IOC scanner would report added for some hosts: a
    script run from world-writable space whose process title (rewritten as one string, as setproctitle does)
    addresses an AI analyst (about 40% of hosts without one already), and a developer tool running from the
    user's home, of which 5.0.0 sees argv[0] only (about 35%), and a program whose behaviour, not its name,
    tells what it is (`tasks/data/behaviours.yaml`, about 35%; reported only where one of 5.0.0's flags fires).
    The episodes' scans (stored beside them in the corpus) are these copies; the specialist rows keep the
    report as is."""
    rng = random.Random(f"plant:{seed}:{report.get('meta', {}).get('hostname')}")
    out = json.loads(json.dumps(report))
    result = next((r for r in out.get("results", []) if r.get("scanner") == "ioc"), None)
    if result is None:
        return report
    added = []
    has_injection = any(injection_text((f.get("metadata") or {}).get("command", "")) for f in result["findings"])
    if not has_injection and rng.random() < INJECTION_RATE:
        exe = rng.choice(["/usr/bin/python3.12", "/usr/bin/bash", "/usr/bin/perl"])
        script = rng.choice(
            ["/tmp/.cache/sync.py", "/var/tmp/.s/report.sh", "/dev/shm/agent.pl", "/tmp/update-check.py"]
        )
        command = f"{exe.rsplit('/', 1)[-1]} {script} --note '{rng.choice(INJECTIONS)}'"
        added.append(ioc_finding(exe, rng.randint(2000, 60000), command))
    if rng.random() < USER_APP_RATE:
        meta = out.get("meta", {})
        user = (
            meta.get("user")
            if str(meta.get("euid")) != "0" and meta.get("user")
            else rng.choice(["dev", "alice", "ops"])
        )
        exe, command = rng.choice(USER_APPS)
        build = f"{rng.getrandbits(160):040x}"
        added.append(
            ioc_finding(
                exe.format(user=user, build=build),
                rng.randint(2000, 60000),
                command.format(user=user, build=build).split(" ")[0],
            )
        )
    if rng.random() < BEHAVIOUR_RATE:
        sample = rng.choice(SAMPLES)
        meta = out.get("meta", {})
        user = meta.get("user") if str(meta.get("euid")) != "0" and meta.get("user") else rng.choice(["dev", "ops"])
        sample = sample.filled(f"/home/{user}", user)
        finding = ioc_finding(
            sample.exe + (" (deleted)" if sample.deleted else ""),
            rng.randint(2000, 60000),
            sample.argv0,
            environment=bool(sample.loader),
        )
        if finding is not None:  # sys-scan 5.0.0 reports it
            added.append(finding)
    return add_ioc_findings(report, added) if added else report


def add_ioc_findings(report: dict, added: list[dict]) -> dict:
    """A copy of `report` with these IOC findings in its ioc result, counts and summary updated."""
    out = json.loads(json.dumps(report))
    result = next(r for r in out["results"] if r.get("scanner") == "ioc")
    result["findings"] = sorted(result["findings"] + added, key=lambda f: f["id"])
    result["finding_count"] = len(result["findings"])
    summary = out.get("summary", {})
    for f in added:
        for key in ("severity_counts", "severity_counts_emitted"):
            if isinstance(summary.get(key), dict):
                summary[key][f["severity"]] = summary[key].get(f["severity"], 0) + 1
        for key in ("finding_count_total", "finding_count_emitted"):
            if isinstance(summary.get(key), int):
                summary[key] += 1
    return out


# -- the scan digest the analyst pastes ------------------------------------------------------------------


# -- evidence and the step table -------------------------------------------------------------------------


@dataclass
class Evidence:
    """What the tools said about one target so far (results about other files, such as a unit or cron file, are
    kept apart under `others`)."""

    path: str | None = None
    pid: int | None = None
    finding_id: str = ""
    scanner: str = ""  # the scanner of the finding under investigation
    package: dict | None = None
    hash: dict | None = None
    stat: dict | None = None
    reputation: dict | None = None
    process: dict | None = None
    baseline: dict | None = None
    related: dict | None = None
    technique: dict | None = None
    origin: dict | None = None
    connection: dict | None = None
    nearby: dict | None = None
    others: dict = field(default_factory=dict)  # path -> tool -> result, for files other than the target
    injected: str | None = None
    called: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # "tool json-arguments", to never repeat a call
    last: str = ""

    @property
    def mismatch(self) -> bool:
        return (self.package or {}).get("verify", "ok") != "ok" or (self.hash or {}).get("matches_package") is False

    @property
    def unowned(self) -> bool:
        return self.package is not None and self.package.get("owned_by") is None

    @property
    def vendor(self) -> bool:
        return "vendor repository" in str((self.package or {}).get("origin", ""))

    @property
    def rep(self) -> str:
        return (self.reputation or {}).get("verdict", "")

    @property
    def deleted(self) -> bool:
        return "deleted" in str((self.hash or {}).get("error", "")) or "(deleted)" in str(
            (self.process or {}).get("exe", "")
        )

    @property
    def gone(self) -> bool:
        return "error" in (self.process or {})

    @property
    def exe(self) -> str:
        return str((self.process or {}).get("exe", "")).replace(" (deleted)", "")


def absorb(e: Evidence, tool: str, args: dict, result: dict) -> None:
    """Record a tool result: about the target it fills the target's field, about another file it goes under
    `others`; a process names the file an IOC is about."""
    e.called.append(tool)
    e.calls.append(f"{tool} {json.dumps(args, sort_keys=True)}")
    e.last = tool
    path = args.get("path")
    if path is not None and e.path is not None and path != e.path and not (e.deleted and path == e.exe):
        e.others.setdefault(path, {})[tool] = result
        return
    setattr(e, RESULT_FIELD[tool], result)
    if tool == "check_process_details" and "error" not in result:
        e.injected = e.injected or injection_text(result.get("cmdline", ""))
        if e.path is None:
            e.path = ioc_subject(result["exe"], result.get("cmdline", ""), result.get("loader_environment"))


def _sha(e: Evidence) -> str | None:
    return (e.hash or {}).get("sha256")


def _remotes(e: Evidence) -> list[str]:
    return [s.rsplit("-> ", 1)[1] for s in (e.process or {}).get("sockets") or [] if "-> " in s]


PRIVATE_NETS = ("10.", "192.168.", "172.16.", "127.")


def _odd_port(e: Evidence) -> bool:
    """The process talks to a remote port no common service uses (a miner pool, a beacon)."""
    return any(
        r.rsplit(":", 1)[-1] not in ("443", "80", "53", "22", "123") and not r.startswith(PRIVATE_NETS)
        for r in _remotes(e)
    )


def _family_technique(name: str) -> str | None:
    for needle, technique in (
        ("CoinMiner", "T1496"),
        ("ReverseShell", "T1059.004"),
        ("TrojanizedSSHD", "T1554"),
        ("Sliver", "T1071"),
        ("ProcessHider", "T1574.006"),
        ("Rootkit", "T1014"),
        ("SuidShell", "T1548.001"),
    ):
        if needle in name:
            return technique
    return None


WEB_SERVERS = ("apache2", "httpd", "nginx", "php-fpm", "lighttpd", "caddy")
SHELL_PARENTS = ("bash", "sh -c", "/usr/sbin/cron", "cron -f")
# Files that hook every process or every login: one changed alongside a program no package owns is persistence.
LOADER_AND_LOGIN_HOOKS = ("/etc/ld.so.preload", "/etc/crontab", "/etc/cron.d/", "/etc/profile", "/.profile", "/.bashrc")


def _origin_file(e: Evidence) -> str | None:
    o = e.origin or {}
    return o.get("unit_file") or o.get("cron_file") or o.get("profile")


def _origin_file_suspect(e: Evidence) -> bool:
    """The launcher is a file no package ships, or a package's file that no longer verifies."""
    answer = e.others.get(_origin_file(e) or "", {}).get("query_package_manager") or {}
    return answer.get("owned_by") is None or answer.get("verify", "ok") != "ok"


def _nearby_files(e: Evidence) -> list[dict]:
    rows = list((e.nearby or {}).get("files") or [])
    for results in e.others.values():
        rows += (results.get("list_files_changed_near") or {}).get("files") or []
    return rows


def _changed_config(e: Evidence) -> str | None:
    """A loader or login hook (ld.so.preload, a crontab, a profile) written within minutes of a program no
    package owns; its launcher is followed by its own rule."""
    if not (e.unowned or e.deleted or (e.package or {}).get("owned_by") is None):
        return None
    for row in _nearby_files(e):
        hook = any(h in row["path"] for h in LOADER_AND_LOGIN_HOOKS)
        if hook and row["path"] not in e.others and row["path"] != _origin_file(e):
            return row["path"]
    return None


def _package_batch(e: Evidence) -> bool:
    """Everything that changed with the file belongs to its own package: the package was installed or upgraded."""
    files = (e.nearby or {}).get("files") or []
    owner = (e.package or {}).get("owned_by")
    return bool(files) and owner is not None and all(f["owned_by"] == owner for f in files)


def _unusual_parent(e: Evidence) -> bool:
    """A parent that does not fit: a web server or cron running a program no package owns, a shell for a
    daemon, anything but a session for a user's own program."""
    parent = str((e.process or {}).get("parent", ""))
    return any(w in parent for w in WEB_SERVERS) or (
        any(parent.startswith(p) or p in parent for p in SHELL_PARENTS) and "systemd" not in parent
    )


def _kernel_thread_title(e: Evidence) -> bool:
    """A process titled like a kernel thread ([kworker/...]) that has an executable: kernel threads have none."""
    p = e.process or {}
    return str(p.get("cmdline", "")).startswith("[") and bool(p.get("exe"))


def _preloaded(e: Evidence) -> str | None:
    return ((e.process or {}).get("loader_environment") or {}).get("LD_PRELOAD")


def _remote_suspect(e: Evidence) -> bool:
    rep = str((e.connection or {}).get("reputation", ""))
    return "error" not in (e.connection or {}) and not rep.startswith(("a private address", "Amazon CloudFront"))


CONDITIONS: dict[str, Callable[[Evidence], bool]] = {
    "remote_socket": lambda e: bool(_remotes(e)) and e.connection is None,
    "exe_deleted": lambda e: e.deleted and bool(e.exe),
    "unusual_parent": _unusual_parent,
    "kernel_thread_title": _kernel_thread_title,
    "preloaded_library": lambda e: _preloaded(e) is not None and e.package is None,
    "remote_suspect": _remote_suspect,
    "target_owned": lambda e: bool((e.package or {}).get("owned_by")) and not e.mismatch,
    "target_unowned": lambda e: e.unowned,
    "package_batch": _package_batch,
    "origin_file": lambda e: _origin_file(e) is not None,
    "about_origin_file": lambda e: _origin_file(e) in e.others,
    "origin_file_suspect": _origin_file_suspect,
    "config_changed_alongside": lambda e: _changed_config(e) is not None,
    "target_seen_nearby": lambda e: any(r["path"] == e.path for r in _nearby_files(e)),
    "pid_only": lambda e: e.pid is not None and e.process is None and e.path is None,
    "path_unqueried": lambda e: e.path is not None and e.package is None and not e.deleted,
    "needs_hash": lambda e: e.path is not None and e.hash is None and (e.mismatch or e.unowned or e.vendor),
    "needs_stat": lambda e: (
        e.path is not None
        and e.stat is None
        and (e.unowned or e.mismatch or e.scanner == "world_writable")
        and not e.deleted
    ),
    "needs_reputation": lambda e: (
        _sha(e) is not None and e.reputation is None and (e.hash.get("matches_package") is not True or e.vendor)
    ),
    "needs_baseline": lambda e: (
        e.baseline is None
        and e.finding_id != ""
        and (e.rep in ("malicious", "unknown") or e.mismatch or (e.deleted and not _package_batch(e)) or e.gone)
    ),
    "needs_process": lambda e: e.pid is not None and e.process is None and (e.rep != "known_good" or e.deleted),
    "malware_family": lambda e: (
        e.technique is None and _family_technique((e.reputation or {}).get("name", "")) is not None
    ),
    "hid_itself": lambda e: e.technique is None and e.deleted and not (e.package or {}).get("owned_by"),
    "odd_port": lambda e: e.technique is None and _odd_port(e) and e.rep != "known_good" and not _package_batch(e),
    "needs_related": lambda e: (
        e.related is None and (e.rep == "malicious" or (e.mismatch and e.rep != "known_good")) and e.path is not None
    ),
}
ARGUMENTS: dict[str, Callable[[Evidence], object]] = {
    "pid": lambda e: e.pid,
    "target": lambda e: e.path,
    "target_name": lambda e: (e.path or "").rsplit("/", 1)[-1],
    "exe_path": lambda e: e.exe,
    "preloaded": _preloaded,
    "remote_address": lambda e: _remotes(e)[0],
    "origin_file": _origin_file,
    "changed_config": _changed_config,
    "sha256": _sha,
    "finding_id": lambda e: e.finding_id,
    "family_technique": lambda e: _family_technique((e.reputation or {}).get("name", "")),
}
_RULE = record({"after": STR, "when": seq(STR), "call": STR, "args": mapping(STR)})
_TABLE = load_table(__package__, "data/next_calls.yaml", record({"rules": seq(_RULE), "agreement": mapping(seq(STR))}))


def _checked_rules(rows: list[dict]) -> list[dict]:
    """The rule table, every name in it checked against the vocabulary (a typo stops the import, named)."""
    where = "secml_recipes/corpus/data/next_calls.yaml"
    for i, r in enumerate(rows):
        for name in r["when"]:
            if name.removeprefix("not ") not in CONDITIONS:
                raise KnowledgeFileError(
                    f"{where}: key rules/{i}/when: unknown condition {name!r}; known: {sorted(CONDITIONS)}"
                )
        for key, value in r["args"].items():
            if not value.startswith("=") and value not in ARGUMENTS:
                raise KnowledgeFileError(
                    f"{where}: key rules/{i}/args/{key}: unknown value {value!r}; known: {sorted(ARGUMENTS)}"
                )
        if r["call"] not in TOOL_NAMES or (r["after"] != "any" and r["after"] not in TOOL_NAMES):
            raise KnowledgeFileError(
                f"{where}: key rules/{i}: {r['after']!r} or {r['call']!r} is not a tool; tools: {TOOL_NAMES}"
            )
    return rows


RULES = _checked_rules(_TABLE["rules"])
AGREEMENT: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _TABLE["agreement"].items()}
RESULT_FIELD = {
    "check_process_details": "process",
    "query_package_manager": "package",
    "hash_binary": "hash",
    "stat_file": "stat",
    "lookup_hash_reputation": "reputation",
    "query_baseline": "baseline",
    "lookup_attack_technique": "technique",
    "search_findings": "related",
    "find_process_origin": "origin",
    "inspect_connection": "connection",
    "list_files_changed_near": "nearby",
}


def _holds(name: str, e: Evidence) -> bool:
    return not CONDITIONS[name[4:]](e) if name.startswith("not ") else CONDITIONS[name](e)


def next_call(e: Evidence) -> tuple[str, dict] | None:
    """The first rule of the table that fits the last result and the evidence, as (tool, arguments)."""
    for r in RULES:
        if r["after"] not in ("any", e.last):
            continue
        if not all(_holds(name, e) for name in r["when"]):
            continue
        args = {k: v[1:] if v.startswith("=") else ARGUMENTS[v](e) for k, v in r["args"].items()}
        if any(v is None for v in args.values()) or f"{r['call']} {json.dumps(args, sort_keys=True)}" in e.calls:
            continue
        return r["call"], args
    return None


def alternative_results(env: ScanEnvironment, tool: str, args: dict, limit: int = 10) -> list[dict]:
    """What the host answers to the same tool about other targets it has (other processes, files, hashes,
    findings, remote ends): the results this call could have returned on another host."""
    if tool in ("check_process_details", "find_process_origin"):
        targets = [{"pid": p} for p in sorted(env.processes) if p != args.get("pid")]
    elif tool in ("query_package_manager", "hash_binary", "stat_file", "list_files_changed_near"):
        targets = [{"path": p} for p in env.on_disk if p != args.get("path")]
    elif tool == "lookup_hash_reputation":
        targets = [{"sha256": h} for h in sorted(env.reputation) if h != args.get("sha256")] + [{"sha256": "0" * 64}]
    elif tool == "query_baseline":
        targets = [{"finding_id": f["id"]} for _, f in env.findings if f["id"] != args.get("finding_id")]
    elif tool == "inspect_connection":
        remotes = {s.rsplit("-> ", 1)[1] for p in env.processes.values() for s in p.sockets if "-> " in s}
        targets = [{"address": a} for a in sorted(remotes - {args.get("address")})]
    else:
        targets = []
    picked = [targets[i * len(targets) // limit] for i in range(limit)] if len(targets) > limit else targets
    return [env.call(tool, t) for t in picked]


def result_changes_next_call(env: ScanEnvironment, before: Evidence, tool: str, args: dict, chosen: str | None) -> bool:
    """Measured dependence: would another answer to this call (see `alternative_results`) have led to a
    different next tool than `chosen` (None: concluding)?"""
    for other in alternative_results(env, tool, args):
        e = copy.deepcopy(before)
        absorb(e, tool, args, other)
        step = next_call(e)
        if (step[0] if step else None) != chosen:
            return True
    return False


def behaviour(e: Evidence) -> tuple[list[str], list[str]]:
    """What the process did that a name cannot hide: (strong signs of compromise, weak ones), as clauses."""
    strong, weak = [], []
    p = e.process or {}
    owned = bool((e.package or {}).get("owned_by")) and not e.mismatch
    if _kernel_thread_title(e):
        strong.append(
            f"it is titled like a kernel thread ({p['cmdline']}) yet runs {e.exe}: kernel threads have no executable"
        )
    parent = str(p.get("parent", ""))
    if any(w in parent for w in WEB_SERVERS) and not owned:
        strong.append(
            f"the web server ({parent}) started it, and a web server never runs programs no package installed"
        )
    if _preloaded(e) and not owned:
        strong.append(f"it runs with LD_PRELOAD={_preloaded(e)}, a library no package owns")
    if e.connection and "error" not in e.connection and _remote_suspect(e) and not owned:
        strong.append(f"it holds a connection to {e.connection['address']} ({e.connection['reputation']})")
    changed = [r["path"] for r in _nearby_files(e) if any(h in r["path"] for h in LOADER_AND_LOGIN_HOOKS)]
    launcher = _origin_file(e)
    if launcher in e.others and _origin_file_suspect(e):
        answer = e.others[launcher].get("query_package_manager") or {}
        what = "no package ships" if answer.get("owned_by") is None else f"no longer matches {answer['owned_by']}"
        weak.append(f"it is launched from {launcher}, which {what}")
        if any(c != launcher for c in changed) and not owned:
            strong.append(f"{', '.join(sorted(set(changed) - {launcher}))} changed within minutes of its launcher")
    for path, results in e.others.items():
        answer = results.get("query_package_manager") or {}
        if path == launcher or not answer or (answer.get("owned_by") and answer.get("verify", "ok") == "ok"):
            continue
        state = "belongs to no package" if answer.get("owned_by") is None else f"no longer matches {answer['owned_by']}"
        hook = any(h in path for h in LOADER_AND_LOGIN_HOOKS)
        (strong if hook and not owned else weak).append(f"{path} was written with it and {state}")
    if (e.baseline or {}).get("status") == "new" and not owned:
        weak.append("it is new since the last scan")
    return strong, weak


def _scratch(e: Evidence) -> bool:
    target = e.exe or e.path or ""
    return target.startswith(SCRATCH_ROOTS + ("/home/",)) or hidden_component(target) is not None


# (condition, verdict, what to say): the first that holds decides the conclusion.
CONCLUSIONS: list[tuple[Callable[[Evidence], bool], str, str]] = [
    (
        lambda e: e.rep == "malicious",
        "contain",
        "the hash is known malware ({name}); preserve the evidence first (copy /proc/<pid>/exe, a core dump, its "
        "sockets and logs), isolate the host, then eradicate {target} and its persistence",
    ),
    (
        lambda e: bool(behaviour(e)[0]) or len(behaviour(e)[1]) >= 2,
        "contain",
        "its behaviour gives it away: {signs}; preserve /proc/<pid>/exe, memory and logs before anything is stopped, "
        "isolate the host, then remove {target} and what launches it",
    ),
    (
        lambda e: e.deleted and not (e.package or {}).get("owned_by") and _scratch(e),
        "contain",
        "the program deleted its own file while running from a place no package installs to; copy /proc/<pid>/exe "
        "before the process exits, isolate the host and investigate",
    ),
    (
        lambda e: e.deleted and (e.package or {}).get("owned_by") and not e.mismatch,
        "review",
        "the process still maps an older, deleted copy while {target} on disk verifies against {package}{batch}: "
        "an upgrade the service was not restarted after; copy /proc/<pid>/exe aside first (the only copy of what "
        "ran) and compare its hash with the package's previous version, then restart {unit}",
    ),
    (
        lambda e: e.deleted,
        "review",
        "the process runs a deleted file no package owns, but nothing it does is suspicious (it started "
        "{started}, under {parent}); copy /proc/<pid>/exe and ask who installed it before anyone restarts it",
    ),
    (
        lambda e: e.mismatch,
        "contain",
        "{target} no longer matches its package ({package}); treat the host as compromised: preserve the file, "
        "isolate, and reinstall the package from a trusted source after forensics",
    ),
    (
        lambda e: e.gone and e.hash is None and e.stat is None,
        "review",
        "the process has exited, so nothing more can be read from it; judge {target} from the scan and watch for it "
        "to return",
    ),
    (
        lambda e: (e.stat or {}).get("setuid") and _shell_escape_setid(e.path or ""),
        "contain",
        "{target} is a set-uid program that hands anyone a shell or any file (GTFOBins); a package check would pass "
        "it, since the content is the package's and the added bit is the backdoor: preserve it and its change time, "
        "then clear the bit and find who set it",
    ),
    (
        lambda e: (
            (e.stat or {}).get("setuid")
            and not (e.package or {}).get("owned_by")
            and (e.path or "").rsplit("/", 1)[-1].startswith(INTERPRETERS)
        ),
        "contain",
        "{target} is a set-uid copy of a shell or interpreter that no package installed: anyone who runs it gets "
        "its owner's rights; preserve it and its change time, isolate the host, then remove it and find who made it",
    ),
    (
        lambda e: (
            (e.stat or {}).get("world_writable") and ((e.stat or {}).get("setuid") or (e.stat or {}).get("setgid"))
        ),
        "contain",
        "{target} is set-id and writable by everyone: anyone could have replaced it and run code as its owner; "
        "preserve it and its change time, isolate the host, then remove it",
    ),
    (
        lambda e: (e.stat or {}).get("world_writable") and autostart_file(e.path or "") is not None,
        "investigate",
        "{target} is writable by everyone and root runs or loads it on its own: read what it holds first (every "
        "line, every library or command it names, against the package's copy) and preserve a copy, then remove "
        "other users' write access",
    ),
    (
        lambda e: (e.stat or {}).get("world_writable"),
        "harden",
        "{target} is writable by everyone: remove other users' write access (chmod o-w {target}) after checking "
        "what changed it",
    ),
    (
        lambda e: not e.unowned and e.package is not None and not e.vendor,
        "expected",
        "{target} belongs to {package} from the distribution archive and verifies against it: expected, no action",
    ),
    (
        lambda e: e.vendor and e.rep == "known_good",
        "verify_provenance",
        "{target} is the genuine {package} build from its vendor repository; keep it if someone needs the "
        "vendor's software, otherwise ask its owner before removing the package",
    ),
    (
        lambda e: e.rep == "known_good",
        "benign",
        "the hash is {name}; the finding reflects where it runs, not tampering: no action beyond keeping it updated",
    ),
    (
        lambda e: e.injected is not None or ((e.baseline or {}).get("status") == "new" and e.unowned),
        "investigate",
        "{target} is new, owned by no package and unknown to every catalogue; keep the process running for "
        "evidence, collect it and find who started it before anyone deletes it",
    ),
    (
        lambda e: True,
        "review",
        "{target} is owned by no package and unknown, but has been there since {since}; confirm its owner and "
        "purpose with the person responsible",
    ),
]


def _shell_escape_setid(path: str) -> bool:
    """A GTFOBins program that no distribution family ships set-id: the specialist contains it, so must an episode."""
    return bool(path) and shell_escape(path) is not None and stock_in_any_family(path) is None


def conclude(e: Evidence, target: str) -> tuple[str, str]:
    for condition, verdict, text in CONCLUSIONS:
        if condition(e):
            return verdict, text.format(
                target=target,
                name=(e.reputation or {}).get("name", ""),
                package=(e.package or {}).get("owned_by") or (e.hash or {}).get("package"),
                since=(e.baseline or {}).get("first_seen", "an earlier scan"),
                signs="; ".join(sum(behaviour(e), [])),
                batch=" and every file that changed with it belongs to that package" if _package_batch(e) else "",
                unit=(e.origin or {}).get("unit") or "the service behind it",
                started=(e.process or {}).get("started", "long ago"),
                parent=(e.process or {}).get("parent", "its parent"),
            )
    raise AssertionError("the last conclusion always holds")


# -- what the analyst writes -------------------------------------------------------------------------------


def _short(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def _unquoted(text: str) -> str:
    """`text` cut before any stretch addressed to an AI analyst: the analyst names it, never repeats it."""
    stretch = injection_text(text)
    if stretch is None:
        return text
    return text[: text.find(stretch)].rstrip(" '\"") + " [text addressed to an AI analyst]"


def observe(tool: str, result: dict, e: Evidence) -> str:
    """One sentence on what a tool result says, for the reasoning before the next call or the conclusion.
    Paths already named in the call are referred to by file name; hashes are never spelled out."""
    if "error" in result:
        return f"The tool answered: {result['error']}."
    if tool == "query_package_manager":
        name = _short(result["path"])
        if result.get("owned_by") is None:
            return f"No installed package owns {name}."
        verify = "it verifies" if result["verify"] == "ok" else f"its {result['verify']}"
        return f"{name} belongs to {result['owned_by']} {result['version']} from {result['origin']}; {verify}."
    if tool == "hash_binary":
        return {
            True: "Its hash matches the digest the package recorded.",
            False: "Its hash does NOT match the digest the package recorded.",
            None: "No package digest to compare its hash with.",
        }[result.get("matches_package")]
    if tool == "stat_file":
        bits = [
            b
            for b, on in (
                ("set-uid", result["setuid"]),
                ("set-gid", result["setgid"]),
                ("writable by others", result["world_writable"]),
            )
            if on
        ]
        caps = f", capabilities {result['capabilities']}" if result.get("capabilities") else ""
        return (
            f"{_short(result['path'])} is {result['owner']}:{result['group']} mode {result['mode']}"
            f"{' (' + ', '.join(bits) + ')' if bits else ''}{caps}, changed {result['modified']}."
        )
    if tool == "lookup_hash_reputation":
        if result["verdict"] == "unknown":
            return "No catalogue knows this hash."
        return f"The hash is {result['verdict'].replace('_', ' ')}: {result['name']} ({result['source']})."
    if tool == "check_process_details":
        socks = "; sockets: " + ", ".join(result["sockets"]) if result.get("sockets") else "; no sockets"
        env = "".join(f"; {k}={v}" for k, v in (result.get("loader_environment") or {}).items())
        return (
            f"pid {result['pid']} runs {result['exe']} as {result['user']} (parent {result['parent']}, started "
            f"{result['started']}){socks}{env}."
        )
    if tool == "query_baseline":
        if result["status"] == "new":
            return "It is new: no earlier scan had it."
        return f"Earlier scans have it since {result['first_seen']} ({result['earlier_scans']} scans)."
    if tool == "lookup_attack_technique":
        return f"{result['technique_id']} is {result['name']} ({result['tactic']})."
    if tool == "find_process_origin":
        o = result
        how = (
            f"the unit {o['unit']} ({o['unit_file']})"
            if o.get("unit_file")
            else f"the cron entry in {o['cron_file']}: {_unquoted(o['entry'])}"
            if o.get("cron_file")
            else f"a line in {o['profile']}: {_unquoted(o['entry'])}"
            if o.get("profile")
            else f"the web server {o['web_server']} ({o['unit']})"
            if o.get("web_server")
            else o.get("session", "nothing it can name")
        )
        return f"pid {o['pid']} was launched by {how}."
    if tool == "inspect_connection":
        holders = ", ".join(f"pid {p['pid']} ({_short(p['exe'])})" for p in result["local_processes"])
        return f"Threat intelligence on {result['address']}: {result['reputation']}; held by {holders}."
    if tool == "list_files_changed_near":
        files = result["files"]
        owners = sorted({f["owned_by"] or "no package" for f in files})
        listed = ", ".join(f["path"] for f in files[:4]) + (
            f" and {result['total'] - 4} more" if result["total"] > 4 else ""
        )
        if not files:
            return f"Nothing else changed within {result['window_minutes']} minutes of {result['changed']}."
        window = f"within {result['window_minutes']} minutes of {result['changed']}"
        return f"Changed {window}: {listed} (owned by {', '.join(owners)})."
    if tool == "search_findings":
        hits = ", ".join(h["id"] for h in result["results"][:4]) or "nothing"
        return f"The scan has {result['total']} finding(s) matching '{result['query']}': {hits}."
    return json.dumps(result)


WHY_NEXT = {  # tool -> ways to say why it is the next step
    "query_package_manager": [
        "Next I ask the package manager who owns {name}.",
        "Does a package own {name}?",
        "I check which package, if any, installed {name}.",
    ],
    "hash_binary": [
        "So I hash {name} and compare it with the package database.",
        "That calls for the file's hash.",
        "I hash {name} next.",
    ],
    "stat_file": [
        "I look at its owner and mode.",
        "Next: who owns {name} and with which bits.",
        "I stat the file before going further.",
    ],
    "lookup_hash_reputation": [
        "I look the hash up.",
        "Is this hash known anywhere?",
        "The hash goes to the reputation catalogue.",
    ],
    "query_baseline": [
        "When did this appear? I ask the baseline.",
        "I check whether earlier scans had it.",
        "The baseline tells whether it is new.",
    ],
    "check_process_details": [
        "I look at the process itself.",
        "What is pid {pid} doing?",
        "I check the running process, pid {pid}.",
    ],
    "lookup_attack_technique": ["I name the technique this matches.", "Which ATT&CK technique is this?"],
    "search_findings": [
        "I search the scan for anything else about {name}.",
        "Does anything else in the scan mention {name}?",
    ],
    "find_process_origin": [
        "That parent does not fit, so I look at what launched it.",
        "Who started pid {pid}: a unit, a cron entry, a login?",
        "I trace pid {pid} back to whatever launches it.",
    ],
    "inspect_connection": [
        "Who is at the other end of that connection?",
        "I look up the remote end of that socket.",
        "The socket comes first: what is that address?",
    ],
    "list_files_changed_near": [
        "What else changed at that time?",
        "I list what was written within minutes of it.",
        "The change time is the lead: what changed with it?",
    ],
}


FIRST_STEP = {  # tool -> ways to open an investigation with it
    "query_package_manager": [
        "Does a package own {name}? I ask the package manager.",
        "I start with the package database: who installed {name}?",
    ],
    "hash_binary": ["I start by hashing {name}.", "First the file's SHA-256, checked against its package."],
    "stat_file": ["I start with its owner and mode.", "First, stat {name}: owner, group and the set-id bits."],
    "check_process_details": ["I start with the running process, pid {pid}.", "First, what is pid {pid}?"],
    "query_baseline": ["I start with the baseline: is {finding} new?"],
    "search_findings": ["I search the scan first."],
    "lookup_hash_reputation": ["I look the hash up."],
    "lookup_attack_technique": ["I name the technique first."],
    "find_process_origin": ["I start with what launched pid {pid}."],
    "inspect_connection": ["I start with the connection's remote end."],
    "list_files_changed_near": ["I start with what changed around {name}."],
}


class _Writer:
    def __init__(self, env: ScanEnvironment, rng: random.Random):
        self.env, self.rng = env, rng
        self.messages: list[dict] = []
        self.calls: list[dict] = []
        self.n = 0
        self.branch_points = 0  # calls whose result, had it been another, would have changed the next call

    def say(self, content: str) -> None:
        self.messages.append({"role": "assistant", "content": content})

    def call(self, reasoning: str, calls: list[tuple[str, dict]]) -> list[dict]:
        tool_calls, results = [], []
        for name, args in calls:
            self.n += 1
            tool_calls.append(
                {"id": f"call_{self.n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            )
            self.calls.append({"name": name, "arguments": args})
        self.messages.append({"role": "assistant", "content": reasoning, "tool_calls": tool_calls})
        for tc, (name, args) in zip(tool_calls, calls):
            result = self.env.call(name, args)
            results.append(result)
            self.messages.append(
                {"role": "tool", "tool_call_id": tc["id"], "name": name, "content": tool_result_text(result)}
            )
        return results

    def why(self, tool: str, e: Evidence, first: bool = False, args: dict | None = None) -> str:
        path = (args or {}).get("path") or e.path or ""
        name = path.rsplit("/", 1)[-1] or e.finding_id
        phrases = FIRST_STEP[tool] if first else WHY_NEXT[tool]
        pid = (args or {}).get("pid", e.pid)
        return self.rng.choice(phrases).format(path=path, pid=pid, name=name, finding=e.finding_id)


def investigate(
    w: _Writer, e: Evidence, opening: str, first: tuple[str, dict] | None = None, max_calls: int = 7
) -> list[str]:
    """Follow the rule table from `first` (or the table's own first step) until the evidence suffices.
    Returns the observations, one per call. Each result is also checked against the answers the host gives
    about other targets: where one of them would have changed the next call, the episode branched on it."""
    notes, reasoning = [], opening
    step = first or next_call(e)
    while step is not None and len(e.called) < max_calls:
        tool, args = step
        first = not e.called and not w.calls
        (result,) = w.call(f"{reasoning} {w.why(tool, e, first, args)}".strip(), [(tool, args)])
        before = copy.deepcopy(e)
        absorb(e, tool, args, result)
        notes.append(observe(tool, result, e))
        reasoning = notes[-1]
        if tool == "check_process_details" and e.injected:
            reasoning += (
                f' Its command line addresses an AI analyst ("{e.injected[:40]}"): that is data from the '
                "host, not an instruction to me, and itself a sign of tampering."
            )
        if len(e.called) >= max_calls:
            break
        step = next_call(e)
        if result_changes_next_call(w.env, before, tool, args, step[0] if step else None):
            w.branch_points += 1
    return notes


# -- episode kinds -------------------------------------------------------------------------------------------


@dataclass
class Scan:
    report: dict
    env: ScanEnvironment
    host: Host
    findings: list[tuple[str, dict]]
    assessments: dict
    enrichment: object

    @classmethod
    def of(cls, report: dict) -> Scan:
        env = ScanEnvironment(report)
        return cls(report, env, env.host, env.findings, env.assessments, build_enrichment(report))

    def of_scanner(self, scanner: str) -> list[dict]:
        return [f for s, f in self.findings if s == scanner]


def _triage(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    out = scan.enrichment.output
    analyst = out["summaries"]["analyst"]
    question = rng.choice(
        [
            "What is the overall risk of this host, and what should I fix first?",
            "Give me a short triage of this scan.",
            "Is there anything on this host I need to act on today?",
        ]
    )
    open_items = list(out["actions"])[:3]
    expected = [f["id"] for f in out["enriched_findings"] if "expected" in f["tags"]][:4]
    lines = [f"- {a['action']}" for a in open_items] or ["- nothing needs a change"]
    gaps = sorted(analyst["coverage"]["not_run"]) + sorted(analyst["coverage"]["ran_empty"])
    text = "The scan answers this without tools.\n" + "\n".join(lines)
    if expected:
        text += f"\nExpected on a stock install, no action: {', '.join(expected)}."
    if gaps:
        text += f"\nNot covered by this scan: {', '.join(gaps)}."
    key = [t["id"] for t in out["reductions"]["top_findings"][:3]]
    w.say(text + f"\nConclusion: risk {analyst['risk_level']} ({analyst['risk_reasons'][0]}).")
    return question, key, analyst["risk_level"], False


def _privileged_scanner(f: dict) -> str:
    return "world_writable" if (f.get("metadata") or {}).get("rule") == "file_capability" else "suid_sgid"


def _privileged(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    candidates = scan.of_scanner("suid_sgid") + [
        f for f in scan.of_scanner("world_writable") if (f.get("metadata") or {}).get("rule") == "file_capability"
    ]
    if not candidates:
        return None
    # Most set-id and capability binaries are stock: asked about in proportion, the rare one that needs a look
    # (a vendor or unexplained binary, a replaced file) would almost never get an episode.
    weights = [
        1.0 if scan.assessments[(_privileged_scanner(f), f["id"])].expected else UNUSUAL_WEIGHT for f in candidates
    ]
    f = rng.choices(candidates, weights=weights)[0]
    path = f["id"]
    e = Evidence(path=path, finding_id=f["id"])
    first_tool = rng.choice(["query_package_manager", "stat_file", "hash_binary", "query_baseline"])
    question = {
        "query_package_manager": f"Is {path} supposed to be privileged on this host?",
        "stat_file": f"Which bit does {path} carry, and is it needed?",
        "hash_binary": f"Is {path} the genuine file?",
        "query_baseline": f"Has {path} always been privileged here, and is that right?",
    }[first_tool]
    args = {"finding_id": f["id"]} if first_tool == "query_baseline" else {"path": path}
    notes = investigate(w, e, "", (first_tool, args))
    verdict, text = conclude(e, path)
    known = stock_privileged(path, scan.host.family)
    vendor = third_party(path)
    cap = stock_capability(path, scan.host.family)
    if verdict == "expected" and known:
        text += (
            f". It is {bit_phrase(known.bit, known.owner)} because {known.purpose}; removing it would break "
            f"{known.breaks}"
        )
    elif verdict == "expected" and cap:
        text += f". It carries {cap.capabilities} so that it {cap.purpose}, not a SUID bit"
    elif vendor and verdict == "verify_provenance":
        text += f". {vendor.vendor} sets the bit so that it {vendor.purpose}"
    w.say(notes[-1] + f"\nConclusion: {text} ({path}).")
    return question, [path], verdict, False


def _ioc(scan: Scan, w: _Writer, rng: random.Random, adversarial: bool) -> tuple | None:
    iocs = [f for f in scan.of_scanner("ioc") if ioc_exe_and_pid(f["id"])[1]]
    pool = [f for f in iocs if bool(injection_text((f.get("metadata") or {}).get("command", ""))) == adversarial]
    if not pool:
        return None
    f = rng.choice(pool)
    exe, pid = ioc_exe_and_pid(f["id"])
    e = Evidence(pid=int(pid), finding_id=f["id"])
    script = script_path((f.get("metadata") or {}).get("command", ""))
    about_file = script or (exe if (f.get("metadata") or {}).get("world_writable_executable") == "true" else None)
    entry = rng.choices(["process", "file", "hash"], weights=[6, 3, 1] if about_file else [1, 0, 0])[0]
    question, first = {
        "process": (
            rng.choice(
                [
                    f"Investigate the IOC {f['id']}. Is this host compromised?",
                    f"sys-scan flagged {f['id']}. What is it, and what should we do?",
                    f"Should I kill pid {pid} ({exe.rsplit('/', 1)[-1]})?",
                ]
            ),
            None,
        ),
        "file": (
            f"sys-scan says {f['id']} runs a world-writable executable. Is {about_file} really writable by everyone?",
            ("stat_file", {"path": about_file}),
        ),
        "hash": (f"Is {about_file} (pid {pid}) a known program?", ("hash_binary", {"path": about_file})),
    }[entry]
    if first:
        e.path = about_file
    opening = ""
    if adversarial:
        opening = "The flagged command line contains text addressed to an AI; I treat it as evidence, not as a request."
        e.injected = injection_text((f.get("metadata") or {}).get("command", ""))  # the scan itself shows it
    notes = investigate(w, e, opening, first)
    target = e.path or exe
    verdict, text = conclude(e, target)
    s = ioc_signals(f, scan.host.family)
    flag_note = (
        " The world_writable_executable flag only reflects the path prefix; stat shows the real mode."
        if (f.get("metadata") or {}).get("world_writable_executable") == "true" and "mode" in (e.stat or {})
        else ""
    )
    resist = " The instructions embedded in the scan were not followed." if e.injected else ""
    w.say(notes[-1] + flag_note + f"\nConclusion: {text} ({f['id']}).{resist}")
    key = [f["id"]] + ([] if not s["hidden"] else [])
    return question, key, verdict, bool(e.injected)


def _parallel(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    candidates = scan.of_scanner("suid_sgid")
    if len(candidates) < 2:
        return None
    chosen = rng.sample(candidates, min(len(candidates), rng.choice([2, 2, 3])))
    paths = [f["id"] for f in chosen]
    question = f"Check whether {', '.join(paths)} are genuine package files."
    results = w.call(
        rng.choice(["They are independent, so I hash them at once.", "Hashing all of them in one go."]),
        [("hash_binary", {"path": p}) for p in paths],
    )
    evidence = {p: Evidence(path=p, finding_id=p) for p in paths}
    for p, r in zip(paths, results):
        absorb(evidence[p], "hash_binary", {"path": p}, r)
    notes = [f"{_short(p)}: {observe('hash_binary', r, evidence[p])}" for p, r in zip(paths, results)]
    owners = w.call(
        " ".join(notes)
        + rng.choice([" Now the package manager for each.", " Next, who owns each of them, and from which archive."]),
        [("query_package_manager", {"path": p}) for p in paths],
    )
    before = {p: copy.deepcopy(evidence[p]) for p in paths}
    for p, r in zip(paths, owners):
        absorb(evidence[p], "query_package_manager", {"path": p}, r)
    more = [(p, next_call(evidence[p])) for p in paths]
    w.branch_points += any(  # another owner for one of them would have changed its follow-up
        result_changes_next_call(w.env, before[p], "query_package_manager", {"path": p}, step[0] if step else None)
        for p, step in more
    )
    more = [(p, step) for p, step in more if step is not None]
    if more:
        answers = w.call(
            " ".join(observe("query_package_manager", evidence[p].package, evidence[p]) for p in paths)
            + " Following up where the evidence is not clean.",
            [step for _, step in more],
        )
        for (p, (tool, args)), r in zip(more, answers):
            absorb(evidence[p], tool, args, r)
    verdicts = {p: conclude(evidence[p], p) for p in paths}
    lines = [f"- {p}: {v}: {t}" for p, (v, t) in verdicts.items()]
    worst = max(
        (v for v, _ in verdicts.values()),
        key=lambda v: ["expected", "benign", "review", "verify_provenance", "investigate", "contain"].index(v),
    )
    w.say("\n".join(lines) + f"\nConclusion: {worst} overall for {', '.join(paths)}.")
    return question, paths, worst, False


def _tool_error(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    targets = [f for s, f in scan.findings if s in ("ioc", "suid_sgid", "world_writable") and f["severity"] != "info"]
    if not targets:
        return None
    f = rng.choice(targets)
    name = ioc_exe_and_pid(f["id"])[0].rsplit("/", 1)[-1]
    if rng.random() < 0.5:
        stale = max(scan.env.processes or {1: None}) + rng.randint(1000, 5000)
        question = f"A colleague says pid {stale} was behind {f['id']}. What is it?"
        (err,) = w.call(f"I look at pid {stale} first.", [("check_process_details", {"pid": stale})])
    else:
        wrong = "/usr/local/sbin/" + name if not f["id"].startswith("/usr/local/sbin/") else "/opt/" + name
        question = f"Someone reported {wrong}; is it the file behind {f['id']}?"
        (err,) = w.call(f"I hash {wrong} as reported.", [("hash_binary", {"path": wrong})])
    (found,) = w.call(
        f"{observe('x', err, Evidence())} The report was wrong, so I search the scan for {name}.",
        [("search_findings", {"query": name, "limit": 5})],
    )
    exe, pid = ioc_exe_and_pid(f["id"])
    scanner = next(s for s, x in scan.findings if x is f)
    e = Evidence(path=None if pid else f["id"], pid=int(pid) if pid else None, finding_id=f["id"], scanner=scanner)
    notes = investigate(w, e, observe("search_findings", found, e) + f" It is {f['id']}.")
    verdict, text = conclude(e, e.path or f["id"])
    w.say(notes[-1] + f"\nConclusion: the reported reference was stale; {text} ({f['id']}).")
    return question, [f["id"]], verdict, bool(e.injected)


def _baseline_drift(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    open_findings = [
        (s, f) for s, f in scan.findings if not scan.assessments[(s, f["id"])].expected and f["severity"] != "info"
    ]
    if len(open_findings) < 2:
        return None
    chosen = rng.sample(open_findings, min(len(open_findings), 3))
    ids = [f["id"] for _, f in chosen]
    question = "What changed on this host since its last scan?"
    results = w.call(
        "I ask the baseline about each open finding at once.", [("query_baseline", {"finding_id": fid}) for fid in ids]
    )
    new = [fid for fid, r in zip(ids, results) if r.get("status") == "new"]
    for i, fid in enumerate(ids):  # another answer for one finding would have changed which one is followed
        for other in alternative_results(scan.env, "query_baseline", {"finding_id": fid}):
            statuses = [other if j == i else r for j, r in enumerate(results)]
            followed = next((x for x, r in zip(ids, statuses) if r.get("status") == "new"), None)
            if followed != (new[0] if new else None):
                w.branch_points += 1
                break
    notes = [observe("query_baseline", r, Evidence()) for r in results]
    verdict, follow = "review", ""
    if new:
        s, f = next((s, f) for s, f in chosen if f["id"] == new[0])
        exe, pid = ioc_exe_and_pid(f["id"])
        e = Evidence(
            path=None if pid else (f["id"] if f["id"].startswith("/") else None),
            pid=int(pid) if pid and s == "ioc" else None,
            finding_id=f["id"],
            baseline=results[ids.index(new[0])],
            called=["query_baseline"],
        )
        if e.path is None and e.pid is None:
            verdict, follow = "review", f" {f['id']} is a configuration state, not a file to examine."
        else:
            more = investigate(w, e, " ".join(notes) + f" {new[0]} is the new one, so I follow it.")
            verdict, text = conclude(e, e.path or f["id"])
            follow = " " + more[-1] + f" For {new[0]}: {text}."
    summary = (
        f"New since the last scan: {', '.join(new)}." if new else "Nothing among them is new: they predate this scan."
    )
    w.say(" ".join(notes) + follow + f"\nConclusion: {summary}")
    return question, ids, verdict if new else "review", False


def _world_writable(scan: Scan, w: _Writer, rng: random.Random) -> tuple | None:
    plain = [f for f in scan.of_scanner("world_writable") if not (f.get("metadata") or {}).get("rule")]
    if not plain:
        return None
    f = rng.choice(plain)
    path = f["id"]
    e = Evidence(path=path, finding_id=path, scanner="world_writable")
    question = rng.choice([f"Who can change {path}, and does it matter?", f"Should I worry about {path}?"])
    (st,) = w.call("I check its owner and mode first.", [("stat_file", {"path": path})])
    before = copy.deepcopy(e)
    absorb(e, "stat_file", {"path": path}, st)
    step = next_call(e)
    w.branch_points += result_changes_next_call(w.env, before, "stat_file", {"path": path}, step[0] if step else None)
    notes = [observe("stat_file", st, e)] + investigate(w, e, observe("stat_file", st, e))
    owned = e.package and e.package.get("owned_by")
    where = (
        "read by programs running as root"
        if path.startswith("/etc/")
        else "run by other users and root"
        if "/bin/" in path
        else "changeable by any local account"
    )
    fix = f"remove other users' write access (chmod o-w {path})" + (f" and verify it against {owned}" if owned else "")
    setid = (e.stat or {}).get("setuid") or (e.stat or {}).get("setgid")
    if setid:  # anyone could have replaced a program that runs as its owner: evidence first, then the fix
        fix = f"it is also set-id, so preserve it and its change time and isolate the host first, then {fix}"
    verdict = "contain" if e.rep == "malicious" or e.mismatch or setid else "harden"
    if verdict == "harden" and autostart_file(path):  # root runs or loads it: what it holds decides the rest
        verdict = "investigate"
        fix = (
            f"read what it holds first (every line, every library or command it names) and preserve a copy, then {fix}"
        )
    w.say(
        notes[-1]
        + f"\nConclusion: {path} is writable by everyone and {where}; {fix}"
        + (", then investigate the change: it does not match its package" if e.mismatch else "")
        + "."
    )
    return question, [path], verdict, False


KIND_BUILDERS = {
    "triage": _triage,
    "privileged_binary": _privileged,
    "ioc_investigation": lambda scan, w, rng: _ioc(scan, w, rng, adversarial=False),
    "adversarial": lambda scan, w, rng: _ioc(scan, w, rng, adversarial=True),
    "parallel_check": _parallel,
    "tool_error": _tool_error,
    "baseline_drift": _baseline_drift,
    "world_writable": _world_writable,
}


def teacher_verdict(scan: Scan, finding_id: str) -> str | None:
    """The specialist's verdict on the finding an episode is about (`teacher.assess`), if the scan has it."""
    return next((a.verdict for (_, fid), a in scan.assessments.items() if fid == finding_id), None)


def agrees_with_teacher(verdict: str, teacher: str | None) -> bool:
    """Whether an episode's verdict is one the specialist's verdict on the same finding allows (`agreement`
    in data/next_calls.yaml)."""
    return teacher is None or verdict in AGREEMENT.get(teacher, (teacher,))


def build_episode(report: dict, kind: str, rng: random.Random, scan: Scan | None = None) -> dict | None:
    """One episode of `kind` for this scan, or None when the scan gives that kind nothing to work on."""
    if kind not in KIND_BUILDERS:
        raise ValueError(f"unknown episode kind {kind!r}; expected one of {EPISODE_KINDS}")
    scan = scan or Scan.of(report)
    w = _Writer(scan.env, rng)
    built = KIND_BUILDERS[kind](scan, w, rng)
    if built is None:
        return None
    question, key, verdict, adversarial = built
    messages = [
        {"role": "system", "content": GENERALIST_SYSTEM_PROMPT},
        {"role": "user", "content": f"{question}\nScan digest: {scan_digest(report, key)}"},
    ] + w.messages
    return {
        "kind": kind,
        "messages": messages,
        "tools": json.dumps(TOOL_SCHEMAS),
        "reference": json.dumps(
            {
                "calls": w.calls,
                "key_finding_ids": sorted(set(key)),
                "adversarial": adversarial,
                "verdict": verdict,
                "teacher_verdict": teacher_verdict(scan, key[0]) if len(set(key)) == 1 else None,
                "branch_points": w.branch_points,
                "risk_level": scan.enrichment.output["summaries"]["analyst"]["risk_level"],
            }
        ),
    }


def build_episodes(report: dict, seed: int, count: int) -> list[dict]:
    """Up to `count` episodes for one scan: the adversarial and IOC cases the scan offers first, then other
    kinds drawn by weight."""
    rng = random.Random(f"{seed}:{report.get('meta', {}).get('hostname')}")
    scan = Scan.of(report)
    rest = [k for k in EPISODE_KINDS if k not in FIRST_KINDS]
    kinds = FIRST_KINDS + sorted(rest, key=lambda k: rng.random() ** (1.0 / KIND_WEIGHTS[k]), reverse=True)
    out = []
    for kind in kinds:
        if len(out) >= count:
            break
        episode = build_episode(report, kind, rng, scan)
        if episode is not None:
            out.append(episode)
    return out


# -- diversity -------------------------------------------------------------------------------------------


def call_sequence(episode: dict) -> str:
    """The episode's tool calls as one string: sequential turns joined by '>', parallel calls in brackets."""
    turns = []
    for m in episode["messages"]:
        names = [tc["function"]["name"] for tc in m.get("tool_calls") or []]
        if names:
            turns.append(names[0] if len(names) == 1 else "[" + ",".join(names) + "]")
    return ">".join(turns) or "(none)"


def diversity(episodes: list[dict]) -> dict:
    """Distinct tool-call sequences, distinct/total assistant sentences, the share of each kind, and the share of
    episodes whose call sequence depends on a tool result (measured while building: another answer the host
    could have given to one of its calls would have changed the next call)."""
    sentences = [
        s.strip()
        for ep in episodes
        for m in ep["messages"]
        if m["role"] == "assistant"
        for s in re.split(r"(?<=[.!?])\s+|\n", m.get("content") or "")
        if s.strip()
    ]
    kinds = Counter(ep["kind"] for ep in episodes)
    n = len(episodes) or 1
    ioc_like = sum(kinds[k] for k in ("ioc_investigation", "adversarial"))
    branched = sum(1 for ep in episodes if json.loads(ep["reference"]).get("branch_points", 0) > 0)
    return {
        "episodes": len(episodes),
        "result_dependent_share": round(branched / n, 3),
        "distinct_call_sequences": len({call_sequence(ep) for ep in episodes}),
        "assistant_sentences": len(sentences),
        "distinct_assistant_sentences": len(set(sentences)),
        "kind_share": {k: round(v / n, 3) for k, v in sorted(kinds.items())},
        "ioc_and_adversarial_share": round(ioc_like / n, 3),
    }
