"""What real Linux machines carry: distributions, kernel modules, SUID/SGID and file-capability binaries,
processes, mounts, systemd units, audit rules and package-verification output.

These are facts about hosts, independent of the scanner version; a scanner version (`v5_0_0.py`) decides
what it reports about them. The tables live in `catalog/*.yaml` (a reviewer edits them there, each file says
where its values come from); this module loads them into immutable constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from secml_recipes.knowledge_files import (
    BOOL,
    INT,
    NUM,
    STR,
    KnowledgeFileError,
    frozen,
    load_table,
    mapping,
    record,
    seq,
)

_STRS = seq(STR)
_SETS = mapping(mapping(_STRS))  # distro -> group -> paths


def _load(name: str, tables: dict) -> dict:
    return load_table(__package__, f"catalog/{name}.yaml", record(tables))


# -- distributions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distro:
    os_id: str
    os_version: str
    os_pretty: tuple[str, ...]  # PRETTY_NAME values seen across point releases
    kernels: tuple[str, ...]
    pkg_tool: str  # "dpkg" or "rpm" (what /usr/bin holds)
    mac: str  # "apparmor" or "selinux"
    module_ext: str  # how /lib/modules/<rel>/modules.dep names module files
    sysctl: dict  # distribution defaults of the sysctls sys-scan reads
    tmp_tmpfs: bool  # /tmp is a tmpfs by default
    rootfs: str  # default root filesystem type


_DISTRO_FIELDS = {"os_id": STR, "os_version": STR, "os_pretty": _STRS, "kernels": _STRS, "pkg_tool": STR, "mac": STR,
                  "module_ext": STR, "sysctl": STR, "tmp_tmpfs": BOOL, "rootfs": STR}  # fmt: skip
_D = _load("distros", {"sysctl_defaults": mapping(mapping(STR)), "distros": mapping(record(_DISTRO_FIELDS))})
_SYSCTL_SETS: dict[str, dict[str, str]] = _D["sysctl_defaults"]


def _distro(key: str, row: dict) -> Distro:
    if row["sysctl"] not in _SYSCTL_SETS:
        raise KnowledgeFileError(
            f"secml_recipes/scan/catalog/distros.yaml: key distros/{key}/sysctl: "
            f"no sysctl_defaults set named {row['sysctl']!r}"
        )
    return Distro(**dict(frozen(row), sysctl=_SYSCTL_SETS[row["sysctl"]]))


DISTROS = {key: _distro(key, row) for key, row in _D["distros"].items()}

# -- kernel modules (names as /proc/modules lists them) ----------------------------------------------

_M = _load(
    "modules",
    {
        "module_groups": mapping(_STRS),
        "out_of_tree_groups": mapping(_STRS),
        "masquerading_modules": _STRS,
        "sysfs_only_builtins": _STRS,
        "role_module_groups": mapping(mapping(NUM)),
    },
)
MODULE_GROUPS: dict[str, tuple[str, ...]] = frozen(_M["module_groups"])
OUT_OF_TREE_GROUPS: dict[str, tuple[str, ...]] = frozen(_M["out_of_tree_groups"])
MASQUERADING_MODULES: tuple[str, ...] = frozen(_M["masquerading_modules"])
SYSFS_ONLY_BUILTINS: tuple[str, ...] = frozen(_M["sysfs_only_builtins"])
# role -> ((group, probability a host of the role loads it), ...)
ROLE_MODULE_GROUPS: dict[str, tuple[tuple[str, float], ...]] = {
    role: tuple(groups.items()) for role, groups in _M["role_module_groups"].items()
}

# -- SUID/SGID and file-capability binaries, per distribution, in the roots sys-scan walks ------------

_S = _load("setid", {"suid_sgid": _SETS, "file_caps": _SETS})
SUID_SGID: dict[str, dict[str, tuple[str, ...]]] = frozen(_S["suid_sgid"])  # distro -> {"base": ..., "<package>": ...}
FILE_CAPS: dict[str, dict[str, tuple[str, ...]]] = frozen(_S["file_caps"])

# -- processes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A catalogue process: argv[0] as /proc/<pid>/cmdline shows it, the exe link target, its comm,
    the account it runs as ('root', '@user' for the logged-in user, or a service account uid)."""

    argv0: str
    exe: str
    comm: str
    uid: str = "root"
    count: int = 1
    unconfined_critical: bool = False  # one of sys-scan's critical binaries, unconfined by AppArmor


