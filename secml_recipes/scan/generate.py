"""Synthetic raw sys-scan reports, one per host, exactly as a given sys-scan version writes them.

A `HostPlan` (profile + seed) becomes a machine (`sysscan.host.build_host`: files, processes, modules,
mounts, units, the command line sys-scan was run with); the scanner version's model (`sysscan.v5_0_0`)
then reports on that machine the way its C++ source does. The same plan and version give the same bytes.
What 5.0.0 can write at all is `sysscan.spec_5_0_0`; `secml data fidelity` compares
generated hosts with a real report against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

from secml_recipes.scan import DEFAULT_VERSION, scanner_version
from secml_recipes.scan import catalog as _catalog
from secml_recipes.scan.host import PROFILE_WEIGHTS, PROFILES, HostPlan, build_host, plan_hosts, plan_matching
from secml_recipes.scan.ndjson import write_ndjson

GENERATOR_VERSION = "2.2.0"  # 2.2: stock units only where the distribution's packages ship them (packaged_units.yaml)
__all__ = [
    "GENERATOR_VERSION",
    "PROFILES",
    "PROFILE_WEIGHTS",
    "HostPlan",
    "plan_hosts",
    "plan_matching",
    "generate_report",
    "generate_ndjson",
    "generate_reports",
    "report_bytes",
    "STOCK_MODULES",
    "STOCK_SUID",
    "INJECTIONS",
]

# The stock baseline the reference enricher and the tools compare against: every module name a catalogue
# host loads, and every distribution SUID/SGID path with whether sys-scan 5.0.0 marks it expected.
STOCK_MODULES = sorted(
    {m for group in (*_catalog.MODULE_GROUPS.values(), *_catalog.OUT_OF_TREE_GROUPS.values()) for m in group}
)
_EXPECTED_NAMES = {
    "passwd",
    "sudo",
    "chsh",
    "chfn",
    "newgrp",
    "gpasswd",
    "mount",
    "umount",
    "su",
    "pkexec",
    "traceroute6.iputils",
    "ping",
    "ping6",
    "ssh-agent",
}
STOCK_SUID = {
    path: path.rsplit("/", 1)[1] in _EXPECTED_NAMES
    for table in _catalog.SUID_SGID.values()
    for paths in table.values()
    for path in paths
}
INJECTIONS = list(_catalog.INJECTIONS)


def generate_report(plan: HostPlan, version: str = DEFAULT_VERSION) -> dict:
    """One raw report for the host of `plan`, as sys-scan `version` writes it (keys sorted when serialized)."""
    behaviour, _ = scanner_version(version)
    return behaviour.generate(build_host(plan))


def generate_ndjson(plan: HostPlan, version: str = DEFAULT_VERSION) -> str:
    """The same host's scan as sys-scan `version` prints it with --ndjson (one JSON object per line)."""
    behaviour, _ = scanner_version(version)
    host = build_host(plan)
    if "--ndjson" not in host.options.flags:  # the command line the stream records gains --ndjson
        host.options = replace(host.options, flags=(*host.options.flags, "--ndjson"))
    return write_ndjson(behaviour.generate(host, scan_order=True))  # findings in the order they were found


def generate_reports(n_hosts: int, seed: int, version: str = DEFAULT_VERSION) -> Iterator[dict]:
    for plan in plan_hosts(n_hosts, seed):
        yield generate_report(plan, version)


def report_bytes(report: dict) -> bytes:
    """Canonical bytes, as `sys-scan --canonical --compact` would write them."""
    return json.dumps(report, sort_keys=True, separators=(",", ":")).encode()
