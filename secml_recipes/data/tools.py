"""The analyst's tools and the simulated environment that answers them.

Every answer is derived from the scan itself (and the reference enricher), never from the machine that
runs this code: no shell, no file access. Training episodes and the evaluation's rollouts use this same
`ScanEnvironment`, so what the model learns to expect from a tool is what it will get.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jsonschema

from .enrich import ATTACK_TACTICS, ATTACK_TECHNIQUES, enrich_finding, is_stock
from .generate import STOCK_SUID

PACKAGE_OWNERS = {
    "/usr/bin/sudo": "sudo", "/usr/bin/su": "util-linux", "/usr/bin/mount": "mount", "/usr/bin/umount": "mount",
    "/usr/bin/passwd": "passwd", "/usr/bin/chfn": "passwd", "/usr/bin/chsh": "passwd", "/usr/bin/newgrp": "login",
    "/usr/bin/gpasswd": "passwd", "/usr/bin/chage": "passwd", "/usr/bin/expiry": "passwd", "/usr/bin/crontab": "cron",
    "/usr/bin/at": "at", "/usr/bin/fusermount3": "fuse3", "/usr/sbin/pppd": "ppp", "/usr/sbin/unix_chkpwd": "libpam-modules-bin",
    "/usr/sbin/pam_extrausers_chkpwd": "libpam-extrausers", "/usr/bin/ssh-agent": "openssh-client",
    "/usr/lib/openssh/ssh-keysign": "openssh-client", "/usr/lib/dbus-1.0/dbus-daemon-launch-helper": "dbus-daemon",
    "/usr/sbin/sshd": "openssh-server", "/usr/sbin/nginx": "nginx-core", "/usr/bin/redis-server": "redis-server",
    "/usr/bin/dockerd": "docker.io", "/usr/sbin/cupsd": "cups-daemon", "/usr/sbin/avahi-daemon": "avahi-daemon",
    "/usr/sbin/chronyd": "chrony", "/usr/lib/systemd/systemd-resolved": "systemd-resolved",
    "/usr/bin/prometheus-node-exporter": "prometheus-node-exporter", "/usr/bin/ps": "procps", "/usr/bin/ls": "coreutils",
    "/usr/bin/netstat": "net-tools", "/bin/ping": "iputils-ping", "/usr/bin/ping": "iputils-ping",
    "/bin/mtr-packet": "mtr-tiny", "/usr/bin/mtr-packet": "mtr-tiny", "/usr/bin/gnome-shell": "gnome-shell",
    "/usr/lib/firefox/firefox": "firefox", "/usr/share/code/code": "code",
    "/usr/lib/postgresql/16/bin/postgres": "postgresql-16",
}

TOOL_SCHEMAS: list[dict] = [
    {"type": "function", "function": {
        "name": "query_baseline", "description": "Whether a finding was already present in this host's baseline scan.",
        "parameters": {"type": "object", "properties": {"finding_id": {"type": "string", "description": "finding id as in the scan"}},
                       "required": ["finding_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "hash_binary", "description": "SHA-256 of a file on the host and whether it matches a known-good package build.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "absolute path"}},
                       "required": ["path"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "query_package_manager", "description": "Which installed package owns a file, and whether the file verifies.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "absolute path"}},
                       "required": ["path"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "check_process_details", "description": "Executable, command line, user and sockets of a running process.",
        "parameters": {"type": "object", "properties": {"pid": {"type": "integer", "minimum": 1}},
                       "required": ["pid"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "lookup_attack_technique", "description": "Name and tactic of a MITRE ATT&CK technique id.",
        "parameters": {"type": "object", "properties": {"technique_id": {"type": "string", "pattern": "^T\\d{4}(\\.\\d{3})?$"}},
                       "required": ["technique_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "search_findings", "description": "Search the scan's findings by text, optionally by severity or scanner.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical", "error"]},
            "scanner": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 20}},
            "required": ["query"], "additionalProperties": False}}},
]
TOOL_NAMES = [t["function"]["name"] for t in TOOL_SCHEMAS]


class ToolError(Exception):
    """A tool call the environment refuses: unknown tool or arguments that break its schema."""


class ScanEnvironment:
    """Answers tool calls about one scanned host, deterministically, from the scan alone."""

    def __init__(self, report: dict):
        self.report = report
        self.hostname = report.get("meta", {}).get("hostname", "host")
        self.findings: list[tuple[str, dict]] = [
            (r.get("scanner", ""), f) for r in report.get("results", []) for f in r.get("findings", [])
        ]
        self.processes: dict[int, dict] = {}
        for scanner, f in self.findings:
            md = f.get("metadata", {})
            if scanner == "processes" and f["id"].isdigit():
                self.processes[int(f["id"])] = {"pid": int(f["id"]), "cmdline": f.get("description", ""),
                                                "exe": f.get("description", "").split(" ")[0], "uid": md.get("uid", "")}
            if scanner == "ioc" and md.get("pid", "").isdigit():
                pid = int(md["pid"])
                entry = self.processes.setdefault(pid, {"pid": pid, "cmdline": md.get("command", ""),
                                                        "exe": f["id"].rsplit(":", 1)[0], "uid": ""})
                entry["ioc"] = True
                if md.get("deleted_executable") == "true":
                    entry["exe"] += " (deleted)"
        for scanner, f in self.findings:
            md = f.get("metadata", {})
            if scanner == "network" and md.get("pid", "").isdigit():
                pid = int(md["pid"])
                entry = self.processes.setdefault(pid, {"pid": pid, "cmdline": md.get("exe", ""), "exe": md.get("exe", ""),
                                                        "uid": md.get("uid", "")})
                entry.setdefault("sockets", []).append(
                    f"{md.get('protocol')} {md.get('state', 'UDP')} {md.get('lip')}:{md.get('lport')}"
                    + (f" -> {md.get('rip')}:{md.get('rport')}" if md.get("state") == "ESTABLISHED" else ""))
        self.paths = {f["id"] for s, f in self.findings if f["id"].startswith("/")}
        self.paths |= {p["exe"].replace(" (deleted)", "") for p in self.processes.values()}
        self.paths |= {f.get("metadata", {}).get("path", "") for s, f in self.findings} - {""}
        self.modified = {f.get("metadata", {}).get("path") for s, f in self.findings
                         if s == "integrity" and f["severity"] != "info"}

    # -- dispatch ---------------------------------------------------------------------------
    def call(self, name: str, arguments: dict | str) -> dict:
        """Run one tool call; returns the JSON-able result (an `error` key for tool-level failures)."""
        if name not in TOOL_NAMES:
            raise ToolError(f"unknown tool '{name}'; declared tools: {', '.join(TOOL_NAMES)}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as err:
                raise ToolError(f"arguments of {name} are not JSON: {err}") from None
        schema = next(t["function"]["parameters"] for t in TOOL_SCHEMAS if t["function"]["name"] == name)
        try:
            jsonschema.validate(arguments, schema)
        except jsonschema.ValidationError as err:
            raise ToolError(f"invalid arguments for {name}: {err.message}") from None
        return getattr(self, f"_{name}")(**arguments)

    # -- tools ------------------------------------------------------------------------------
    def _finding(self, finding_id: str) -> tuple[str, dict] | None:
        return next(((s, f) for s, f in self.findings if f["id"] == finding_id), None)

    def _query_baseline(self, finding_id: str) -> dict:
        hit = self._finding(finding_id)
        if hit is None:
            return {"error": f"no finding with id {finding_id!r} in this scan"}
        scanner, f = hit
        status = "existing" if is_stock(scanner, f) else "new"
        result = {"finding_id": finding_id, "status": status}
        if status == "existing":
            days = int(hashlib.sha256(f"{self.hostname}:{finding_id}".encode()).hexdigest()[:4], 16) % 300 + 30
            result["first_seen_days_ago"] = days
        return result

    def _hash_binary(self, path: str) -> dict:
        clean = path.replace(" (deleted)", "")
        if clean not in self.paths:
            return {"error": f"{path}: no such file on {self.hostname}"}
        if any(p["exe"] == f"{clean} (deleted)" for p in self.processes.values()):
            return {"error": f"{path}: file was deleted from disk (still mapped by a running process)"}
        digest = hashlib.sha256(f"{self.hostname}:{clean}".encode()).hexdigest()
        owner = PACKAGE_OWNERS.get(clean)
        known_good = owner is not None and clean not in self.modified
        if owner:
            digest = hashlib.sha256(f"pkg:{owner}:{clean}".encode()).hexdigest() if known_good else digest
        return {"path": clean, "sha256": digest, "known_good": known_good, "package": owner}

    def _query_package_manager(self, path: str) -> dict:
        owner = PACKAGE_OWNERS.get(path)
        if owner is None:
            return {"path": path, "owned_by": None, "note": "no installed package owns this file"}
        return {"path": path, "owned_by": owner, "verified": path not in self.modified,
                "suid_expected": STOCK_SUID.get(path, False)}

    def _check_process_details(self, pid: int) -> dict:
        proc = self.processes.get(pid)
        if proc is None:
            return {"error": f"no process with pid {pid} (it may have exited)"}
        return {"pid": pid, "exe": proc["exe"], "cmdline": proc["cmdline"], "uid": proc.get("uid", ""),
                "sockets": proc.get("sockets", []), "flagged_by_ioc_scanner": bool(proc.get("ioc"))}

    def _lookup_attack_technique(self, technique_id: str) -> dict:
        name = ATTACK_TECHNIQUES.get(technique_id)
        if name is None:
            return {"error": f"technique {technique_id} is not in the local ATT&CK table"}
        return {"technique_id": technique_id, "name": name, "tactic": ATTACK_TACTICS[technique_id]}

    def _search_findings(self, query: str, severity: str | None = None, scanner: str | None = None,
                         limit: int = 10) -> dict:
        q = query.lower()
        hits = []
        for s, f in self.findings:
            if severity and f["severity"] != severity:
                continue
            if scanner and s != scanner:
                continue
            text = " ".join([f["id"], f["title"], f.get("description", ""), json.dumps(f.get("metadata", {}))]).lower()
            if q in text:
                e = enrich_finding(s, f)
                hits.append({"id": f["id"], "scanner": s, "severity": f["severity"], "title": f["title"],
                             "risk_score": e["risk_score"]})
        hits.sort(key=lambda h: (-h["risk_score"], h["id"]))
        return {"total": len(hits), "results": hits[:limit]}


def tool_result_text(result: dict[str, Any]) -> str:
    """How a tool result appears in a `tool` message: compact JSON."""
    return json.dumps(result, separators=(",", ":"), sort_keys=True)
