"""The lab's NFS server: nfs-ganesha 4.3 (FSAL VFS) and rpcbind, in a network namespace of their own.

The kernel has no nfsd, and rpcbind keeps one global socket file, so both daemons run in a
namespace the lab creates (lab/nfsns.py runs them), reached over a veth pair whose /30 is
derived from the base port: labs on different base ports do not clash. Exports (NFSv3 mount
paths are the pseudo paths):
  /imaging     the medical tree (lab/medtree.py), every client, read-only
  /public      two plain documents, every client, read-only (no medical file)
  /restricted  a canary image, only for a client address that is not the lab's; ganesha
               does not even list it to other clients
  /secure      a canary image, every client, but only from privileged source ports
               (PrivilegedPort, like `secure` in /etc/exports): it mounts, then every NFS
               call from an unprivileged port is refused
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .canary import canary_bytes
from .errors import LabError
from .medtree import SERIES_SIZE, build_tree, probe_counts
from .plugins import LabServer, Prepared
from .process import port_accepting
from .services import _service

GANESHA = "/usr/bin/ganesha.nfsd"
RPCBIND = "/usr/sbin/rpcbind"
FSAL_VFS = Path("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so")
TOOLS = ("ip", "unshare", "nsenter", "rpcinfo")
NFS_PORT, PORTMAP_PORT, MOUNTD_PORT = 2049, 111, 20048
NOT_OURS = "198.51.100.7"  # TEST-NET-2: the only client allowed to mount /restricted
NETWORK = ipaddress.IPv4Address("100.64.0.0")  # shared address space; base port * 4 is the lab's /30
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
PUBLIC_FILES = {"README.txt": b"Visitor information and opening hours.\n",
                "minutes.txt": b"Minutes of the facilities meeting.\n"}  # fmt: skip


def namespace(base: int) -> str:
    return f"phiwatch-nfs-{base}"


def links(base: int) -> tuple[str, str]:
    """(host end, namespace end) of the veth pair; at most 15 characters each."""
    return f"pwnfs{base}h", f"pwnfs{base}n"


def addresses(base: int) -> tuple[str, str]:
    """(host end, namespace end) addresses: the two usable addresses of the base port's /30."""
    network = NETWORK + base * 4
    return str(network + 1), str(network + 2)


def _capabilities() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def check_installed() -> None:
    missing = [path for path in (GANESHA, RPCBIND, str(FSAL_VFS)) if not Path(path).exists()]
    missing += [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"NFS lab server: missing {', '.join(missing)}: install the Debian packages nfs-ganesha, "
            "nfs-ganesha-vfs, rpcbind, iproute2 and util-linux"
        )
    caps = _capabilities()
    if not (caps >> CAP_NET_ADMIN & 1 and caps >> CAP_SYS_ADMIN & 1):
        raise LabError(
            "NFS lab server: creating a network namespace needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); "
            "the kernel has no nfsd, so nfs-ganesha runs only inside one"
        )


def _export(export_id: int, path: Path, pseudo: str, clients: str, privileged: bool = False) -> str:
    return (
        f"EXPORT {{\n  Export_Id = {export_id};\n  Path = \"{path}\";\n  Pseudo = \"{pseudo}\";\n"
        "  Access_Type = None;\n  Protocols = 3, 4;\n  Squash = Root_Squash;\n  SecType = sys;\n"
        f"  PrivilegedPort = {'true' if privileged else 'false'};\n"
        f"  CLIENT {{ Clients = {clients}; Access_Type = RO; }}\n  FSAL {{ Name = VFS; }}\n}}\n"
    )


