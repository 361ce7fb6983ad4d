"""/etc/exports (kernel NFS server): clients, rw, no_root_squash, insecure (exports(5) defaults: ro,
root_squash, secure)."""

from __future__ import annotations

import ipaddress
import re

from .context import ConfigError, Context, Parsed
from .model import FileStatus, change, finding
from .source import Source

KIND = "exports"
_CLIENT = re.compile(r"^(?P<host>[^()\s]*)(?:\((?P<options>[^)]*)\))?$")
BROAD_PREFIX = 16  # a network of 65,536 addresses or more counts as broad


def recognise(name: str, text: str) -> bool:
    if name == "exports" or name.endswith(".exports"):
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(line.startswith(("/", '"/')) and "(" in line for line in lines[:50])


def broad(host: str) -> bool:
    """Every client (*, empty, 0.0.0.0/0) or a network of 2**16 addresses or more, or a domain wildcard."""
    if host in {"", "*", "*.*"}:
        return True
    if "/" in host:
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return False
        return network.prefixlen <= (BROAD_PREFIX if network.version == 4 else 48)
    return host.startswith("*") and host.count(".") <= 1


def audit(source: Source, ctx: Context) -> Parsed:
    out = Parsed()
    bad = 0
    for at, line in source.logical_lines():
        words = line.split()
        path = words[0].strip('"')
        if not path.startswith("/"):
            bad += 1
            continue
        clients = words[1:] or ["*"]
        medical = ctx.medical_files(path)
        for client in clients:
            match = _CLIENT.match(client)
            if match is None:
                bad += 1
                continue
            host = match.group("host") or "*"
            listed = [o.strip() for o in (match.group("options") or "").split(",") if o.strip()]
            options = set(listed)
            fixed = ",".join(["ro" if o == "rw" else "root_squash" if o == "no_root_squash" else
                              "secure" if o == "insecure" else o for o in listed] or ["ro"])
            new_line = " ".join(
                [words[0]] + [(f"<your-clients>({fixed})" if c == client and broad(host) else
                               (c.replace("no_root_squash", "root_squash").replace("insecure", "secure")
                                if c == client else c)) for c in clients]
            )
            fix = [change(source, at, True, new_line)]
            if broad(host):
                who = "every client" if host in {"*", ""} else f"the broad client range {host!r}"
                evidence = f"Export {path} goes to {who}{' read-write' if 'rw' in options else ' read-only'}"
                check = "nfs_medical_files_exposed" if medical else "nfs_world_readable_export"
                if medical:
                    evidence += f"; it holds {medical} medical files"
                out.findings.append(finding(check, evidence, source, at, fix=fix, port=2049))
                if "rw" in options:
                    out.findings.append(finding("nfs_export_writable", f"Export {path}: rw for {who}",
                                                source, at, fix=fix, port=2049))
            if "no_root_squash" in options:
                out.findings.append(finding(
                    "nfs_no_root_squash", f"Export {path} to {host!r}: no_root_squash lets a client's root act "
                    "as root on the files", source, at, fix=fix, port=2049))
            if "insecure" in options:
                out.findings.append(finding(
                    "nfs_insecure_ports", f"Export {path} to {host!r}: insecure accepts requests from "
                    "unprivileged ports", source, at, fix=fix, port=2049))
    if bad:
        raise ConfigError(FileStatus.MALFORMED, f"{bad} export lines could not be parsed")
    return out
