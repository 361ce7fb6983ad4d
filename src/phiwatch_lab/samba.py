"""The lab's SMB servers: Samba 4.17 with guest shares holding the medical tree (and SMB1 on), and a
negative control that refuses null and guest sessions and speaks SMB2 and later only.

Each server is one smbd in the foreground, every state, lock, cache, pid and private
directory under its own folder, listening on 127.0.0.1 only. smbd starts samba-dcerpcd on
demand (share enumeration over srvsvc needs it) and that helper leaves smbd's process
group; this module's `main` runs smbd and stops the helper it started when smbd ends.

Samba checks share paths as the session's user; the lab's folders sit under private (0700)
directories, so the guest account is root. Every share is read only, links cannot leave a
share (wide links = no) and the server answers on loopback only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared

SMBD = "/usr/sbin/smbd"
DCERPCD = "/usr/libexec/samba/samba-dcerpcd"
GUEST_OFFSET = 22
AUTH_OFFSET = 23
STATE_DIRS = ("lock", "state", "cache", "pid", "private", "ncalrpc", "logs")
PUBLIC_FILES = {
    "welcome.txt": b"Visitor wifi: ask the front desk.\n",
    "menu.txt": b"Cafeteria: soup of the day.\n",
}


def check_installed() -> None:
    for path in (SMBD, DCERPCD):
        if not Path(path).is_file():
            raise LabError(f"{path} is missing: run scripts/install-debian-deps.sh (Debian package samba)")


def render_config(folder: Path, port: int, guest: bool) -> str:
    """smb.conf: guest shares, SMB1 on and signing optional (guest) or no null/guest, SMB2+, signing required."""
    state = folder / "state"
    lines = [
        "[global]",
        f"  smb ports = {port}",
        "  interfaces = 127.0.0.1",
        "  bind interfaces only = yes",
        "  disable netbios = yes",
        "  server role = standalone server",
        "  workgroup = PHIWATCHLAB",
        "  server string = phiwatch lab",
        *(f"  {name} directory = {state / name}" for name in ("lock", "state", "cache", "pid")),
        f"  private dir = {state / 'private'}",
        f"  ncalrpc dir = {state / 'ncalrpc'}",
        f"  log file = {state / 'logs' / 'log.%m'}",
        "  log level = 1",
        "  load printers = no",
        "  printing = bsd",
        "  printcap name = /dev/null",
        "  disable spoolss = yes",
        "  wide links = no",
        "  read only = yes",
        "  guest account = root",
    ]
    if guest:
        lines += ["  map to guest = Bad User", "  server min protocol = NT1", "  server signing = auto"]
    else:
        lines += [
            "  map to guest = Never",
            "  restrict anonymous = 2",
            "  server min protocol = SMB2_02",
            "  server signing = mandatory",
        ]
    shares = {"imaging": True, "public": True, "finance": False} if guest else {"records": False}
    for name, guest_ok in shares.items():
        lines += [f"[{name}]", f"  path = {folder / name}", f"  guest ok = {'yes' if guest_ok else 'no'}"]
    return "\n".join(lines) + "\n"


def prepare(folder: Path, base: int, guest: bool) -> Prepared:
    """Write one server's configuration and shares; argv runs `main` on it."""
    os.chmod(folder, 0o755)
    for name in STATE_DIRS:
        (folder / "state" / name).mkdir(parents=True, exist_ok=True)
    tree: dict[str, Any] = {}
    if guest:
        tree = medtree.build_tree(folder / "imaging")
        public = folder / "public"
        public.mkdir()
        for name, data in PUBLIC_FILES.items():
            (public / name).write_bytes(data)
        (folder / "finance").mkdir()
        (folder / "finance" / "ledger.csv").write_bytes(b"month,total\n")
    else:
        (folder / "records").mkdir()
        medtree.build_tree(folder / "records")
    config = folder / "smb.conf"
    config.write_text(render_config(folder, base + (GUEST_OFFSET if guest else AUTH_OFFSET), guest))
    return Prepared(argv=[sys.executable, "-m", "phiwatch_lab.samba", str(config)], facts=tree, python=True)


def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    from .services import _service

    return [
        _service(
            "samba-guest",
            "samba-guest",
            base + GUEST_OFFSET,
            "smb",
            "Samba 4.17, map to guest = Bad User, SMB1 (NT1) through SMB 3.1.1, signing optional: guest "
            "shares 'imaging' (the medical tree: DICOM with the canary in a folder named after the canary "
            f"patient, a DICOMDIR, HL7, X12, a folder loop HL7/back -> .. and {medtree.SERIES_SIZE} images "
            "in IMAGES/SE000001) and 'public' (two text files); 'finance' needs a user.",
            {
                "access": "anonymous",
                "dialect": "SMB 3.1.1",
                "smb1": True,
                "signing_required": False,
                "listing": "smb",
                "shares": {"imaging": "readable", "public": "readable", "finance": "auth_required"},
                "files_present": tree.get("files", {}),
                "loops": 1,
                # Measured with phiwatch's default walk bounds (25 files sniffed per folder).
                "probe_counts": medtree.probe_counts(tree),
                "public_entries": len(PUBLIC_FILES),
                "canary": True,
            },
        ),
        _service(
            "samba-auth",
            "samba-auth",
            base + AUTH_OFFSET,
            "smb",
            "Samba 4.17 (negative control): map to guest = Never, restrict anonymous = 2, SMB2 and later "
            "only, signing mandatory; its one share 'records' needs a user.",
            {"access": "denied", "dialect": "SMB 3.1.1", "smb1": False, "signing_required": True, "shares": 0},
        ),
    ]


def _guest(folder: Path, base: int) -> Prepared:
    return prepare(folder, base, guest=True)


def _auth(folder: Path, base: int) -> Prepared:
    return prepare(folder, base, guest=False)


def _guest_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return services(base, facts)[:1]


def _auth_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return services(base, facts)[1:]


SERVERS = (
    LabServer("samba-guest", (GUEST_OFFSET,), check_installed, _guest, _guest_services, canary=("samba-guest",)),
    LabServer("samba-auth", (AUTH_OFFSET,), check_installed, _auth, _auth_services, canary=("samba-auth",)),
)


# --- the process the lab starts ---------------------------------------------------------------


def _helper_pid(config: Path) -> int | None:
    """The samba-dcerpcd this smbd started (its pid file, checked against its command line)."""
    try:
        pid = int((config.parent / "state" / "pid" / "samba-dcerpcd.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if str(config).encode() in command and os.getpgid(pid) == pid else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _stop_helper(config: Path, grace: float = 5.0) -> None:
    pid = _helper_pid(config)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Run smbd on the given smb.conf in the foreground; on SIGTERM stop it and its RPC helper."""
    config = Path(argv[0]).resolve()  # samba-dcerpcd is started with this path: it must be absolute
    child = subprocess.Popen([SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(config)])

    def stop(_signum: int, _frame: object) -> None:
        child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return child.wait()
    finally:
        _stop_helper(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
