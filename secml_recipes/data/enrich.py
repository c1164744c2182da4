"""The reference enricher (the teacher): raw sys-scan report -> enriched report the specialist learns.

Deterministic and explainable. Every per-finding field depends only on that finding and the host's
meta, so a report split into parts (see `split.py`) enriches each finding identically in every part;
cross-finding knowledge lives in `correlations`. Info-level findings that no correlation touches are
summarized in `reductions` instead of listed, which keeps completions short without losing counts.
The output schema is `schemas/enriched-report.schema.json`.
"""

from __future__ import annotations

import re
from collections import Counter

from .fixtures import SEVERITY_SCORES
from .generate import STOCK_MODULES, STOCK_SUID

ENRICHMENT_VERSION = "1"
SEVERITY_ORDER = ["info", "low", "medium", "high", "critical", "error"]
USER_WRITABLE_PREFIXES = ("/tmp/", "/var/tmp/", "/dev/shm/", "/home/", "/run/user/")

CATEGORY_BY_SCANNER = {
    "processes": "process", "network": "network_socket", "kernel_params": "kernel_param",
    "modules": "kernel_module", "world_writable": "filesystem", "suid_sgid": "privilege_escalation_surface",
    "ioc": "ioc", "mac": "mac", "mounts": "filesystem", "kernel_hardening": "kernel_param",
    "systemd_units": "service_hardening", "auditd": "audit", "containers": "container", "integrity": "integrity",
    "yara": "ioc", "ebpf_exec_trace": "process",
}
ATTACK_TECHNIQUES = {
    "T1014": "Rootkit", "T1046": "Network Service Discovery", "T1059.004": "Command and Scripting Interpreter: Unix Shell",
    "T1070.004": "Indicator Removal: File Deletion", "T1071": "Application Layer Protocol",
    "T1105": "Ingress Tool Transfer", "T1133": "External Remote Services", "T1222.002": "File and Directory Permissions Modification: Linux and Mac File and Directory Permissions Modification",
    "T1496": "Resource Hijacking", "T1543.002": "Create or Modify System Process: Systemd Service",
    "T1547.006": "Boot or Logon Autostart Execution: Kernel Modules and Extensions",
    "T1548.001": "Abuse Elevation Control Mechanism: Setuid and Setgid", "T1554": "Compromise Host Software Binary",
    "T1562.001": "Impair Defenses: Disable or Modify Tools", "T1562.012": "Impair Defenses: Disable or Modify Linux Audit System",
    "T1571": "Non-Standard Port", "T1574.006": "Hijack Execution Flow: Dynamic Linker Hijacking",
    "T1574.010": "Hijack Execution Flow: Services File Permissions Weakness", "T1610": "Deploy Container",
    "T1611": "Escape to Host", "T1036.005": "Masquerading: Match Legitimate Name or Location",
}
ATTACK_TACTICS = {
    "T1014": "defense-evasion", "T1046": "discovery", "T1059.004": "execution", "T1070.004": "defense-evasion",
    "T1071": "command-and-control", "T1105": "command-and-control", "T1133": "initial-access",
    "T1222.002": "defense-evasion", "T1496": "impact", "T1543.002": "persistence", "T1547.006": "persistence",
    "T1548.001": "privilege-escalation", "T1554": "persistence", "T1562.001": "defense-evasion",
    "T1562.012": "defense-evasion", "T1571": "command-and-control", "T1574.006": "persistence",
    "T1574.010": "privilege-escalation", "T1610": "execution", "T1611": "privilege-escalation",
    "T1036.005": "defense-evasion",
}
COMMON_PORTS = {22, 53, 80, 123, 323, 443, 631, 5353, 5432, 9100}


def _meta(f: dict, key: str) -> str:
    return str(f.get("metadata", {}).get(key, ""))


def _true(f: dict, key: str) -> bool:
    return _meta(f, key).lower() == "true"


