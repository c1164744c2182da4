"""What a senior Linux analyst knows, as tables the teacher, the tools and the evaluation share.

- `hosts`: distribution families and their package-manager commands.
- `privileged`: which SUID/SGID and file-capability binaries stock Debian/Ubuntu and RHEL/Fedora ship, with
  which bit, owner group, package and why; third-party vendors' privileged binaries; GTFOBins' shell escapes.
- `packages`: a package database shaped like a real distribution's (package names, versions, owned paths,
  service units), behind the simulated `query_package_manager` / `hash_binary` tools.
- `sysctl`: stock values of the parameters sys-scan reads, what changing them breaks, which values are stricter,
  what shows that a host forwards packets on purpose.
- `units`: which service units a family's packages ship (the list the generator uses too), and which units a
  sandboxing directive breaks (login sessions, the system bus, display managers, updates).
- `autostart`: files root runs or loads on its own, and how to read them before fixing their mode.
- `scanner`: what each sys-scan 5.0.0 scanner and metadata flag checks in the C++ source, and which
  configuration switch gates which scanner (the coverage section).
- `attack`: the MITRE ATT&CK techniques the rules cite.
- `ioc`: user-installed programs the IOC heuristic flags, snap/Flatpak paths, suspicious process names,
  prompt-injection text.

Facts here are data, never code paths: a rule in `assess.py` looks a fact up instead of hard-coding it.
"""
