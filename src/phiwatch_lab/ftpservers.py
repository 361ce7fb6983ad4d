"""More anonymous FTP servers over the medical tree: ProFTPD 1.3.8 and pure-ftpd 1.0.50.

Their Debian packages conflict with vsftpd's, so scripts/install-debian-deps.sh extracts
their binaries (`dpkg-deb -x`) under EXTRACTED and they run from there. Both honour ASCII
mode (TYPE A rewrites line ends) and end a transfer whose data connection closes with 426.
pure-ftpd serves the home folder of the system user `ftp` only: the tree is bind-mounted
there in a private mount namespace of its own (root needed), so the real folder is untouched.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from typing import Any

from . import ftp, medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service

EXTRACTED = Path(os.environ.get("PHIWATCH_LAB_EXTRACTED", "/opt/phiwatch-lab/root"))
PROFTPD = EXTRACTED / "usr/sbin/proftpd"
PUREFTPD = EXTRACTED / "usr/sbin/pure-ftpd"
PROFTPD_OFFSET, PROFTPD_PASV = 100, (120, 124)
PUREFTPD_OFFSET, PUREFTPD_PASV = 101, (125, 129)
VSFTPD_OFFSET, VSFTPD_PASV = 119, (135, 139)  # vsftpd alone, beside the lab's own (base + 20)
INSTALL = "run scripts/install-debian-deps.sh (it extracts proftpd-core and pure-ftpd under /opt/phiwatch-lab)"


def _check(binary: Path) -> None:
    if not binary.is_file():
        raise LabError(f"{binary} is missing: {INSTALL}")
    try:
        pwd.getpwnam("ftp")
    except KeyError:
        raise LabError("the system user 'ftp' is missing (Debian's vsftpd package creates it)") from None
    if os.geteuid() != 0:
        raise LabError(f"{binary.name} in the lab needs root (it drops to the user 'ftp')")


def _proftpd_config(folder: Path, root: Path, port: int, pasv: tuple[int, int]) -> str:
    lines = [
        'ServerName "PHIWATCH LAB PROFTPD"',
        "ServerType standalone",
        "DefaultServer on",
        f"DefaultAddress {HOST}",
        "SocketBindTight on",
        f"Port {port}",
        f"PassivePorts {pasv[0]} {pasv[1]}",
        f"MasqueradeAddress {HOST}",
        "UseIPv6 off",
        "User nobody",
        "Group nogroup",
        "DelayTable none",
        "WtmpLog off",
        "TransferLog none",
        "UseReverseDNS off",
        f"ScoreboardFile {folder / 'proftpd.scoreboard'}",
        f"PidFile {folder / 'proftpd.pid'}",
        f"ModulePath {EXTRACTED / 'usr/lib/proftpd'}",
        "AuthOrder mod_auth_unix.c",
        f"<Anonymous {root}>",
        "  User ftp",
        "  Group nogroup",
        "  UserAlias anonymous ftp",
        "  RequireValidShell off",
        "  <Limit WRITE>",
        "    DenyAll",
        "  </Limit>",
        "</Anonymous>",
    ]
    return "\n".join(lines) + "\n"


def _prepare_proftpd(folder: Path, base: int) -> Prepared:
    root = folder / "root"
    tree = medtree.build_tree(root)
    os.chmod(folder, 0o755)
    config = folder / "proftpd.conf"
    pasv = (base + PROFTPD_PASV[0], base + PROFTPD_PASV[1])
    config.write_text(_proftpd_config(folder, root, base + PROFTPD_OFFSET, pasv))
    return Prepared(argv=[str(PROFTPD), "-n", "-q", "-c", str(config)], facts=tree)


def _prepare_pureftpd(folder: Path, base: int) -> Prepared:
    root = folder / "root"
    tree = medtree.build_tree(root)
    os.chmod(folder, 0o755)
    home = Path(pwd.getpwnam("ftp").pw_dir)
    home.mkdir(parents=True, exist_ok=True)  # outside the namespace an empty folder, as Debian leaves it
    low, high = base + PUREFTPD_PASV[0], base + PUREFTPD_PASV[1]
    serve = (
        f"mount --bind '{root}' '{home}' && exec '{PUREFTPD}' -S {HOST},{base + PUREFTPD_OFFSET} "
        f"-p {low}:{high} -P {HOST} -H -e -A -C 16 -c 32"
    )  # -e anonymous only, -A chroot, -H no name lookups, -P the passive address
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return Prepared(argv=[unshare, "-m", "--propagation", "private", "sh", "-c", serve], facts=tree)


def _services(name: str, offset: int, product: str) -> Any:
    def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            _service(
                name, name, base + offset, "ftp",
                f"{product}, anonymous read-only over the medical tree; honours ASCII mode, so a walk that "
                "does not switch to binary reads rewritten files.",
                {"access": "anonymous", "login": "anonymous", "files_present": tree.get("files", {}),
                 "canary": True},
            )
        ]  # fmt: skip

    return services


PROFTPD_SERVER = LabServer(
    name="proftpd-anonymous",
    offsets=(PROFTPD_OFFSET,),
    check_installed=lambda: _check(PROFTPD),
    prepare=_prepare_proftpd,
    services=_services("proftpd-anonymous", PROFTPD_OFFSET, "ProFTPD 1.3.8"),
    canary=("proftpd-anonymous",),
    reserved=tuple(range(PROFTPD_PASV[0], PROFTPD_PASV[1] + 1)),
)
PUREFTPD_SERVER = LabServer(
    name="pure-ftpd-anonymous",
    offsets=(PUREFTPD_OFFSET,),
    check_installed=lambda: _check(PUREFTPD),
    prepare=_prepare_pureftpd,
    services=_services("pure-ftpd-anonymous", PUREFTPD_OFFSET, "pure-ftpd 1.0.50"),
    canary=("pure-ftpd-anonymous",),
    reserved=tuple(range(PUREFTPD_PASV[0], PUREFTPD_PASV[1] + 1)),
)


def _prepare_vsftpd(folder: Path, base: int) -> Prepared:
    config, tree = ftp.prepare(folder, base + VSFTPD_OFFSET, True, base + VSFTPD_PASV[0], base + VSFTPD_PASV[1])
    return Prepared(argv=ftp.command(config), facts=tree)


VSFTPD_SERVER = LabServer(
    name="vsftpd-alone",
    offsets=(VSFTPD_OFFSET,),
    check_installed=ftp.check_installed,
    prepare=_prepare_vsftpd,
    services=_services("vsftpd-alone", VSFTPD_OFFSET, "vsftpd 3.0.3"),
    canary=("vsftpd-alone",),
    reserved=tuple(range(VSFTPD_PASV[0], VSFTPD_PASV[1] + 1)),
)
SERVERS = (PROFTPD_SERVER, PUREFTPD_SERVER, VSFTPD_SERVER)