def is_stock(scanner: str, finding: dict) -> bool:
    """Whether a finding describes the distribution's ordinary state (the simulated baseline)."""
    fid = finding["id"]
    if scanner == "modules":
        return fid in STOCK_MODULES and not _true(finding, "unsigned")
    if scanner == "suid_sgid":
        return fid in STOCK_SUID
    if scanner == "world_writable":
        return _meta(finding, "rule") == "file_capability"
    if scanner in ("ioc", "yara", "integrity") and finding["severity"] != "info":
        return False
    return finding["severity"] in ("info", "low") and scanner not in ("ioc",)


def classify(scanner: str, f: dict) -> tuple[list[str], list[str], dict[str, float], str]:
    """Tags, ATT&CK technique ids, risk subscores and a one-line rationale for one finding."""
    sev = f["severity"]
    impact = SEVERITY_SCORES.get(sev, 10) / 10.0
    exposure, anomaly, confidence = 0.2, 0.1, 0.9
    tags: list[str] = [scanner]
    techniques: list[str] = []
    rationale = f"{f['title']}: {f.get('description', '')}".strip()
    fid = f["id"]

    if scanner == "ioc":
        tags.append("ioc")
        anomaly, exposure, confidence = 0.9, 0.5, 0.85
        if _true(f, "world_writable_executable"):
            tags.append("world_writable_executable")
            techniques += ["T1574.010", "T1036.005"]
            rationale = "A running process executes a file that any user can modify, so anyone can replace what it runs."
        if _true(f, "deleted_executable"):
            tags.append("deleted_executable")
            techniques.append("T1070.004")
            anomaly = 1.0
            rationale = "A running process's executable was deleted from disk, a common way to hide malware."
        if _meta(f, "env_var") == "LD_PRELOAD":
            tags.append("ld_preload")
            techniques.append("T1574.006")
            anomaly = 1.0
            rationale = "LD_PRELOAD injects a library into the process, a known way to hide processes or steal data."
        if any(_meta(f, "command").startswith(p) for p in ("/tmp/", "/dev/shm/", "/var/tmp/")):
            tags.append("runs_from_tmp")
            anomaly = 1.0
    elif scanner == "network":
        port = int(_meta(f, "lport") or 0)
        state = _meta(f, "state")
        if _true(f, "wildcard_listen"):
            tags.append("wildcard_listen")
            exposure = 0.9
            rationale = f"Port {port} listens on all interfaces ({_meta(f, 'exe') or 'unknown process'})."
        elif state == "LISTEN":
            exposure = 0.4 if _meta(f, "lip").startswith("127.") is False else 0.1
        if state == "ESTABLISHED" and port not in COMMON_PORTS:
            rport = int(_meta(f, "rport") or 0)
            tags.append("outbound_connection")
            if rport not in COMMON_PORTS:
                techniques += ["T1571", "T1071"]
                anomaly = 0.8
                rationale = f"Outbound connection to {_meta(f, 'rip')}:{rport}, a non-standard port."
        if state == "LISTEN" and port not in COMMON_PORTS:
            tags.append("uncommon_port")
            anomaly = max(anomaly, 0.5)
            if port in (2375, 6379):
                techniques.append("T1133")
                rationale = f"Port {port} ({'Docker API' if port == 2375 else 'Redis'}) is reachable from the network without authentication by default."
            elif sev in ("high", "critical"):
                techniques.append("T1571")
        if _true(f, "privileged_port"):
            tags.append("privileged_port")
    elif scanner == "suid_sgid":
        tags.append("suid")
        if _meta(f, "expected") == "true":
            confidence, anomaly = 0.95, 0.0
            rationale = f"{fid} is a standard SUID binary shipped by the distribution."
        elif fid.startswith(USER_WRITABLE_PREFIXES) or _true(f, "unusual_location"):
            tags.append("unusual_location")
            techniques.append("T1548.001")
            anomaly, exposure = 1.0, 0.6
            rationale = f"SUID binary in an unusual, user-writable location: {fid}; a classic privilege-escalation backdoor."
        else:
            techniques.append("T1548.001")
            anomaly = 0.2
            rationale = f"{fid} runs with elevated privileges; review whether it is needed."
    elif scanner == "world_writable":
        if _meta(f, "rule") == "file_capability":
            tags.append("file_capability")
            anomaly = 0.1
            rationale = f"{fid} carries file capabilities; expected for ping/mtr, review for others."
        else:
            tags.append("world_writable")
            techniques.append("T1222.002")
            anomaly, exposure = 0.6, 0.5
            if fid.startswith(("/etc/", "/usr/")):
                anomaly = 0.9
                tags.append("system_path")
            if fid.endswith("docker.sock"):
                tags.append("docker_socket")
                techniques.append("T1611")
                exposure, anomaly, impact = 0.8, 0.8, max(impact, 8.0)
                rationale = "Any local user can drive Docker through its world-writable socket and so become root."
            rationale = f"{fid} is writable by every user, so any local account can tamper with it."
    elif scanner == "modules":
        tags.append("kernel_module")
        if _true(f, "unsigned"):
            tags.append("unsigned")
            techniques += ["T1547.006", "T1014"]
            anomaly, confidence = 1.0, 0.8
            rationale = f"Unsigned, out-of-tree kernel module {fid}: kernel code nobody vouches for, typical of rootkits."
        elif _true(f, "out_of_tree"):
            tags.append("out_of_tree")
            anomaly = 0.3
            rationale = f"Out-of-tree but signed module {fid}, usually a vendor driver (DKMS)."
    elif scanner in ("kernel_params", "kernel_hardening"):
        tags.append("kernel_hardening")
        if fid == "kernel:lockdown:disabled":
            tags.append("lockdown_disabled")
            rationale = "Kernel lockdown is off: root can load unsigned code into the kernel and read its memory."
        elif _meta(f, "status") == "mismatch" or (_meta(f, "expected") and _meta(f, "value") != _meta(f, "expected")):
            tags.append("misconfigured")
            rationale = f"{f['title']} is {_meta(f, 'current') or _meta(f, 'value')}, expected {_meta(f, 'desired') or _meta(f, 'expected')}: {f.get('description', '')}."
            if fid.endswith("randomize_va_space"):
                techniques.append("T1562.001")
    elif scanner == "mac":
        tags.append("mac")
        if _meta(f, "enabled") == "false" and fid == "apparmor" and sev in ("high", "medium"):
            techniques.append("T1562.001")
            rationale = "AppArmor is disabled, so no mandatory access control confines services."
        elif fid == "selinux" and _meta(f, "mode") == "permissive":
            techniques.append("T1562.001")
            rationale = "SELinux is permissive: policy violations are logged but not blocked."
        elif int(_meta(f, "unconfined_critical") or 0) > 0:
            tags.append("unconfined_services")
            rationale = f"AppArmor is on but {_meta(f, 'unconfined_critical')} critical services run unconfined."
    elif scanner == "mounts":
        tags.append("mount_options")
        rationale = f"{_meta(f, 'mount')} is mounted with '{_meta(f, 'options')}': {f.get('description', '')}."
    elif scanner == "systemd_units":
        tags.append("service_hardening")
        if _meta(f, "exec_start").startswith(USER_WRITABLE_PREFIXES):
            tags.append("persistence")
            techniques.append("T1543.002")
            anomaly, impact = 1.0, max(impact, 7.0)
            rationale = f"Service {_meta(f, 'unit')} starts {_meta(f, 'exec_start')} from a user-writable path: persistence."
    elif scanner == "auditd":
        tags.append("audit")
        if sev != "info":
            techniques.append("T1562.012")
            rationale = f"{f['title']}: attacker activity of this kind would leave no audit record."
    elif scanner == "containers":
        tags.append("container")
        if fid != "container:none":
            tags.append(f"runtime_{_meta(f, 'runtime') or 'unknown'}")
            rationale = f"Container {fid.split(':', 1)[1]} ({_meta(f, 'runtime')}) runs on this host."
    elif scanner == "integrity":
        tags.append("integrity")
        path = _meta(f, "path")
        if fid.startswith("pkg_mismatch:") and path.startswith("/etc/"):
            tags.append("config_modified")
            anomaly = 0.3
            rationale = f"{path} differs from its package: a locally edited configuration file; review the change."
        elif fid.startswith("pkg_mismatch:"):
            tags.append("binary_modified")
            techniques += ["T1554", "T1014"]
            anomaly, impact = 1.0, max(impact, 8.0)
            rationale = f"{path} no longer matches its package ({_meta(f, 'raw').split(' ')[0]}): a replaced system binary."
        elif fid == "integrity_summary" and sev != "info":
            rationale = f"Package verification found {_meta(f, 'pkg_mismatch_count')} mismatching file(s)."
    elif scanner == "yara":
        tags.append("malware_signature")
        pattern = _meta(f, "pattern")
        techniques.append("T1496" if "stratum" in pattern else "T1059.004" if "/dev/tcp" in pattern else "T1036.005")
        anomaly, confidence, impact = 1.0, 0.8, max(impact, 8.0)
        rationale = f"{_meta(f, 'path')} contains the signature '{pattern}'."
    elif scanner == "ebpf_exec_trace" and fid.startswith("exec:"):
        tags.append("exec_trace")
        cmd = _meta(f, "command")
        techniques.append("T1059.004")
        if re.search(r"(curl|wget).*\|\s*(ba)?sh", cmd):
            techniques.append("T1105")
            tags.append("download_and_execute")
        anomaly = 0.9
        rationale = f"Observed execution: {cmd}."
    if sev == "info" and scanner not in ("ioc", "yara"):
        anomaly = min(anomaly, 0.1)
    subscores = {"impact": round(impact, 2), "exposure": round(exposure, 2), "anomaly": round(anomaly, 2),
                 "confidence": round(confidence, 2)}
    return sorted(set(tags)), sorted(set(techniques)), subscores, rationale


