"""sys-scan's `--ndjson` stream: written as JSONWriter::write (5.0.0) writes it, and read back into the
report shape.

The stream is one JSON object per line: `meta` (tool_version, schema, hostname, numeric uid/euid/gid/egid,
user, cmdline), `summary` (counts, numeric scanner_count, slowest_scanner), optional `timing` lines
(`--timings`), `summary_extension`, then one `finding` per finding (scanner, id, severity, numeric
base_severity_score, optional operational_error and mitre_techniques). It carries no title, description,
metadata, kernel, OS, collection warning or time stamps.

Reading it back, a finding's title, description and metadata are filled in only where 5.0.0's source
makes them a function of the scanner, id and severity (e.g. a SUID finding at low severity is an expected
binary; an IOC at critical severity has a deleted executable); anything else stays absent rather than
guessed. A finding whose title the stream cannot give (`proc.exec.detected`, whose title names the
process) is left out and reported, never silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from secml_recipes.scan import spec_5_0_0 as spec
from secml_recipes.scan.v5_0_0 import HARDENING_SYSCTLS, LOCKDOWN, MOUNT_RULES, UNIT_RECOMMENDATIONS

SCHEMA_URL = "https://github.com/J-mazz/sys-scan/schema/v2.json"
_SEVERITIES = ("info", "low", "medium", "high", "critical", "error")


def _escape(s: str) -> str:
    """jsonutil::escape: quote, backslash, \\n, \\r, \\t escaped; other control bytes as \\u00XX."""
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def write_ndjson(report: dict, timings: bool = False) -> str:
    """The `--ndjson` output of the scan behind `report`, field by field as 5.0.0's writer prints it."""
    meta, summary = report["meta"], report["summary"]
    line = (
        f'{{"type":"meta","tool_version":"{_escape(meta["tool_version"])}","schema":"2"'
        f',"hostname":"{_escape(meta["hostname"])}"'
    )
    if "uid" in meta:
        line += (
            f',"uid":{int(meta["uid"])},"euid":{int(meta["euid"])},"gid":{int(meta["gid"])}'
            f',"egid":{int(meta["egid"])},"user":"{_escape(meta["user"])}"'
        )
    if meta.get("cmdline"):
        line += f',"cmdline":"{_escape(meta["cmdline"])}"'
    lines = [line + "}"]
    line = (
        f'{{"type":"summary","duration_ms":{summary["duration_ms"]},"finding_count_total":'
        f'{summary["finding_count_total"]},"finding_count_emitted":{summary["finding_count_emitted"]},'
        f'"scanner_count":{int(summary["scanner_count"])},'
        f'"scanners_with_findings":{summary["scanners_with_findings"]}'
    )
    slowest = summary.get("slowest_scanner", {})
    if slowest.get("name"):
        line += f',"slowest_scanner":{{"name":"{_escape(slowest["name"])}","elapsed_ms":{int(slowest["elapsed_ms"])}}}'
    lines.append(line + "}")
    if timings:
        lines += [
            f'{{"type":"timing","scanner":"{_escape(r["scanner"])}","elapsed_ms":{r["elapsed_ms"]}}}'
            for r in report["results"]
        ]
    ext = report["summary_extension"]
    lines.append(
        f'{{"type":"summary_extension","total_risk_score":{ext["total_risk_score"]},'
        f'"emitted_risk_score":{ext.get("emitted_risk_score", ext["total_risk_score"])}}}'
    )
    for r in report["results"]:
        for f in r["findings"]:
            line = (
                f'{{"type":"finding","scanner":"{_escape(r["scanner"])}","id":"{_escape(f["id"])}",'
                f'"severity":"{_escape(f["severity"])}","base_severity_score":{int(f["base_severity_score"])}'
            )
            if "mitre_techniques" in f.get("metadata", {}):
                line += f',"mitre_techniques":"{_escape(f["metadata"]["mitre_techniques"])}"'
            lines.append(line + "}")
    return "".join(x + "\n" for x in lines)


# -- reading ---------------------------------------------------------------------------------------------

_LINE_KEYS = {  # type -> {key: python type} every line of that type carries
    "meta": {"tool_version": str, "schema": str, "hostname": str},
    "summary": {
        "duration_ms": int,
        "finding_count_total": int,
        "finding_count_emitted": int,
        "scanner_count": int,
        "scanners_with_findings": int,
    },
    "timing": {"scanner": str, "elapsed_ms": int},
    "summary_extension": {"total_risk_score": int, "emitted_risk_score": int},
    "finding": {"scanner": str, "id": str, "severity": str, "base_severity_score": int},
}


