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

What the old report knew and 5.0.0 says differently is carried over, not dropped (docs/data.md has the table):
the user's `--ioc-allow` list (allowlisted environment hits are left out, as the user asked), `pid_count` of
aggregated IOC hits, merged-/usr paths spelled as the package database knows them, IPv6 addresses decoded from
/proc's byte order (so ::1 is loopback), and `meta.effective_config` saying what ran (0.1.x always listed every
process, so `process_inventory` is true when its process scanner ran; `--modules-summary` is 5.0.0's
`modules_summary_only`). The 0.1.x tables (merged-/usr distributions, byte order) are in `spec/legacy_0_1_x.yaml`.
"""

from __future__ import annotations

import ipaddress
import re

from secml_recipes.knowledge_files import STR, frozen, load_table, mapping, record, seq
from secml_recipes.scan.ndjson import SCHEMA_URL
from secml_recipes.scan.v5_0_0 import EXPECTED_SUID, IOC_DIRS, IOC_NAMES, KERNEL_PARAMS, SEVERITY_SCORE, Config

_EXPECTED_NAMES = {p.rsplit("/", 1)[1] for p in EXPECTED_SUID}
_L = load_table(
    "secml_recipes.scan",
    "spec/legacy_0_1_x.yaml",
    record(
        {
            "scanners": seq(STR),
            "merged_usr": seq(record({"os_id": STR, "since": STR, "source": STR})),
            "usr_links": mapping(STR),
            "big_endian_arches": seq(STR),
        }
    ),
)
SCANNERS: tuple[str, ...] = frozen(_L["scanners"])
MERGED_USR: dict[str, str] = {r["os_id"]: r["since"] for r in _L["merged_usr"]}
USR_LINKS: dict[str, str] = _L["usr_links"]
BIG_ENDIAN: frozenset[str] = frozenset(_L["big_endian_arches"])


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


# -- what the old report says about the run ----------------------------------------------------------------


def repaired_cmdline(cmdline: str) -> str:
    """0.1.x's JSONWriter drops the space after argv[0] (`./sys-scan--enable ioc`): put it back."""
    return re.sub(r"^(\S*?[^\s-])(--[A-Za-z][\w-]*(\s|$))", r"\1 \2", cmdline, count=1)


def ioc_allow(argv: list[str]) -> list[str]:
    """The substrings the user passed with --ioc-allow (comma-separated, the flag may repeat)."""
    out = []
    for flag, value in zip(argv, argv[1:]):
        if flag == "--ioc-allow":
            out += [v for v in value.split(",") if v]
    return out


def effective_config(argv: list[str], ran: set[str]) -> dict:
    """5.0.0's meta.effective_config for the same run: the flags both versions share (--pretty, --compact,
    --modules-summary, --min-severity, ...) read by 5.0.0's parser, and `process_inventory` true when 0.1.x's
    process scanner ran (it always listed every process; 5.0.0 does only with --process-inventory)."""
    try:
        cfg = Config.from_flags(tuple(argv[1:]))
    except ValueError:  # a non-number after --max-processes: the rest still describes the run
        cfg = Config()
    cfg.process_inventory = "processes" in ran
    return cfg.effective_config()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text))


def merged_usr(meta: dict, results: list) -> bool:
    """Whether /bin/x and /usr/bin/x are one file on the scanned host: its distribution (spec/legacy_0_1_x.yaml),
    or the report's own SUID findings naming the /usr twin as another name of the same inode (alt_paths)."""
    since = MERGED_USR.get(str(meta.get("os_id", "")))
    if since is not None and _version(str(meta.get("os_version", ""))) >= _version(since):
        return True
    suid = [
        f
        for r in results
        if isinstance(r, dict) and r.get("scanner") == "suid_sgid"
        for f in r.get("findings") or []
        if isinstance(f, dict)
    ]
    for f in suid:
        path, twin = str(f.get("id", "")), _usr_spelling(str(f.get("id", "")))
        if twin != path and twin in str((f.get("metadata") or {}).get("alt_paths", "")).split(","):
            return True
    return False


def _usr_spelling(path: str) -> str:
    """The path through the merged-/usr links (usr_links in spec/legacy_0_1_x.yaml)."""
    for link, target in USR_LINKS.items():
        if path.startswith(link):
            return target + path[len(link) :]
    return path


