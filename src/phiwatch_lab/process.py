"""Background processes of the lab: start, watch, stop by process group.

Each server runs in its own session (``start_new_session=True``), so its pid is also
its process-group id and stopping the group also stops any children it forked
(dcmqrscp forks one child per association). A pid is only signalled when its start
time still matches the one recorded at launch, so a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

STOP_GRACE_SECONDS = 15.0

# Popen objects of servers started by this Python process, kept so they are not
# garbage-collected while running (and so that they can be reaped after a stop).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_time: str | None  # field 22 of /proc/PID/stat, None when /proc is absent
    ports: tuple[int, ...]
    log: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "start_time": self.start_time,
            "ports": list(self.ports),
            "log": self.log,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        ports = data.get("ports") or []
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            start_time=None if data.get("start_time") is None else str(data["start_time"]),
            ports=tuple(int(str(p)) for p in ports) if isinstance(ports, list) else (),
            log=str(data.get("log", "")),
        )


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it is enclosed in parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """True when the pid runs (not a zombie) and, if given, has the recorded start time."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return not Path("/proc/self/stat").exists()  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or (len(fields) > 19 and fields[19] == start_time)


def record_alive(record: ProcessRecord) -> bool:
    return pid_alive(record.pid, record.start_time)


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    ports: Iterable[int],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start argv in the background, its stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LabError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
    _CHILDREN[child.pid] = child
    return ProcessRecord(
        name=name,
        pid=child.pid,
        start_time=process_start_time(child.pid),
        ports=tuple(ports),
        log=str(log_path),
    )


def stop(records: Sequence[ProcessRecord], grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM each live record's process group, SIGKILL after grace; number stopped."""
    live = [r for r in records if record_alive(r)]
    for record in live:
        _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = list(live)
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = [r for r in pending if record_alive(r)]
    for record in pending:
        _signal_group(record.pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < kill_deadline:
        time.sleep(0.05)
        pending = [r for r in pending if record_alive(r)]
    for record in live:
        # Forked children (dcmqrscp) share the group: make sure none outlives its parent.
        _signal_group(record.pid, signal.SIGKILL)
        _reap(record.pid)
    return len(live)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def port_accepting(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True when nothing listens on the port, on any address (Orthanc binds 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return not port_accepting(port, timeout=0.2)


def log_tail(path: Path | str, lines: int = 8, limit: int = 800) -> str:
    """The last lines of a log file, on one line, for an error message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
    return tail[-limit:] if tail else "(empty log)"