def risk_score(subscores: dict[str, float]) -> int:
    """0-100: impact scaled by exposure and anomaly, discounted by confidence (documented in README)."""
    raw = subscores["impact"] * 10 * (0.6 + 0.4 * subscores["exposure"]) * (0.7 + 0.6 * subscores["anomaly"])
    return max(0, min(100, round(raw * subscores["confidence"])))


def enrich_finding(scanner: str, f: dict) -> dict:
    tags, techniques, subscores, rationale = classify(scanner, f)
    return {
        "id": f["id"], "scanner": scanner, "title": f["title"], "severity": f["severity"],
        "category": CATEGORY_BY_SCANNER.get(scanner, "other"), "tags": tags, "risk_subscores": subscores,
        "risk_score": risk_score(subscores), "baseline_status": "existing" if is_stock(scanner, f) else "new",
        "rationale": rationale, "attack_techniques": techniques,
    }


def _correlations(by_id: dict[str, dict], raw: dict[str, tuple[str, dict]]) -> list[dict]:
    """Cross-finding rules. Each relates findings by id and says why together they matter more."""
    out: list[dict] = []

    def add(rule: str, title: str, related: list[str], rationale: str, techniques: list[str], delta: int, sev: str):
        related = sorted(set(related))
        out.append({"id": f"corr:{rule}:{related[0]}", "title": title, "rule": rule, "related_finding_ids": related,
                    "rationale": rationale, "attack_techniques": sorted(set(techniques)), "risk_score_delta": delta,
                    "severity": sev})

    iocs = [(fid, f) for fid, (s, f) in raw.items() if s == "ioc"]
    sockets = [(fid, f) for fid, (s, f) in raw.items() if s == "network"]
    for ioc_id, ioc in iocs:
        pid = _meta(ioc, "pid")
        exe = ioc_id.rsplit(":", 1)[0]
        for sock_id, sock in sockets:
            if (pid and _meta(sock, "pid") == pid) or (exe and _meta(sock, "exe") == exe):
                state = _meta(sock, "state")
                add("ioc_process_network", "Suspicious process has network activity", [ioc_id, sock_id],
                    f"The IOC process {exe} (pid {pid}) also {'listens on' if state == 'LISTEN' else 'connects to'} "
                    f"port {_meta(sock, 'lport') if state == 'LISTEN' else _meta(sock, 'rport')}.",
                    ["T1571", "T1071"], 20, "critical")
    ww_paths = {fid for fid, (s, f) in raw.items() if s == "world_writable" and _meta(f, "rule") != "file_capability"}
    for fid, (s, f) in raw.items():
        if s == "suid_sgid" and (fid.startswith(USER_WRITABLE_PREFIXES) or fid in ww_paths):
            related = [fid] + [w for w in ww_paths if w == fid]
            add("suid_in_writable_path", "SUID binary in a user-writable location", related,
                f"{fid} is SUID and lives where unprivileged users can write: a root backdoor.", ["T1548.001"], 25, "critical")
    lockdown = [fid for fid, (s, f) in raw.items() if fid == "kernel:lockdown:disabled"]
    for fid, (s, f) in raw.items():
        if s == "modules" and _true(f, "unsigned") and lockdown:
            add("unsigned_module_lockdown_off", "Unsigned kernel module loaded with lockdown disabled", [fid] + lockdown,
                f"Module {fid} is unsigned and kernel lockdown is off, so nothing stopped it from loading.",
                ["T1547.006", "T1014"], 25, "critical")
    execve_gap = [fid for fid in raw if fid in ("auditd:execve:absent", "auditd:rules:missing")]
    if execve_gap and iocs:
        add("ioc_without_exec_audit", "Indicators of compromise with no execution auditing",
            execve_gap + [i for i, _ in iocs],
            "Process execution is not audited while IOCs are present: the attacker's commands left no audit trail.",
            ["T1562.012"], 15, "high")
    for fid, (s, f) in raw.items():
        if s == "integrity" and fid.startswith("pkg_mismatch:") and not _meta(f, "path").startswith("/etc/"):
            path = _meta(f, "path")
            running = [pid for pid, (ps, pf) in raw.items() if ps == "processes" and pf.get("description", "").split(" ")[0] == path]
            add("replaced_binary", "System binary replaced", [fid] + running,
                f"{path} differs from its package; {'it is running now' if running else 'tools that rely on it cannot be trusted'}.",
                ["T1554", "T1014"], 20, "critical")
    yara_by_name = {_meta(f, "path").rsplit("/", 1)[-1]: fid for fid, (s, f) in raw.items() if s == "yara"}
    for ioc_id, ioc in iocs:
        name = ioc_id.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        if name in yara_by_name:
            yara = raw[yara_by_name[name]][1]
            add("ioc_malware_signature", "Running IOC binary matches a malware signature", [ioc_id, yara_by_name[name]],
                f"A copy of the running {name} in {_meta(yara, 'path')} carries the pattern '{_meta(yara, 'pattern')}'.",
                ["T1496" if "stratum" in _meta(yara, "pattern") else "T1059.004"], 25, "critical")
    socket = [fid for fid, (s, f) in raw.items() if s == "world_writable" and fid.endswith("docker.sock")]
    running = [fid for fid, (s, f) in raw.items() if s == "containers" and fid != "container:none"]
    if socket and running:
        add("container_escape_path", "Open Docker socket on a host running containers", socket + running[:3],
            "Anyone who can write the Docker socket can start a privileged container and take over the host and "
            "the containers it runs.", ["T1611", "T1610"], 15, "high")
    for fid, (s, f) in raw.items():
        if s == "systemd_units" and _meta(f, "exec_start").startswith(USER_WRITABLE_PREFIXES):
            related = [fid] + [i for i, _ in iocs if i.rsplit(":", 1)[0] == _meta(f, "exec_start")]
            if len(related) > 1 or not any(c["rule"] == "persistence_service" for c in out):
                add("persistence_service", "Service persistence for a user-writable binary", related,
                    f"Unit {_meta(f, 'unit')} restarts {_meta(f, 'exec_start')} at boot.", ["T1543.002"], 20, "critical")
    noexec = [fid for fid in raw if fid.startswith("mount:tmp-noexec-missing")]
    tmp_exec = [i for i, f in iocs if i.startswith(("/tmp/", "/var/tmp/"))]
    if noexec and tmp_exec:
        add("exec_from_tmp", "Code executing from a temporary directory mounted exec", noexec + tmp_exec,
            "The temporary directory allows execution and an IOC process runs from it.", ["T1059.004"], 10, "high")
    # One correlation per rule and related set.
    unique: dict[str, dict] = {}
    for c in out:
        unique.setdefault(c["id"], c)
    return sorted(unique.values(), key=lambda c: (-c["risk_score_delta"], c["id"]))