def is_ndjson_line(obj) -> bool:
    """A line of sys-scan's stream (a `type` sys-scan writes), as opposed to a whole report."""
    return isinstance(obj, dict) and obj.get("type") in _LINE_KEYS


def line_error(obj) -> str | None:
    """Why `obj` is not a well-formed line of the stream, or None."""
    if not isinstance(obj, dict):
        return f"a line is a JSON object, got {type(obj).__name__}"
    kind = obj.get("type")
    if kind not in _LINE_KEYS:
        return f"unknown line type {kind!r}; sys-scan writes {', '.join(_LINE_KEYS)}"
    for key, tp in _LINE_KEYS[kind].items():
        if key not in obj:
            return f"{kind} line without '{key}'"
        if not isinstance(obj[key], tp) or isinstance(obj[key], bool):
            return f"{kind} line: '{key}' is {type(obj[key]).__name__}, sys-scan writes {tp.__name__}"
    if kind == "finding" and obj["severity"] not in _SEVERITIES:
        return f"finding line: severity {obj['severity']!r} is none of {', '.join(_SEVERITIES)}"
    return None


@dataclass
class Stream:
    """One scan's lines (from its `meta` line up to the next `meta`), with their line numbers."""

    first_line: int
    lines: list[tuple[int, dict]] = field(default_factory=list)


def split_streams(rows: list[tuple[int, dict]]) -> tuple[list[Stream], list[tuple[int, str]]]:
    """Group checked lines into scans; lines before any `meta` line are refused with the reason."""
    streams: list[Stream] = []
    orphans = []
    for line_no, obj in rows:
        if obj["type"] == "meta":
            streams.append(Stream(line_no, [(line_no, obj)]))
        elif streams:
            streams[-1].lines.append((line_no, obj))
        else:
            orphans.append((line_no, f"{obj['type']} line before any meta line (a stream starts with meta)"))
    return streams, orphans


def stream_to_report(stream: Stream) -> tuple[dict, list[tuple[int, str]]]:
    """The report shape of one scan, and the finding lines left out with the reason."""
    meta_line = stream.lines[0][1]
    meta = {
        "$schema": SCHEMA_URL,
        "hostname": meta_line["hostname"],
        "json_schema_version": "2",
        "tool_version": meta_line["tool_version"],
    }
    for key in ("uid", "euid", "gid", "egid"):
        if isinstance(meta_line.get(key), int):
            meta[key] = str(meta_line[key])
    for key in ("user", "cmdline", "normalized_time"):
        if isinstance(meta_line.get(key), str):
            meta[key] = meta_line[key]
    summary_line = next((o for _, o in stream.lines if o["type"] == "summary"), {})
    ext_line = next((o for _, o in stream.lines if o["type"] == "summary_extension"), {})
    timings = {o["scanner"]: o["elapsed_ms"] for _, o in stream.lines if o["type"] == "timing"}
    results = {name: {"scanner": name, "elapsed_ms": ms, "findings": []} for name, ms in timings.items()}
    left_out = []
    for line_no, o in stream.lines:
        if o["type"] != "finding":
            continue
        f, reason = rebuild_finding(o)
        if f is None:
            left_out.append((line_no, reason))
            continue
        results.setdefault(o["scanner"], {"scanner": o["scanner"], "findings": []})["findings"].append(f)
    counts: dict[str, int] = {}
    for r in results.values():
        r["finding_count"] = len(r["findings"])
        for f in r["findings"]:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    summary = {
        k: summary_line[k]
        for k in ("duration_ms", "finding_count_total", "finding_count_emitted", "scanners_with_findings")
        if k in summary_line
    }
    if "scanner_count" in summary_line:
        summary["scanner_count"] = str(summary_line["scanner_count"])
    slowest = summary_line.get("slowest_scanner")
    if isinstance(slowest, dict) and "name" in slowest:
        summary["slowest_scanner"] = {"elapsed_ms": str(slowest.get("elapsed_ms", 0)), "name": slowest["name"]}
    if summary.get("duration_ms"):
        rate = summary.get("finding_count_emitted", 0) * 1000 / summary["duration_ms"]
        summary["findings_per_second"] = float(f"{rate:.2f}")
    summary["severity_counts"] = dict(sorted(counts.items()))
    summary["severity_counts_emitted"] = dict(sorted(counts.items()))
    report = {
        "collection_warnings": [],
        "meta": dict(sorted(meta.items())),
        "results": list(results.values()),
        "scanner_errors": [],
        "summary": dict(sorted(summary.items())),
        "summary_extension": {
            "emitted_risk_score": ext_line.get("emitted_risk_score", 0),
            "total_risk_score": ext_line.get("total_risk_score", 0),
        },
    }
    return report, left_out