def canonical_path(path: str, ctx: dict) -> str:
    """The path as the package database knows it: /usr/bin/x for /bin/x on a merged-/usr host."""
    return _usr_spelling(path) if ctx["merged_usr"] else path


# -- sockets ----------------------------------------------------------------------------------------------------


def socket_address(text: str, arch: str) -> str:
    """An address as written: 0.1.x prints IPv6 as /proc/net/tcp6's raw hex (four 32-bit words in the machine's
    byte order) grouped by four digits; decoded here to the address itself (::1, ::ffff:127.0.0.1, fe80::...)."""
    digits = text.replace(":", "")
    if text.count(":") != 7 or not re.fullmatch(r"[0-9A-Fa-f]{32}", digits):
        return text
    raw = bytes.fromhex(digits)
    if arch not in BIG_ENDIAN:
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.IPv6Address(raw)
    return f"::ffff:{addr.ipv4_mapped}" if addr.ipv4_mapped else addr.compressed


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped 127.x (::ffff:127.0.0.1): reachable from the host only."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _tcp_severity(state: str, port: int, lip: str) -> str:
    """NetworkScanner (5.0.0): classify_tcp_severity_lean then escalate_exposed_lean, whose loopback test is
    done on the decoded address (5.0.0 compares strings, and its ::1 never matches the hex it writes)."""
    sev = "info"
    if state == "LISTEN":
        if port in (22, 23, 2323):
            sev = "medium"
        elif port == 0:
            sev = "low"
        elif port < 1024:
            sev = "low" if port in (80, 443, 53, 25, 110, 995, 143, 993) else "medium"
        if not is_loopback(lip):
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
        lip = socket_address(str(md["lip"]), ctx["arch"])
    except (KeyError, ValueError, TypeError):
        return "network finding without protocol, lip, lport and inode: no 5.0.0 socket form"
    v6 = ":" in str(md["lip"])
    name = f"{proto}{'6' if v6 else ''}"
    meta = {"protocol": proto, "lport": lport, "inode": inode, "lip": lip}
    for key in ("uid", "pid", "exe"):
        if key in md:
            meta[key] = md[key]
    if proto == "tcp":
        state = str(md.get("state", ""))
        meta.update(state=state, rport=md.get("rport", "0"), rip=socket_address(str(md.get("rip", "")), ctx["arch"]))
        sev = _tcp_severity(state, lport, lip)
        if state == "LISTEN":
            if lip in ("0.0.0.0", "::"):
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
    path = canonical_path(path, ctx)
    sev = "low" if "/tmp/" in path else "high" if (".so" in path or "/bin/" in path) else "medium"
    return [_finding(path, "World-writable file", sev, "File is world writable", {})]


def _suid(f: dict, ctx: dict) -> list[dict] | str:
    path = str(f.get("id", ""))
    if not path.startswith("/"):
        return "SUID finding whose id is not a path"
    path = canonical_path(path, ctx)
    for alt in str((f.get("metadata") or {}).get("alt_paths", "")).split(","):
        if alt and alt != "..." and canonical_path(alt, ctx) != path:
            ctx["notes"].append(
                {
                    "scanner": "suid_sgid",
                    "id": path,
                    "reason": f"{alt} is another name of the same SUID/SGID file (0.1.x alt_paths); 5.0.0 reports "
                    "one name per file",
                }
            )
    sev = "high" if "/usr/local/" in path else "critical" if "/tmp/" in path else "medium"
    meta = {}
    if sev == "medium" and (path in EXPECTED_SUID or path.rsplit("/", 1)[1] in _EXPECTED_NAMES):
        sev, meta = "low", {"expected": "true"}
    return [_finding(path, "SUID/SGID binary", sev, "Binary has SUID or SGID bit set", meta)]


def _ioc_finding(pid: str, exe: str, argv0: str, env: bool, deleted: bool, pid_count: int = 0) -> dict:
    """5.0.0's per-process IOC finding, its flags recomputed from what the old report knew. `env` is 0.1.x's
    environment hit (LD_PRELOAD= or LD_LIBRARY_PATH= set and /tmp or /dev/shm named anywhere in the environment),
    which implies 5.0.0's environment_issue (LD_PRELOAD= or LD_LIBRARY_PATH= set). `pid_count` > 0: the 0.1.x
    finding aggregated that many processes of the executable but named at most 5."""
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
    if pid_count:
        meta["pid_count"] = pid_count
    f = _finding(f"{key}:{pid}", "Process IOC Detected", sev, f"Process with {what}: {key}", meta)
    f["_src"] = (pid, exe, argv0, env, deleted, pid_count)
    return f


