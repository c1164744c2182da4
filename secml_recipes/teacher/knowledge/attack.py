"""MITRE ATT&CK (Enterprise) techniques the rules cite: id -> (name, tactic)."""

from __future__ import annotations

TECHNIQUES = {
    "T1014": ("Rootkit", "defense-evasion"),
    "T1036.004": ("Masquerading: Masquerade Task or Service", "defense-evasion"),
    "T1036.005": ("Masquerading: Match Legitimate Name or Location", "defense-evasion"),
    "T1053.003": ("Scheduled Task/Job: Cron", "persistence"),
    "T1059.004": ("Command and Scripting Interpreter: Unix Shell", "execution"),
    "T1070.004": ("Indicator Removal: File Deletion", "defense-evasion"),
    "T1071": ("Application Layer Protocol", "command-and-control"),
    "T1105": ("Ingress Tool Transfer", "command-and-control"),
    "T1204.002": ("User Execution: Malicious File", "execution"),
    "T1222.002": ("File and Directory Permissions Modification: Linux and Mac", "defense-evasion"),
    "T1496": ("Resource Hijacking", "impact"),
    "T1543.002": ("Create or Modify System Process: Systemd Service", "persistence"),
    "T1546.004": ("Event Triggered Execution: Unix Shell Configuration Modification", "persistence"),
    "T1547.006": ("Boot or Logon Autostart Execution: Kernel Modules and Extensions", "persistence"),
    "T1548.001": ("Abuse Elevation Control Mechanism: Setuid and Setgid", "privilege-escalation"),
    "T1554": ("Compromise Host Software Binary", "persistence"),
    "T1562.001": ("Impair Defenses: Disable or Modify Tools", "defense-evasion"),
    "T1562.012": ("Impair Defenses: Disable or Modify Linux Audit System", "defense-evasion"),
    "T1571": ("Non-Standard Port", "command-and-control"),
    "T1574.006": ("Hijack Execution Flow: Dynamic Linker Hijacking", "persistence"),
    "T1611": ("Escape to Host", "privilege-escalation"),
}


def technique_name(technique_id: str) -> str:
    return TECHNIQUES.get(technique_id, ("", ""))[0]
