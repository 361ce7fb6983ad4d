"""dcmtk's dcmqrscp.cfg: AE table entries open to any peer, and the host table behind named peers.

An AE table line is `AETitle StorageArea Access (Studies, Size) Peers`; Peers `ANY` lets
every calling AE title from every host in (dcmqrscp.cfg(5)); Access R allows C-FIND and
retrieval, W and RW storage. dcmqrscp rejects called AE titles not in the table. TLS is a
command-line choice (+tls), so the file cannot say it.
"""

from __future__ import annotations

import re

from .context import ConfigError, Context, Parsed
from .model import FileStatus, change, finding
from .source import Source

KIND = "dcmqrscp.cfg"
_ENTRY = re.compile(
    r"^(?P<aet>\S+)\s+(?P<storage>\S+)\s+(?P<access>RW|R|W)\s+\((?P<quota>[^)]*)\)\s*(?P<peers>.*)$", re.IGNORECASE
)


def recognise(name: str, text: str) -> bool:
    return name == "dcmqrscp.cfg" or ("AETable BEGIN" in text and "AETable END" in text)


def audit(source: Source, ctx: Context) -> Parsed:
    out = Parsed()
    table = ""
    port = 104
    hosts: dict[str, str] = {}
    for number, raw in enumerate(source.lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) == 2 and words[1].upper() in {"BEGIN", "END"}:
            table = words[0].lower() if words[1].upper() == "BEGIN" else ""
            continue
        if not table and line.lower().startswith("networktcpport"):
            value = line.partition("=")[2].strip()
            port = int(value) if value.isdigit() else port
        elif table == "hosttable" and "=" in line:
            key, _, value = line.partition("=")
            hosts[key.strip().lower()] = value.strip()
        elif table == "aetable":
            match = _ENTRY.match(line)
            if match is None:
                raise ConfigError(FileStatus.MALFORMED, f"line {number}: not an AE table entry")
            peers = [p.strip() for p in match.group("peers").split(",") if p.strip()]
            if any(p.upper() == "ANY" for p in peers):
                aet, storage, access = match.group("aet"), match.group("storage"), match.group("access").upper()
                fixed = raw.replace("ANY", "<your-peers>")
                fix = [change(source, number, True, fixed)]
                if "R" in access:
                    medical = ctx.medical_files(storage)
                    check = "dicom_study_data_exposed" if medical else "dicom_query_allowed_empty"
                    held = f"; its storage area holds {medical} DICOM files" if medical else ""
                    out.findings.append(finding(check, f"AE {aet!r} ({access}) answers any peer (Peers ANY): "
                                                f"C-FIND and retrieval from any calling AE and host{held}",
                                                source, number, fix=fix, port=port, protocol="dicom"))
                if "W" in access:
                    out.findings.append(finding("dicom_storage_accepted", f"AE {aet!r} ({access}) accepts "
                                                "storage from any peer (Peers ANY)", source, number, fix=fix,
                                                port=port, protocol="dicom"))
            else:
                unknown = [p for p in peers if p.lower() not in hosts]
                if unknown:
                    out.notes.append(f"line {number}: peers not in the host table: {len(unknown)}")
    if table:
        raise ConfigError(FileStatus.MALFORMED, f"{table} has BEGIN without END")
    return out
