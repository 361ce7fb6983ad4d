"""smb.conf: who can read which share, as Samba itself would decide it.

The effective configuration comes from Samba's own `testparm -s -v --suppress-prompt`
(its defaults, synonyms such as `public` for `guest ok`, per-share inheritance from
[global]), run on the file as phiwatch flattened it: includes inlined only from inside the
given paths, `config file` and registry settings dropped, so testparm reads nothing else.
Without testparm (or when it fails) phiwatch's own parser applies Samba 4's documented
defaults. phiwatch's parser always supplies the lines findings point at.

Verdicts: `guest ok` on a share lets null and guest sessions in whatever `restrict
anonymous` says (smb.conf(5)); `map to guest = Bad User` turns every unknown user into the
guest; `hosts allow` narrows who can connect; `server min protocol` below SMB2 enables
SMB1; `server signing` other than mandatory leaves signing optional; `restrict anonymous = 0`
(the default) lets a null session list the shares even when none is open to guests (measured
with Samba 4.17, which refuses the list at 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..models import Finding
from .context import Context, Parsed
from .ini import IniFile, Section, Value, norm, parse
from .model import change, finding
from .source import Source

KIND = "smb.conf"
TESTPARM_TIMEOUT = 10.0
SMB1 = {"core", "coreplus", "lanman1", "lanman2", "nt1"}
SKIP_SECTIONS = {"global", "printers", "print$"}
# Samba 4.17's defaults for what decides exposure (used when testparm is not available)
DEFAULTS = {
    "maptoguest": "Never",
    "restrictanonymous": "0",
    "serverminprotocol": "SMB2_02",
    "serversigning": "default",
    "guestok": "No",
    "readonly": "Yes",
    "hostsallow": "",
    "available": "Yes",
    "guestaccount": "nobody",
}
_SYNONYMS = {"public": "guestok", "allowhosts": "hostsallow", "denyhosts": "hostsdeny", "minprotocol":
             "serverminprotocol", "protocol": "servermaxprotocol", "writeable": "!readonly",
             "writable": "!readonly", "writeok": "!readonly"}


def recognise(name: str, text: str) -> bool:
    if name in {"smb.conf", "smb4.conf"} or name.endswith(".smb.conf"):
        return True
    lower = text.lower()
    samba_keys = ("workgroup", "map to guest", "guest ok", "server string", "security =", "netbios name",
                  "smb ports", "server role", "vfs objects", "printcap name", "valid users")
    return "[global]" in lower and sum(key in lower for key in samba_keys) >= 2


@dataclass
class Effective:
    """Effective values: [global] and per share, keys normalised."""

    glob: dict[str, str]
    shares: dict[str, dict[str, str]]
    parser: str

    def share(self, name: str, key: str) -> str:
        return self.shares.get(name.lower(), {}).get(key, self.glob.get(key, DEFAULTS.get(key, "")))


def _flatten(config: IniFile) -> str:
    lines: list[str] = []
    for section in config.sections:
        lines.append(f"[{section.name}]")
        for key, value in section.params.items():
            if key in {"configfile", "configbackend", "registryshares", "include"}:
                continue
            lines.append(f"\t{key} = {value.text}")
    return "\n".join(lines) + "\n"


def _own(config: IniFile) -> Effective:
    def values(section: Section) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in section.params.items():
            target = _SYNONYMS.get(key, key)
            if target.startswith("!"):
                text = value.text.strip().lower()
                out[target[1:]] = "No" if text in {"yes", "true", "1"} else "Yes"
            else:
                out[target] = value.text
        return out

    glob = {**DEFAULTS, **values(config.sections[0])}
    shares = {s.name.lower(): values(s) for s in config.sections[1:]}
    return Effective(glob, shares, "phiwatch")


def _testparm(config: IniFile) -> Effective | None:
    binary = shutil.which("testparm")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="phiwatch-testparm-") as folder:
        path = os.path.join(folder, "smb.conf")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(_flatten(config))
        try:
            done = subprocess.run(
                [binary, "-s", "-v", "--suppress-prompt", path], capture_output=True, timeout=TESTPARM_TIMEOUT,
                env={"PATH": os.environ.get("PATH", ""), "LANG": "C"}, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
    if done.returncode != 0 or not done.stdout:
        return None
    glob: dict[str, str] = {}
    shares: dict[str, dict[str, str]] = {}
    current: dict[str, str] = glob
    for raw in done.stdout.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            current = glob if name.lower() == "global" else shares.setdefault(name.lower(), {})
        elif "=" in line:
            key, _, value = line.partition("=")
            current[norm(key)] = value.strip()
    return Effective(glob, shares, "testparm")


def _located(section: Section, key: str) -> Value | None:
    names = [k for k, v in _SYNONYMS.items() if v.lstrip("!") == key]
    return section.params.get(key) or next((section.params[n] for n in names if n in section.params), None)


def _set(source: Source, section: Section, key: str, value: str, display: str) -> list:
    """The fix: change the line that sets `key` (or a synonym), else add it under the section header."""
    located = _located(section, key)
    if located is not None:
        return [change(located.source, located.line, True, f"  {display} = {value}")]
    return [change(section.source, section.line, False, f"  {display} = {value}")]


def _narrow(hosts_allow: str) -> bool:
    """hosts allow names specific hosts or networks (not ALL, 0.0.0.0/0 or empty)."""
    words = hosts_allow.replace(",", " ").split()
    return bool(words) and not any(w.upper() == "ALL" or w in {"0.0.0.0/0", "::/0", "*"} for w in words)


def audit(source: Source, ctx: Context) -> Parsed:
    config = parse(source, ctx)
    effective = _testparm(config) or _own(config)
    out = Parsed(includes=config.includes, parser=effective.parser, notes=config.notes)
    if effective.parser != "testparm":
        out.notes.append("testparm not available or failed: phiwatch's own parser with Samba 4 defaults")
    glob = config.sections[0]
    port = _port(effective.glob.get("smbports", "445"))
    host = _host(effective.glob)
    findings: list[Finding] = []
    map_to_guest = effective.glob.get("maptoguest", "Never").lower().replace(" ", "")
    for section in config.sections[1:]:
        name = section.name
        if name.lower() in SKIP_SECTIONS or effective.share(name, "available").lower() == "no":
            continue
        if effective.share(name, "guestok").lower() != "yes":
            continue
        allow = effective.share(name, "hostsallow")
        writable = effective.share(name, "readonly").lower() == "no"
        located_path = section.get("path")
        path = effective.share(name, "path") or (located_path.text if located_path else "")
        medical = ctx.medical_files(path)
        scope = f"; only hosts allow '{allow}' may connect" if _narrow(allow) else "; any host may connect"
        guest_map = "; unknown users become the guest too (map to guest = Bad User)" if map_to_guest in {
            "baduser", "badpassword", "baduid"} else ""
        evidence = (
            f"Share {name!r} has guest ok = yes: null and guest sessions can "
            f"{'read and write' if writable else 'read'} it{scope}{guest_map} (effective values from "
            f"{effective.parser})"
        )
        fix = _set(source, section, "guestok", "no", "guest ok")
        check = "smb_anonymous_share_access"
        if medical:
            check, evidence = "smb_medical_files_exposed", evidence + f"; its folder holds {medical} medical files"
        findings.append(finding(check, evidence, section.source, section.line, fix=fix, host=host, port=port))
    restrict = effective.glob.get("restrictanonymous", "0").strip()
    # measured with Samba 4.17: restrict anonymous = 0 lets a null session list the shares; 1 refuses it
    if restrict == "0" and not any(f.check_id.startswith("smb_") for f in findings):
        located = _located(glob, "restrictanonymous")
        findings.append(finding(
            "smb_anonymous_share_access", f"restrict anonymous = {restrict}: a null session (no user, no "
            "password) can list the shares, though none is open to guests", glob.source,
            located.line if located else glob.line,
            fix=_set(source, glob, "restrictanonymous", "2", "restrict anonymous"), host=host, port=port,
        ))
    protocol = effective.glob.get("serverminprotocol", DEFAULTS["serverminprotocol"]).lower()
    if protocol in SMB1:
        findings.append(finding(
            "smb1_enabled", f"server min protocol = {protocol.upper()}: SMB1 is offered",
            glob.source, (_located(glob, "serverminprotocol") or Value("", glob.line, glob.source)).line,
            fix=_set(source, glob, "serverminprotocol", "SMB2_02", "server min protocol"), host=host, port=port,
        ))
    signing = effective.glob.get("serversigning", "default").lower()
    role = effective.glob.get("serverrole", "standalone").lower()
    if signing not in {"mandatory", "required"} and not (signing == "default" and "domain controller" in role):
        located = _located(glob, "serversigning")
        findings.append(finding(
            "smb_signing_not_required", f"server signing = {signing}: clients may talk unsigned",
            glob.source, located.line if located else glob.line,
            fix=_set(source, glob, "serversigning", "mandatory", "server signing"), host=host, port=port,
        ))
    out.findings = findings
    return out


def _port(text: str) -> int:
    first = text.replace(",", " ").split()[:1]
    return int(first[0]) if first and first[0].isdigit() else 445


def _host(glob: dict[str, str]) -> str:
    if glob.get("bindinterfacesonly", "no").lower() != "yes":
        return ""
    first = glob.get("interfaces", "").replace(",", " ").split()[:1]
    return first[0].split("/")[0] if first else ""