ACTIONS = {
    "ioc": "Isolate the host, capture the process ({id}) memory and binary for forensics, then kill it and remove the file.",
    "network_socket": "Restrict {id} to localhost or firewall it; confirm the owning service is expected.",
    "privilege_escalation_surface": "Remove the SUID bit (chmod u-s) from {id} unless the package requires it.",
    "filesystem": "Fix permissions on {id} (chmod o-w) or mount options, and find out who changed them.",
    "kernel_module": "Unload module {id}, block it in modprobe.d, and investigate how it was installed.",
    "kernel_param": "Set {id} to the recommended value in /etc/sysctl.d and reload with sysctl --system.",
    "mac": "Enable and enforce the mandatory access control policy ({id}); confine the unconfined services.",
    "service_hardening": "Add the missing hardening directive for {id} in a systemd drop-in and restart the unit.",
    "audit": "Install audit rules covering execve, setuid and module loading ({id}); load them with augenrules.",
    "container": "Review container {id}: confirm its image and who started it.",
    "integrity": "Reinstall the package owning the file of {id} from a trusted source and treat the host as compromised.",
    "process": "Investigate the process behind {id} and its parent.",
}


def enrich_report(report: dict, top_k: int = 5) -> dict:
    """The enriched report for a raw sys-scan report (or a part of one)."""
    raw: dict[str, tuple[str, dict]] = {}
    enriched: dict[str, dict] = {}
    for result in report.get("results", []):
        scanner = result.get("scanner", "unknown")
        for f in result.get("findings", []):
            key = f["id"] if f["id"] not in raw else f"{f['id']}#{scanner}"
            raw[key] = (scanner, f)
            enriched[key] = enrich_finding(scanner, f)
    correlations = _correlations(enriched, raw)
    correlated = {fid for c in correlations for fid in c["related_finding_ids"]}

    listed = [e for k, e in enriched.items()
              if e["severity"] in ("medium", "high", "critical", "error") or k in correlated or e["risk_score"] >= 40]
    listed.sort(key=lambda e: (-e["risk_score"], SEVERITY_ORDER.index(e["severity"]) * -1, e["id"]))
    for e in listed:
        e["correlation_refs"] = [c["id"] for c in correlations if e["id"] in c["related_finding_ids"]]

    bump = {}
    for c in correlations:
        for fid in c["related_finding_ids"]:
            bump[fid] = max(bump.get(fid, 0), c["risk_score_delta"])
    ranked = sorted(listed, key=lambda e: (-(min(100, e["risk_score"] + bump.get(e["id"], 0))), e["id"]))
    top = [{"id": e["id"], "title": e["title"], "risk_score": min(100, e["risk_score"] + bump.get(e["id"], 0))}
           for e in ranked[:top_k]]

    actions, seen = [], set()
    for e in ranked:
        if len(actions) >= top_k or e["risk_score"] < 20:
            break
        template = ACTIONS.get(e["category"])
        if e["category"] == "ioc" and e["tags"] == sorted({"ioc", "world_writable_executable"}):
            template = ("Confirm {id} is a legitimate program; move its binary to a root-owned directory and remove "
                        "write access for other users (chmod o-w), then restart it.")
        if template and e["id"] not in seen:
            seen.add(e["id"])
            actions.append({"priority": len(actions) + 1, "action": template.format(id=e["id"]), "finding_ids": [e["id"]]})

    counts: dict[str, int] = {}
    for e in enriched.values():
        counts[e["severity"]] = counts.get(e["severity"], 0) + 1
    scores = [t["risk_score"] for t in top] or [0]
    max_risk = max(scores)
    level = "critical" if max_risk >= 80 else "high" if max_risk >= 55 else "medium" if max_risk >= 30 else "low"
    meta = report.get("meta", {})
    reductions = _reductions(raw)
    return {
        "enrichment_version": ENRICHMENT_VERSION,
        "host": {"hostname": meta.get("hostname", ""), "kernel": meta.get("kernel", ""),
                 "os": meta.get("os_pretty", ""), "tool_version": meta.get("tool_version", "")},
        "summary": {
            "finding_count": len(enriched), "listed_finding_count": len(listed),
            "severity_counts": dict(sorted(counts.items())), "max_risk_score": max_risk, "risk_level": level,
            "executive_summary": _executive_summary(meta, counts, top, correlations, level),
        },
        "findings": listed,
        "correlations": correlations,
        "reductions": {"top_risks": top, **reductions},
        "actions": actions,
    }