def _pids(f: dict) -> tuple[list[str], int]:
    """(the pids a 0.1.x IOC finding names, its pid_count when it names fewer than it counted, else 0)."""
    md = f.get("metadata") or {}
    head = str(f.get("id", "")).rsplit(":", 1)[0]
    pids = [head] if head.isdigit() else [p for p in str(md.get("sample_pids", "")).split(",") if p.isdigit()]
    count = int(md["pid_count"]) if str(md.get("pid_count", "")).isdigit() else 0
    return pids, count if count > len(pids) else 0


def _ioc(f: dict, ctx: dict) -> list[dict] | str:
    md = f.get("metadata") or {}
    title = f.get("title")
    argv0_of = ctx["argv0_by_pid"]
    pids, count = _pids(f)
    exe = str(md.get("exe", ""))
    if title == "Process IOC":
        if not pids:
            return "Process IOC without a pid"
        argv0 = str(f.get("description", ""))
        deleted = md.get("deleted_exe") == "true"
        return [_ioc_finding(p, exe, argv0_of.get(p, argv0), False, deleted, count) for p in pids]
    if title == "Suspicious environment":
        if not pids:
            return "environment finding without a pid"
        exe = "" if exe == "<unknown>" else exe
        allowed = [a for a in ctx["ioc_allow"] if a in exe]
        if allowed or f.get("severity") == "low":  # 0.1.x rates an environment hit low only when allowlisted
            why = f"--ioc-allow {allowed[0]!r}" if allowed else "sys-scan 0.1.x rated it low, i.e. allowlisted"
            return f"environment hit on an executable the user allowlisted ({why}): benign by the user's word"
        return [_ioc_finding(p, exe, argv0_of.get(p, ""), True, False, count) for p in pids]
    return f"'{title}' has no sys-scan 5.0.0 counterpart"


def _merge_ioc(findings: list[dict]) -> list[dict]:
    """One finding per process, as 5.0.0 writes: 0.1.x reported a pid's pattern hit and its environment hit
    apart."""
    by_id: dict[str, tuple] = {}
    for f in findings:
        src = f.pop("_src")
        old = by_id.get(f["id"])
        if old is not None:
            src = (*src[:3], src[3] or old[3], src[4] or old[4], max(src[5], old[5]))
        by_id[f["id"]] = src
    merged = [_ioc_finding(*src) for src in by_id.values()]
    for f in merged:
        f.pop("_src")
    return merged


def _one_per_path(findings: list[dict], scanner: str, notes: list[dict]) -> list[dict]:
    """The highest-rated finding per path: on merged /usr, /bin/x and /usr/bin/x are one file reported twice."""
    best: dict[str, dict] = {}
    for f in findings:
        kept = best.get(f["id"])
        if kept is not None:
            notes.append(
                {
                    "scanner": scanner,
                    "id": f["id"],
                    "reason": "the same file reported under its /bin or /sbin name as well (merged /usr): kept once",
                }
            )
        if kept is None or SEVERITY_SCORE[f["severity"]] > SEVERITY_SCORE[kept["severity"]]:
            best[f["id"]] = f
    return list(best.values())


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
    if "cmdline" in meta:
        meta["cmdline"] = repaired_cmdline(meta["cmdline"])
    argv = meta.get("cmdline", "").split()
    results = report.get("results") if isinstance(report.get("results"), list) else []
    ctx = {
        "argv0_by_pid": {
            str(f.get("id")): str(f.get("description", ""))
            for r in results
            if isinstance(r, dict) and r.get("scanner") == "processes"
            for f in r.get("findings") or []
            if isinstance(f, dict)
        },
        "ioc_allow": ioc_allow(argv),
        "merged_usr": merged_usr(old_meta, results),
        "arch": str(old_meta.get("arch", "")),
        "notes": [],
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
        if scanner == "ioc":
            findings = _merge_ioc(findings)
        elif scanner in ("suid_sgid", "world_writable"):
            findings = _one_per_path(findings, scanner, left_out)
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
    left_out += ctx["notes"]
    meta["effective_config"] = effective_config(argv, {r["scanner"] for r in out_results})
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