def render_config(folder: Path) -> str:
    return (
        "NFS_CORE_PARAM {\n  Protocols = 3, 4;\n  Mount_Path_Pseudo = true;\n  Enable_NLM = false;\n"
        f"  Enable_RQUOTA = false;\n  NFS_Port = {NFS_PORT};\n  MNT_Port = {MOUNTD_PORT};\n}}\n"
        "NFSv4 {\n  Graceless = true;\n  RecoveryBackend = fs;\n"
        f"  RecoveryRoot = \"{folder / 'recovery'}\";\n}}\n"
        + _export(1, folder / "imaging", "/imaging", "*")
        + _export(2, folder / "public", "/public", "*")
        + _export(3, folder / "restricted", "/restricted", NOT_OURS)
        + _export(4, folder / "secure", "/secure", "*", privileged=True)
    )


def prepare(folder: Path, base: int) -> Prepared:
    tree = build_tree(folder / "imaging")
    public = folder / "public"
    public.mkdir()
    for name, text in PUBLIC_FILES.items():
        (public / name).write_bytes(text)
    restricted, secure = folder / "restricted", folder / "secure"
    for path in (restricted, secure):
        path.mkdir()
        (path / "scan.dcm").write_bytes(canary_bytes())
    (folder / "recovery").mkdir()
    for path in (folder, public, restricted, secure):
        os.chmod(path, 0o755)
    (folder / "ganesha.conf").write_text(render_config(folder))
    argv = [sys.executable, "-m", "phiwatch_lab.nfsns", "--base", str(base), "--folder", str(folder)]
    return Prepared(argv=argv, facts={"tree": tree, "public_files": len(PUBLIC_FILES)}, python=True)


def ready(base: int) -> bool:
    address = addresses(base)[1]
    if not (port_accepting(NFS_PORT, address, 0.3) and port_accepting(PORTMAP_PORT, address, 0.3)):
        return False
    try:  # mountd registered with rpcbind (ganesha registers after it listens)
        done = subprocess.run(["rpcinfo", "-T", "tcp", address, "100005", "3"], capture_output=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    address = addresses(base)[1]
    tree = facts.get("tree", {})
    nfs = _service(
        "nfs-ganesha",
        "nfs-ganesha",
        NFS_PORT,
        "nfs",
        "nfs-ganesha 4.3 (FSAL VFS), NFSv3 and v4, in the lab's network namespace: /imaging (the medical "
        f"tree with the canary, a folder loop HL7/back -> .. and {SERIES_SIZE} small images) and /public "
        f"(two documents) exported read-only to every client; /restricted only to {NOT_OURS}, and not "
        "listed to other clients; /secure (a canary image) to every client from privileged ports only.",
        {
            "access": "anonymous",
            "login": "nobody (AUTH_SYS uid 65534)",
            "dialect": "NFSv3",
            "listing": "nfs",
            "exports": {"/imaging": ["*"], "/public": ["*"], "/secure": ["*"]},  # as listed to the lab's address
            "privileged_port_exports": ["/secure"],
            "hidden_exports": {"/restricted": [NOT_OURS]},
            "mountd_port": MOUNTD_PORT,
            "files_present": tree.get("files", {}),
            # Measured with phiwatch's default walk bounds (25 files sniffed per folder).
            "probe_counts": {"/imaging": probe_counts(tree)},
            "public_entries": facts.get("public_files", 0),
            "loops": 1,
            "canary": True,
        },
    )
    rpcbind = _service(
        "nfs-ganesha-rpcbind",
        "nfs-ganesha",
        PORTMAP_PORT,
        "nfs",
        "rpcbind in the same namespace: nfs v3,v4 on tcp/2049 and mountd v1,v3 on tcp/20048 registered; "
        "the exports are probed on 2049.",
        {"access": "not-attempted", "programs": {"nfs": [3, 4], "mountd": [1, 3]},
         "nfs_port": NFS_PORT, "mountd_port": MOUNTD_PORT},  # fmt: skip
    )
    for item in (nfs, rpcbind):
        item["host"] = address
    return [nfs, rpcbind]


SERVER = LabServer(
    name="nfs-ganesha",
    offsets=(),
    check_installed=check_installed,
    prepare=prepare,
    services=services,
    canary=("nfs-ganesha",),
    ready=ready,
)
