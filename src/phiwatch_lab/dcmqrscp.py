"""dcmtk's dcmqrscp for the lab: a real Q/R archive whose AETable restricts its peers.

Measured with dcmtk 3.6.7 (Debian 12):
- called AE unknown (e.g. ANY-SCP): A-ASSOCIATE-RJ permanent, service-user, reason 7;
- called DCMQR from a calling AE not in its peer list: the same reject, reason 7
  (dcmqrscp says "BadAEService"; it never uses reason 3, calling AE not recognised);
- called DCMQR from a listed peer (AE LABVIEWER on this host): accepted, C-ECHO and
  C-FIND succeed, so the indexed studies are exposed to that peer only.
dcmqrscp matches a peer by calling AE title *and* by the host name it resolves the
caller to (127.0.0.1 resolves to "localhost"), so the peer list names every spelling.
Single-process mode (-s) crashes on its second association here: it runs in the
default fork mode. It listens on 0.0.0.0 (no bind option), like Orthanc.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from pydicom import dcmread

from .errors import LabError

DCMQRSCP = Path("/usr/bin/dcmqrscp")
DCMQRIDX = Path("/usr/bin/dcmqridx")
CALLED_AE = "DCMQR"
ALLOWED_CALLING_AE = "LABVIEWER"


def _binary(path: Path) -> str:
    # Always the dcmtk path: pynetdicom's console scripts in a venv shadow dcmtk's names.
    if not path.is_file():
        raise LabError(f"{path.name} is not installed: install the Debian package 'dcmtk' (make deps)")
    return str(path)


def check_installed() -> None:
    _binary(DCMQRSCP)
    _binary(DCMQRIDX)


def peer_host_names() -> list[str]:
    """Every name dcmqrscp may see for a caller on 127.0.0.1."""
    names = ["localhost", "127.0.0.1"]
    try:
        resolved = socket.gethostbyaddr("127.0.0.1")[0]
    except OSError:
        resolved = ""
    if resolved and resolved not in names:
        names.append(resolved)
    return names


def render_config(port: int, storage: Path, move_port: int) -> str:
    """dcmqrscp.cfg: one read-only AE, DCMQR, reachable only from LABVIEWER on this host."""
    if any(c.isspace() for c in str(storage)):
        raise LabError(f"dcmqrscp cannot use a storage path with spaces: {storage}")
    hosts = peer_host_names()
    entries = [f"labviewer{i} = ({ALLOWED_CALLING_AE}, {host}, {move_port})" for i, host in enumerate(hosts)]
    members = ", ".join(f"labviewer{i}" for i in range(len(hosts)))
    return "\n".join(
        [
            "# phiwatch lab: generated, do not edit",
            f"NetworkTCPPort  = {port}",
            "MaxPDUSize      = 16384",
            "MaxAssociations = 16",
            "",
            "HostTable BEGIN",
            *entries,
            f"labpeers = {members}",
            "HostTable END",
            "",
            "VendorTable BEGIN",
            "VendorTable END",
            "",
            "AETable BEGIN",
            f"{CALLED_AE} {storage} R (50, 64mb) labpeers",
            "AETable END",
            "",
        ]
    )


def prepare_storage(storage: Path, files: list[Path], extra: dict[str, bytes]) -> int:
    """Copy files into the storage area, register them with dcmqridx; number of studies."""
    storage.mkdir(parents=True, exist_ok=True)
    targets: list[Path] = []
    for source in files:
        target = storage / source.name
        shutil.copyfile(source, target)
        targets.append(target)
    for name, payload in extra.items():
        target = storage / name
        target.write_bytes(payload)
        targets.append(target)
    if not targets:
        return 0
    result = subprocess.run(
        [_binary(DCMQRIDX), str(storage), *(str(t) for t in targets)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise LabError(f"dcmqridx failed (exit {result.returncode}): {tail}")
    studies = {str(dcmread(t, specific_tags=["StudyInstanceUID"]).get("StudyInstanceUID", "")) for t in targets}
    return len(studies)


def command(config_path: Path, port: int) -> list[str]:
    return [_binary(DCMQRSCP), "-c", str(config_path), str(port)]
