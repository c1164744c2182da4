"""Reports of sys-scan 0.1.x (the first public release, e.g. `build/report.json` of the repository's first
commit) converted to the 5.0.0 report shape.

0.1.x wrote no `json_schema_version`, `collection_warnings`, `scanner_errors` or `summary_extension`,
numeric uids, no `base_severity_score`, and other finding forms: sockets under the scanner name
"network" (`network:<port>:<inode>`), SUID binaries with `alt_paths`, IOC hits aggregated per executable
(`<exe>:proc_ioc` with `sample_pids`) and environment hits (`<pid>:env`). Each finding is rewritten into
the form 5.0.0's scanner builds for the same fact, with 5.0.0's severity rules; a finding with no 5.0.0
counterpart (e.g. "Executable in temp") is left out with the reason. Sockets are kept in the form
5.0.0's NetworkScanner builds, although 5.0.0's own report drops them (see `v5_0_0.py`): they are the
only real socket data there is. `meta.tool_version` keeps the version that wrote the report.
"""

from __future__ import annotations

import re

from secml_recipes.scan.ndjson import SCHEMA_URL
from secml_recipes.scan.v5_0_0 import EXPECTED_SUID, IOC_DIRS, IOC_NAMES, KERNEL_PARAMS, SEVERITY_SCORE

_EXPECTED_NAMES = {p.rsplit("/", 1)[1] for p in EXPECTED_SUID}


def is_legacy(report) -> bool:
    """A report of a pre-2.0 sys-scan (tool_version 0.x), which the converter handles."""
    if not isinstance(report, dict) or not isinstance(report.get("meta"), dict):
        return False
    version = str(report["meta"].get("tool_version", ""))
    return version.startswith("0.") or version == "0"


def _finding(id_, title, severity, description, metadata) -> dict:
    f = {
        "base_severity_score": str(SEVERITY_SCORE[severity]),
        "description": description,
        "id": id_,
        "metadata": dict(sorted((k, str(v)) for k, v in metadata.items())),
        "severity": severity,
        "title": title,
    }
    return f


def _tcp_severity(state: str, port: int, lip: str) -> str:
    """NetworkScanner (5.0.0): classify_tcp_severity_lean then escalate_exposed_lean."""
    sev = "info"
    if state == "LISTEN":
        if port in (22, 23, 2323):
            sev = "medium"
        elif port == 0:
            sev = "low"
        elif port < 1024:
            sev = "low" if port in (80, 443, 53, 25, 110, 995, 143, 993) else "medium"
        loopback = lip.startswith("127.") or lip in ("::1", "0000:0000:0000:0000:0000:0000:0000:0001")
        if not loopback:
            order = ["info", "low", "medium", "high", "critical"]
            sev = order[min(order.index(sev) + 1, 4)]
    return sev


def _udp_severity(port: int) -> str:
    if port == 53:
        return "low"
    if port in (161, 162, 1900):
        return "medium"
    if port in (5353, 67, 68):
        return "low"
    return "medium" if port < 1024 and port != 123 else "info"


def _network(f: dict, ctx: dict) -> list[dict] | str:
    md = f.get("metadata") or {}
    try:
        lport, inode, proto = int(md["lport"]), str(md["inode"]), md["protocol"]
        lip = str(md["lip"])
    except (KeyError, ValueError, TypeError):
        return "network finding without protocol, lip, lport and inode: no 5.0.0 socket form"
    v6 = ":" in lip
    name = f"{proto}{'6' if v6 else ''}"
    meta = {"protocol": proto, "lport": lport, "inode": inode, "lip": lip}
    for key in ("uid", "pid", "exe"):
        if key in md:
            meta[key] = md[key]
    if proto == "tcp":
        state = str(md.get("state", ""))
        meta.update(state=state, rport=md.get("rport", "0"), rip=md.get("rip", ""))
        sev = _tcp_severity(state, lport, lip)
        if state == "LISTEN":
            if lip in ("0.0.0.0", "0000:0000:0000:0000:0000:0000:0000:0000"):
                meta["wildcard_listen"] = "true"
            if lport < 1024:
                meta["privileged_port"] = "true"
        return [_finding(f"{name}:{lport}:{inode}", f"{name} {state} {lport}", sev, "TCP socket", meta)]
    if proto == "udp":
        return [_finding(f"{name}:{lport}:{inode}", f"{name} port {lport}", _udp_severity(lport), "UDP socket", meta)]
    return f"network finding with protocol {proto!r}"


def _processes(f: dict, ctx: dict) -> list[dict] | str:
    if not str(f.get("id", "")).isdigit():
        return "process finding whose id is not a pid"
    md = f.get("metadata") or {}
    meta = {k: md[k] for k in ("uid", "gid") if k in md}
    return [_finding(f["id"], f"Process {f['id']}", "info", str(f.get("description") or "(no cmdline)"), meta)]


