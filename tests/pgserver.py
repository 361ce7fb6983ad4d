"""A real PostgreSQL server for tests: initdb in a temporary folder (as `nobody` when run as root,
trust authentication), pg_ctl on a free loopback port; stopped and removed afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def available() -> bool:
    return _bin("initdb") is not None and _bin("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres() -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty database `phiwatch` on a fresh server."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    assert initdb and pg_ctl, "Debian's postgresql package is not installed (scripts/install-debian-deps.sh)"
    folder = tempfile.mkdtemp(prefix="phiwatch-pg-")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "nobody", "nogroup")
        run_as = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    subprocess.run([*run_as, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*run_as, pg_ctl, "-D", data, "-o", f"-k {folder} -h 127.0.0.1 -p {port}",
                    "-l", os.path.join(folder, "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    try:
        createdb = _bin("createdb")
        assert createdb
        subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "phiwatch"],
                       check=True, capture_output=True, timeout=30)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/phiwatch"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "60", "stop"],
                       capture_output=True, timeout=90)
        shutil.rmtree(folder, ignore_errors=True)