_PROC = record({"argv0": STR}, {"exe": STR, "comm": STR, "uid": STR, "count": INT})
_P = _load(
    "processes",
    {
        "critical_binaries": _STRS,
        "system_processes": mapping(seq(_PROC)),
        "role_processes": mapping(seq(_PROC)),
        "dev_home_processes": seq(record({"argv0": STR, "exe": STR})),
        "upgraded_exes": _STRS,
        "short_lived": seq(record({"comm": STR, "parent": STR})),
    },
)
_CRITICAL = frozenset(_P["critical_binaries"])


def _p(argv0: str, exe: str | None = None, comm: str | None = None, uid: str = "root", count: int = 1) -> Proc:
    """The process as the kernel shows it: exe defaults to argv[0], comm to the exe's name cut to 15 characters."""
    exe = exe or argv0
    return Proc(argv0, exe, (comm or exe.rsplit("/", 1)[-1])[:15], uid, count, exe in _CRITICAL)


SYSTEM_PROCESSES: dict[str, tuple[Proc, ...]] = {
    key: tuple(_p(**row) for row in rows) for key, rows in _P["system_processes"].items()
}
ROLE_PROCESSES: dict[str, tuple[Proc, ...]] = {
    key: tuple(_p(**row) for row in rows) for key, rows in _P["role_processes"].items()
}
# Processes run from a user's home, a temporary folder or an AppImage mount: (argv0, exe) with {home}
DEV_HOME_PROCESSES: tuple[tuple[str, str], ...] = tuple((r["argv0"], r["exe"]) for r in _P["dev_home_processes"])
UPGRADED_EXES: tuple[str, ...] = frozen(_P["upgraded_exes"])
SHORT_LIVED: tuple[tuple[str, str], ...] = tuple((r["comm"], r["parent"]) for r in _P["short_lived"])  # comm, parent

# -- systemd service units ---------------------------------------------------------------------------

_U = _load(
    "units",
    {
        "unit_templates": mapping(mapping(STR)),
        "units": seq(record({"unit": STR, "template": STR, "distros": STR, "roles": STR})),
        "unit_aliases": seq(record({"alias": STR, "target": STR, "distros": STR})),
    },
)
UNIT_TEMPLATES: dict[str, dict[str, str]] = _U["unit_templates"]
# (unit file name, template, distros or "*", role tags or "*")
UNITS: tuple[tuple[str, str, str, str], ...] = tuple(
    (r["unit"], r["template"], r["distros"], r["roles"]) for r in _U["units"]
)
UNIT_ALIASES: tuple[tuple[str, str, str], ...] = tuple(
    (r["alias"], r["target"], r["distros"]) for r in _U["unit_aliases"]
)

# The service units each distribution family's packages ship (read from the packages themselves, see the file's
# header): the generator's stock units and the teacher's "distribution unit" both come from this list.
_PU = _load(
    "packaged_units",
    {
        "families": mapping(
            seq(
                record(
                    {"source": STR, "regenerate": STR, "packages": mapping(_STRS), "aliases": mapping(STR)},
                )
            )
        ),
        "distro_family": mapping(STR),
        "generated_prefixes": mapping(mapping(STR)),
    },
)
# family -> unit file name -> the package that ships it
PACKAGED_UNITS: dict[str, dict[str, str]] = {
    family: {unit: pkg for source in sources for pkg, units in source["packages"].items() for unit in units}
    for family, sources in _PU["families"].items()
}
# family -> alias -> unit (the units' own Alias= lines and the symlinks the packages ship)
UNIT_ALIAS_TARGETS: dict[str, dict[str, str]] = {
    family: {alias: target for source in sources for alias, target in source["aliases"].items()}
    for family, sources in _PU["families"].items()
}
# os_id -> family of the list above
UNIT_FAMILY_BY_OS_ID: dict[str, str] = _PU["distro_family"]
# family -> unit-name prefix -> the package that writes such units at run time (snapd's snap.<snap>.<app>.service)
GENERATED_UNIT_PREFIXES: dict[str, dict[str, str]] = _PU["generated_prefixes"]