def _kernel_params(f: dict, ctx: dict) -> list[dict] | str:
    spec = next((p for p in KERNEL_PARAMS if p[0] == f.get("id")), None)
    md = f.get("metadata") or {}
    if spec is None or "current" not in md:
        return "kernel parameter 5.0.0 does not read"
    path, desired, desc, bad = spec
    meta = {"current": md["current"], "desired": desired}
    if str(md["current"]) != desired:
        meta["status"] = "mismatch"
    return [_finding(path, path, "info" if str(md["current"]) == desired else bad, desc, meta)]


_SUMMARY_RENAMES = {"likely_out_of_tree": "out_of_tree_count"}
_SUMMARY_KEYS = (
    "total",
    "sample",
    "out_of_tree_count",
    "out_of_tree_sample",
    "unsigned_count",
    "compressed_count",
    "compressed_scanned",
    "compressed_unsigned",
    "unsigned_sample",
    "compressed_unsigned_sample",
    "missing_file_count",
    "missing_file_sample",
    "hidden_proc_only_count",
    "hidden_proc_only_sample",
    "sysfs_only_count",
    "sysfs_only_sample",
    "taint_value",
    "taint_flags",
    "kallsyms_readable",
    "kallsyms_sampled",
    "kallsyms_low",
    "kallsyms_all_zero",
)


def _modules(f: dict, ctx: dict) -> list[dict] | str:
    fid = str(f.get("id", ""))
    if fid == "module_summary":
        md = {_SUMMARY_RENAMES.get(k, k): v for k, v in (f.get("metadata") or {}).items()}
        meta = {k: md[k] for k in _SUMMARY_KEYS if k in md}
        sev = f.get("severity") if f.get("severity") in ("info", "medium", "high") else "info"
        return [_finding(fid, "Kernel modules summary", sev, "Loaded kernel modules inventory", meta)]
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", fid):
        return "module finding whose id is not a module name"
    return [_finding(fid, f"Module {fid}", "info", "Loaded kernel module", {})]


def _world_writable(f: dict, ctx: dict) -> list[dict] | str:
    path = str(f.get("id", ""))
    if not path.startswith("/") or f.get("title") != "World-writable file":
        return "world-writable finding without a path"
    sev = "low" if "/tmp/" in path else "high" if (".so" in path or "/bin/" in path) else "medium"
    return [_finding(path, "World-writable file", sev, "File is world writable", {})]


def _suid(f: dict, ctx: dict) -> list[dict] | str:
    path = str(f.get("id", ""))
    if not path.startswith("/"):
        return "SUID finding whose id is not a path"
    sev = "high" if "/usr/local/" in path else "critical" if "/tmp/" in path else "medium"
    meta = {}
    if sev == "medium" and (path in EXPECTED_SUID or path.rsplit("/", 1)[1] in _EXPECTED_NAMES):
        sev, meta = "low", {"expected": "true"}
    return [_finding(path, "SUID/SGID binary", sev, "Binary has SUID or SGID bit set", meta)]


def _ioc_finding(pid: str, exe: str, argv0: str, env: bool, deleted: bool) -> dict:
    """5.0.0's per-process IOC finding, its flags recomputed from what the old report knew."""
    pattern = bool(argv0) and (any(n in argv0 for n in IOC_NAMES) or any(d in argv0 for d in IOC_DIRS))
    deleted = deleted or "(deleted)" in exe
    ww_exe = any(exe.startswith(d) for d in IOC_DIRS)
    key = (exe or argv0)[:255]
    sev, what = next(
        (s, w)
        for flag, s, w in (
            (deleted, "critical", "deleted executable"),
            (ww_exe, "high", "world-writable executable"),
            (env, "medium", "suspicious environment"),
            (True, "low", "suspicious patterns"),
        )
        if flag
    )
    meta = {"pid": pid}
    if argv0:
        meta["command"] = argv0[:127]
    for flag, name in (
        (pattern, "pattern_match"),
        (deleted, "deleted_executable"),
        (ww_exe, "world_writable_executable"),
        (env, "environment_issue"),
    ):
        if flag:
            meta[name] = "true"
    return _finding(f"{key}:{pid}", "Process IOC Detected", sev, f"Process with {what}: {key}", meta)


