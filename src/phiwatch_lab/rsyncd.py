"""The lab's rsync daemon (rsync 3.x): an open module with the medical tree, one that needs a
password, and one that is open but not listed.

Modules: "imaging" (list = yes, no authentication, the tree of lab/medtree.py), "archive"
(list = yes, `auth users` with a random password in a 0600 secrets file, the same tree) and
"hidden" (list = no, no authentication: a scanner that only reads the module list cannot
see it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared

RSYNC = "/usr/bin/rsync"
OFFSET = 24
AUTH_USER = "archivist"


def check_installed() -> None:
    if not Path(RSYNC).is_file():
        raise LabError("rsync is not installed: run scripts/install-debian-deps.sh (Debian package rsync)")


def render_config(port: int, tree: Path, secrets_file: Path, log: Path) -> str:
    identity = ["uid = root", "gid = root"] if os.geteuid() == 0 else []
    return "\n".join(
        [
            "address = 127.0.0.1",
            f"port = {port}",
            "use chroot = no",
            "read only = yes",
            "timeout = 60",
            # rsyncd logs "rsync on MODULE/PATH" for every request, unconditionally: a path names the
            # canary patient's folder, and the lab's logs hold no patient value. Start-up errors still
            # reach standard error (--no-detach), i.e. the process log.
            f"log file = {log}",
            *identity,
            "",
            "[imaging]",
            f"path = {tree}",
            "comment = Radiology exports",
            "list = yes",
            "",
            "[archive]",
            f"path = {tree}",
            "comment = Archive",
            "list = yes",
            f"auth users = {AUTH_USER}",
            f"secrets file = {secrets_file}",
            "",
            "[hidden]",
            f"path = {tree}",
            "list = no",
            "",
        ]
    )


def prepare(folder: Path, base: int) -> Prepared:
    tree = medtree.build_tree(folder / "tree")
    secrets_file = folder / "rsyncd.secrets"
    secrets_file.write_text(f"{AUTH_USER}:{secrets.token_urlsafe(24)}\n")
    os.chmod(secrets_file, 0o600)
    config = folder / "rsyncd.conf"
    config.write_text(render_config(base + OFFSET, folder / "tree", secrets_file, Path(os.devnull)))
    os.chmod(config, 0o600)
    return Prepared(argv=[RSYNC, "--daemon", "--no-detach", f"--config={config}"], facts=tree)


def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "rsyncd",
            "process": "rsyncd",
            "port": base + OFFSET,
            "protocol": "rsync",
            "tls": False,
            "called_ae": None,
            "description": (
                "rsync daemon, protocol 30 spoken by phiwatch: module 'imaging' open with the medical "
                "tree (DICOM with the canary, a DICOMDIR, HL7, X12, a folder loop HL7/back -> .., "
                f"{medtree.SERIES_SIZE} images in one folder); 'archive' needs a password (auth users); "
                "'hidden' is open but not listed (list = no)."
            ),
            "expected": {
                "access": "anonymous",
                "dialect": "30",
                "modules_listed": ["imaging", "archive"],
                "open": ["imaging"],
                "auth_required": ["archive"],
                "unlisted": ["hidden"],
                "files_present": tree.get("files", {}),
                "loops": 1,
                # Measured with phiwatch's default walk bounds: heads read through the transfer
                # phase (verified), the rest of the series counted by name (estimated).
                "probe_counts": medtree.probe_counts(tree),
                "canary": True,
            },
        }
    ]


SERVER = LabServer(
    name="rsyncd",
    offsets=(OFFSET,),
    check_installed=check_installed,
    prepare=prepare,
    services=services,
    canary=("rsyncd",),
)