# -- what a finding line determines (5.0.0's source) -------------------------------------------------------

_KERNEL_PARAMS = {
    "/proc/sys/kernel/randomize_va_space": ("2", "ASLR should be full (2)"),
    "/proc/sys/kernel/kptr_restrict": ("1", "Kernel pointer addresses restricted"),
    "/proc/sys/net/ipv4/conf/all/rp_filter": ("1", "Reverse path filtering"),
    "/proc/sys/net/ipv4/ip_forward": ("0", "IP forwarding disabled unless a router"),
}


def _fixed_forms():
    """id -> (title, {severity: description} or a description, metadata) for ids with one form."""
    out = {}
    for id_, title, _severity, desc in LOCKDOWN.values():
        out[id_] = (title, desc, {})
    out["kernel:secureboot:efi"] = (
        "EFI firmware detected",
        "System booted with EFI (secure boot state heuristic)",
        {"efi": "present"},
    )
    out["kernel:secureboot:dbx-missing"] = (
        "EFI dbx revocation list not detected",
        "Could not locate dbx revocation entries (heuristic)",
        {},
    )
    out["kernel:ima:policy"] = ("IMA policy present", None, {})
    out["kernel:tpm:present"] = ("TPM device present", "Trusted Platform Module detected", {})
    out["kernel:tpm:absent"] = ("No TPM device", "TPM not detected (may reduce attestation options)", {})
    for path, id_, title, expect, _, bad, good in HARDENING_SYSCTLS:
        out[f"kernel:sysctl:{id_}"] = (title, ("good", good, bad), {"path": path, "expected": expect})
    for form in spec.FORMS["auditd"]:
        id_ = form.id.replace("\\", "")
        descs = form.descriptions
        out[id_] = (form.title.replace("\\", ""), descs[0] if len(descs) == 1 else ("good", descs[0], descs[1]), {})
    out["selinux"] = ("SELinux status", "SELinux detection", {})
    out["apparmor"] = ("AppArmor status", "AppArmor detection", {})
    out["mac_none"] = ("No MAC enforcement", "Neither SELinux nor AppArmor appears active", {})
    out["mac_dual"] = ("Dual MAC layers", "Both SELinux and AppArmor appear present (double-check for conflicts)", {})
    out["container:none"] = ("No containers detected", "No container cgroup signatures found", {})
    out["integrity_summary"] = ("Integrity summary", "Package / integrity verification", {})
    out["module_summary"] = ("Kernel modules summary", "Loaded kernel modules inventory", {})
    out["ebpf:disabled"] = (
        "eBPF support not available at runtime",
        "eBPF tools not installed, incompatible kernel, or missing capabilities. Using alternative detection methods.",
        {"alternative_detection": "true", "source": "ebpf_fallback", "detection_method": "runtime_check"},
    )
    out["proc.monitoring.complete"] = (
        "Process monitoring completed via /proc filesystem",
        "Alternative process monitoring completed using /proc polling method",
        {"source": "proc_fallback", "method": "filesystem_polling"},
    )
    return out


_FIXED: dict | None = None
_IOC_BY_SEVERITY = {
    "critical": ("deleted executable", "deleted_executable"),
    "high": ("world-writable executable", "world_writable_executable"),
    "medium": ("suspicious environment", "environment_issue"),
    "low": ("suspicious patterns", "pattern_match"),
}