def _ioc(f: dict, ctx: dict) -> list[dict] | str:
    md = f.get("metadata") or {}
    fid, title = str(f.get("id", "")), f.get("title")
    argv0_of = ctx["argv0_by_pid"]
    if title == "Process IOC":
        exe = str(md.get("exe", ""))
        pids = [p for p in str(md.get("sample_pids", "")).split(",") if p.isdigit()]
        if not pids and fid.isdigit():
            pids = [fid]
        if not pids:
            return "Process IOC without a pid"
        argv0 = str(f.get("description", ""))
        return [_ioc_finding(p, exe, argv0_of.get(p, argv0), False, md.get("deleted_exe") == "true") for p in pids]
    if title == "Suspicious environment":
        exe = str(md.get("exe", ""))
        head = fid.rsplit(":", 1)[0]
        pids = [head] if head.isdigit() else [p for p in str(md.get("sample_pids", "")).split(",") if p.isdigit()]
        if not pids:
            return "environment finding without a pid"
        return [_ioc_finding(p, "" if exe == "<unknown>" else exe, argv0_of.get(p, ""), True, False) for p in pids]
    return f"'{title}' has no sys-scan 5.0.0 counterpart"


CONVERTERS = {
    "processes": _processes,
    "network": _network,
    "kernel_params": _kernel_params,
    "modules": _modules,
    "world_writable": _world_writable,
    "suid_sgid": _suid,
    "ioc": _ioc,
}


def convert(report: dict) -> tuple[dict | None, list[dict]]:
    """(the report in 5.0.0's shape, or None when nothing maps; the findings left out, each with its reason)."""
    old_meta = report.get("meta") or {}
    meta = {"$schema": SCHEMA_URL, "json_schema_version": "2"}
    for key in ("arch", "cmdline", "hostname", "kernel", "os_id", "os_pretty", "os_version", "tool_version", "user"):
        if isinstance(old_meta.get(key), str):
            meta[key] = old_meta[key]
    for key in ("uid", "euid", "gid", "egid"):
        if key in old_meta and not isinstance(old_meta[key], bool):
            meta[key] = str(old_meta[key])
    if not isinstance(meta.get("hostname"), str):
        return None, [{"reason": "meta.hostname is missing: a report names its host"}]
    results = report.get("results") if isinstance(report.get("results"), list) else []
    ctx = {
        "argv0_by_pid": {
            str(f.get("id")): str(f.get("description", ""))
            for r in results
            if isinstance(r, dict) and r.get("scanner") == "processes"
            for f in r.get("findings") or []
            if isinstance(f, dict)
        }
    }
    out_results, left_out, counts, risk = [], [], {}, 0
    for r in results:
        if not isinstance(r, dict):
            left_out.append({"reason": "a result is not a JSON object"})
            continue
        scanner = str(r.get("scanner", ""))
        convert_one = CONVERTERS.get(scanner)
        findings = []
        for f in r.get("findings") or []:
            if not isinstance(f, dict):
                left_out.append({"scanner": scanner, "reason": "a finding is not a JSON object"})
                continue
            converted = convert_one(f, ctx) if convert_one else f"scanner '{scanner}' has no 5.0.0 counterpart"
            if isinstance(converted, str):
                left_out.append({"scanner": scanner, "id": f.get("id"), "reason": converted, "finding": f})
                continue
            findings += converted
        if convert_one is None and not r.get("findings"):
            continue
        for f in findings:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
            risk += int(f["base_severity_score"])
        result = {
            "findings": sorted(findings, key=lambda f: f["id"]),
            "finding_count": len(findings),
            "scanner": scanner,
        }
        for key in ("start_time", "end_time", "elapsed_ms"):
            if key in r:
                result[key] = r[key]
        if convert_one is not None:
            out_results.append(dict(sorted(result.items())))
    n = sum(counts.values())
    if n == 0:
        return None, left_out or [{"reason": "the report holds no finding"}]
    old_summary = report.get("summary") or {}
    summary = {
        k: old_summary[k]
        for k in ("duration_ms", "started_at", "finished_at", "findings_per_second")
        if k in old_summary
    }
    summary.update(
        finding_count_total=n,
        finding_count_emitted=n,
        scanner_count=str(len(out_results)),
        scanners_with_findings=sum(1 for r in out_results if r["findings"]),
        severity_counts=dict(sorted(counts.items())),
        severity_counts_emitted=dict(sorted(counts.items())),
    )
    slowest = old_summary.get("slowest_scanner")
    if isinstance(slowest, dict) and "name" in slowest:
        summary["slowest_scanner"] = {"elapsed_ms": str(slowest.get("elapsed_ms", 0)), "name": str(slowest["name"])}
    converted = {
        "collection_warnings": [],
        "meta": dict(sorted(meta.items())),
        "results": out_results,
        "scanner_errors": [],
        "summary": dict(sorted(summary.items())),
        "summary_extension": {"emitted_risk_score": risk, "total_risk_score": risk},
    }
    return converted, left_out