def packaged_unit_package(unit: str, os_id: str) -> str | None:
    """The package of `os_id`'s family ('debian', 'rhel' or an os_id such as 'ubuntu') that ships `unit` (an instance
    matches its template, an alias its target, a generated unit its generator), or None."""
    family = UNIT_FAMILY_BY_OS_ID.get(os_id, os_id)
    table, aliases = PACKAGED_UNITS.get(family, {}), UNIT_ALIAS_TARGETS.get(family, {})
    template = unit if "@" not in unit else unit.split("@", 1)[0] + "@." + unit.rsplit(".", 1)[-1]
    for name in (unit, template):
        if name in table:
            return table[name]
        if aliases.get(name) in table:
            return table[aliases[name]]
    for prefix, package in GENERATED_UNIT_PREFIXES.get(family, {}).items():
        if unit.startswith(prefix):
            return package
    return None


def _check_stock_units() -> None:
    """Every unit the generator puts on a host as stock is one its distribution's packages ship."""
    for name, _, distros, _ in UNITS:
        for os_id in UNIT_FAMILY_BY_OS_ID if distros == "*" else distros.split(","):
            if packaged_unit_package(name, os_id) is None:
                raise KnowledgeFileError(
                    f"secml_recipes/scan/catalog/units.yaml: key units: {name} is listed for {os_id}, but no "
                    f"{UNIT_FAMILY_BY_OS_ID.get(os_id, os_id)} package ships it (catalog/packaged_units.yaml): "
                    "narrow its distros or add the package that ships it"
                )


_check_stock_units()

# -- mounts (/proc/mounts lines sys-scan reads: device mountpoint fstype options) ---------------------

_MOUNT = record({"device": STR, "mountpoint": STR, "fstype": STR, "options": STR})
_MT = _load("mounts", {"pseudo_mounts": seq(_MOUNT), "ext4_opts": STR, "xfs_opts": STR, "btrfs_opts": STR,
                       "tmpfs_tmp_opts": STR, "hardened_tmp_opts": STR})  # fmt: skip
PSEUDO_MOUNTS: tuple[tuple[str, str, str, str], ...] = tuple(
    (r["device"], r["mountpoint"], r["fstype"], r["options"]) for r in _MT["pseudo_mounts"]
)
EXT4_OPTS: str = _MT["ext4_opts"]
XFS_OPTS: str = _MT["xfs_opts"]
BTRFS_OPTS: str = _MT["btrfs_opts"]
TMPFS_TMP_OPTS: str = _MT["tmpfs_tmp_opts"]
HARDENED_TMP_OPTS: str = _MT["hardened_tmp_opts"]

# -- audit rules and package verification -------------------------------------------------------------

_A = _load("audit_rpm", {"audit_rule_sets": mapping(STR), "rpm_verify_lines": _STRS, "rpm_nonroot_lines": _STRS,
                         "rpm_tampered_binaries": _STRS})  # fmt: skip
AUDIT_RULE_SETS: dict[str, str] = _A["audit_rule_sets"]
RPM_VERIFY_LINES: tuple[str, ...] = frozen(_A["rpm_verify_lines"])
RPM_NONROOT_LINES: tuple[str, ...] = frozen(_A["rpm_nonroot_lines"])
RPM_TAMPERED_BINARIES: tuple[str, ...] = frozen(_A["rpm_tampered_binaries"])

# -- the logged-in users and host names; adversarial content planted on compromised hosts -------------

_MALWARE = record({"exe": STR, "argv0": STR, "unit": STR, "unlink_share": NUM})
_X = _load("people_and_adversary", {"users": _STRS, "hostname_stems": mapping(_STRS), "injections": _STRS,
                                    "malware": seq(_MALWARE), "rogue_suid": _STRS, "rogue_world_writable": _STRS,
                                    "yara_patterns": _STRS})  # fmt: skip
USERS: tuple[str, ...] = frozen(_X["users"])
HOSTNAME_STEMS: dict[str, tuple[str, ...]] = frozen(_X["hostname_stems"])
INJECTIONS: tuple[str, ...] = frozen(_X["injections"])
# exe path (with {home}), argv0 the process shows, persistence unit name, share that unlinks itself
MALWARE: tuple[tuple[str, str, str, float], ...] = tuple(
    (r["exe"], r["argv0"], r["unit"], r["unlink_share"]) for r in _X["malware"]
)
ROGUE_SUID: tuple[str, ...] = frozen(_X["rogue_suid"])
ROGUE_WORLD_WRITABLE: tuple[str, ...] = frozen(_X["rogue_world_writable"])
YARA_PATTERNS: tuple[str, ...] = frozen(_X["yara_patterns"])