def rebuild_finding(o: dict) -> tuple[dict | None, str]:
    """A report finding from a `finding` line: fields the source determines are filled, the rest left out;
    (None, reason) when not even the title is determined."""
    global _FIXED
    if _FIXED is None:
        _FIXED = _fixed_forms()

    scanner, fid, sev = o["scanner"], o["id"], o["severity"]
    title, desc, meta = None, None, {}
    if fid.endswith(":error") and sev == "error":
        title = "Scanner error"
    elif fid in _FIXED:
        title, spec_desc, meta = _FIXED[fid]
        meta = dict(meta)
        if isinstance(spec_desc, tuple):
            desc = spec_desc[1] if sev == "info" else spec_desc[2]
            if fid.startswith("kernel:sysctl:") and sev == "info":
                meta["value"] = meta["expected"]
        else:
            desc = spec_desc
    elif scanner == "processes" and fid.isdigit():
        title = f"Process {fid}"
    elif scanner == "kernel_params" and fid in _KERNEL_PARAMS:
        desired, desc = _KERNEL_PARAMS[fid]
        title, meta = fid, {"desired": desired}
        if sev != "info":
            meta["status"] = "mismatch"
        elif not fid.endswith("ip_forward"):
            meta["current"] = desired
    elif scanner == "modules":
        title, desc = (f"Module {fid}", "Loaded kernel module") if sev == "info" else (f"Module anomaly: {fid}", None)
    elif scanner == "suid_sgid" and fid.startswith("/"):
        title, desc = "SUID/SGID binary", "Binary has SUID or SGID bit set"
        if sev == "low":
            meta = {"expected": "true"}
    elif scanner == "world_writable" and fid.startswith("/"):
        if fid.endswith(":dangling_suid_link"):
            title, desc = "Dangling SUID hardlink", "SUID binary hardlinked into temporary/untrusted location"
            meta = {"rule": "dangling_suid_hardlink"}
        elif sev == "critical":
            title, desc = "Setuid interpreter", "Setuid shell or script interpreter"
            meta = {"rule": "setuid_interpreter"}
        elif sev == "medium" and "/bin/" in fid:  # a world-writable file under a bin/ folder is high, never medium
            title, desc = "File capabilities binary", "Binary has file capabilities set"
            meta = {"rule": "file_capability"}
        else:
            title, desc = "World-writable file", "File is world writable"
    elif scanner == "ioc" and re.fullmatch(r".+:\d+", fid) and sev in _IOC_BY_SEVERITY:
        exe, pid = fid.rsplit(":", 1)
        what, flag = _IOC_BY_SEVERITY[sev]
        title, desc, meta = "Process IOC Detected", f"Process with {what}: {exe}", {"pid": pid, flag: "true"}
    elif scanner == "mounts" and (m := re.fullmatch(r"mount:([a-z\-]+):(/.*)", fid)) and m.group(1) in MOUNT_RULES:
        _, title, desc = MOUNT_RULES[m.group(1)]
        meta = {"mount": m.group(2)}
    elif scanner == "systemd_units" and (m := re.fullmatch(r"systemd:([A-Za-z]+):(.+)", fid)):
        rec = next((r for r in UNIT_RECOMMENDATIONS if r[0] == m.group(1)), None)
        if rec:
            key, expect, _, bad, good = rec
            title = f"{m.group(2)} {key}"
            meta = {"unit": m.group(2), "key": key, "expected": expect}
            if sev == "info":
                desc = good
                if expect:
                    meta["value"] = expect
    elif scanner == "containers" and (m := re.fullmatch(r"container:([0-9a-fA-F]{12}|kubepods)", fid)):
        title, desc = f"Container detected {m.group(1)}", "Container runtime context"
    elif scanner == "integrity" and re.fullmatch(r"pkg_mismatch:\d+", fid):
        title = "Package file mismatch"
    elif scanner == "integrity" and fid.startswith("pkg_rehash:"):
        title, desc, meta = (
            "Package mismatch file hash",
            "Recomputed SHA256 for mismatched file",
            {"path": fid.removeprefix("pkg_rehash:")},
        )
    elif scanner == "yara" and ":yara:" in fid:
        title, desc = "Pseudo-YARA pattern match", "Pattern found in file prefix"
        meta = {"path": fid.split(":yara:")[0]}
    elif scanner == "pci_compliance" and (m := re.fullmatch(r"pci_dss_4_0:(.+)", fid)):
        title, meta = f"pci_dss_4_0 control {m.group(1)}", {"standard": "pci_dss_4_0", "control_id": m.group(1)}
    if title is None:
        return None, (
            f"{scanner} finding {fid!r}: its title carries data the --ndjson stream does not record"
            if fid == "proc.exec.detected"
            else f"{scanner} finding {fid!r}: no sys-scan 5.0.0 form gives a title for this id"
        )
    if "mitre_techniques" in o and isinstance(o["mitre_techniques"], str):
        meta["mitre_techniques"] = o["mitre_techniques"]
    f = {
        "base_severity_score": str(o["base_severity_score"]),
        "id": fid,
        "metadata": dict(sorted(meta.items())),
        "severity": sev,
        "title": title,
    }
    if desc is not None:
        f["description"] = desc
    return dict(sorted(f.items())), ""


def read_ndjson_lines(text: str) -> list[tuple[int, dict | None, str | None]]:
    """(line number, object or None, reason or None) for every non-blank line."""
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            out.append((line_no, None, f"not JSON: {err}"))
            continue
        out.append((line_no, obj, None))
    return out
