"""Lab servers added as plug-ins: one module per server kind, one line in SERVERS.

A plug-in names its process, the port offsets it listens on (base + offset, on
services.HOST unless it says otherwise), how to check its binaries, how to prepare its
folder and command line, and the manifest entries of the services it provides. The
control module starts, waits for and stops plug-ins exactly like the built-in servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Prepared:
    argv: list[str]
    facts: dict[str, Any] = field(default_factory=dict)  # what the server holds, for the manifest
    python: bool = False  # argv runs this interpreter: give it the package on PYTHONPATH


@dataclass(frozen=True)
class LabServer:
    name: str  # process name; also the name of its folder in the state directory
    offsets: tuple[int, ...]  # ports it listens on, as offsets from the lab's base port
    check_installed: Callable[[], None]  # raises LabError naming the missing package
    prepare: Callable[[Path, int], Prepared]  # (its own empty folder, base port)
    services: Callable[[int, dict[str, Any]], list[dict[str, Any]]]  # (base, facts) -> manifest entries
    canary: tuple[str, ...] = ()  # names of its services that hold the canary patient
    reserved: tuple[int, ...] = ()  # further offsets it uses (passive data ports ...), never listened on first
    ready: Callable[[int], bool] | None = None  # (base) -> ready; default: every offset accepts on HOST
    ready_timeout: float = 0.0  # seconds it may take to be ready, when more than the lab's default


def servers() -> tuple[LabServer, ...]:
    """Every plug-in, in start order."""
    # Imported here, not at the top: plug-in modules import this one.
    from . import autoindex, feeds, honeypots, nfs, pyftpd, rsyncd, s3, samba, worklists

    return (
        *SERVERS, pyftpd.SERVER, autoindex.SERVER, rsyncd.SERVER, s3.SERVER, nfs.SERVER, *samba.SERVERS,
        *worklists.SERVERS, honeypots.SERVER, feeds.SERVER,
    )  # fmt: skip


def implementations() -> tuple[LabServer, ...]:
    """More real implementations per protocol, each started alone by its protocol's tests
    (control.single), or all beside the lab by `lab up --implementations`."""
    from . import ftpservers, honeypots, rclone, seaweedfs, webdav, webservers

    return (*ftpservers.SERVERS, *rclone.SERVERS, *webservers.SERVERS, seaweedfs.SERVER, webdav.SERVER,
            honeypots.HOSTS_SERVER)


SERVERS: tuple[LabServer, ...] = ()