def _reductions(raw: dict[str, tuple[str, dict]]) -> dict:
    modules = [f for s, f in raw.values() if s == "modules"]
    suid = [f for s, f in raw.values() if s == "suid_sgid"]
    sockets = [f for s, f in raw.values() if s == "network"]
    listening = [f for f in sockets if _meta(f, "state") in ("LISTEN", "")]
    return {
        "low_severity_by_scanner": dict(sorted(Counter(s for s, f in raw.values() if f["severity"] == "low").items())),
        "module_summary": {"total": len(modules), "unsigned": sorted(f["id"] for f in modules if _true(f, "unsigned")),
                           "out_of_tree": sorted(f["id"] for f in modules if _true(f, "out_of_tree"))},
        "suid_summary": {"total": len(suid), "expected": sum(1 for f in suid if _meta(f, "expected") == "true"),
                         "unexpected": sorted(f["id"] for f in suid if _meta(f, "expected") != "true")},
        "network_summary": {"sockets": len(sockets), "listening": len(listening),
                            "wildcard_listeners": sorted(f"{_meta(f, 'protocol')}/{_meta(f, 'lport')}" for f in sockets
                                                         if _true(f, "wildcard_listen")),
                            "established": sorted(f"{_meta(f, 'rip')}:{_meta(f, 'rport')}" for f in sockets
                                                  if _meta(f, "state") == "ESTABLISHED")},
    }


def _executive_summary(meta: dict, counts: dict, top: list, correlations: list, level: str) -> str:
    host = meta.get("hostname", "the host")
    notable = sum(v for k, v in counts.items() if k != "info")
    text = f"{host} ({meta.get('os_pretty', 'unknown OS')}): overall risk {level}; {notable} findings above info."
    if top:
        text += f" Top risk: {top[0]['title']} ({top[0]['id']}, score {top[0]['risk_score']})."
    if correlations:
        text += f" {len(correlations)} correlation(s), the strongest: {correlations[0]['title'].lower()}."
    if level in ("critical", "high"):
        text += " Act on the first actions today."
    return text
