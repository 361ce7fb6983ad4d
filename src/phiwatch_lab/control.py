"""Bring the lab up, take it down, report its status.

State directory layout (all created by ``up``):
  lab.json                 the manifest (services, ports, expected exposures, canary)
  pids.json                the processes started, with their start times
  logs/NAME.log            stdout and stderr of each server
  orthanc-open/, orthanc-locked/, orthanc-default/, dcmqrscp/   configurations and storage (wiped at up)
  vsftpd-anonymous/root/, vsftpd-closed/   vsftpd configurations and the anonymous tree (wiped at up)
  orthanc-locked.credentials   user and password of the locked Orthanc (0600)
  tls/cert.pem, tls/key.pem    the self-signed certificate of pynetdicom-tls
  .phiwatch-lab            marks the directory as the lab's (up refuses other non-empty ones)

Ports: base + 0 .. base + 21 (see services.PROCESSES), then the plug-ins' (lab/plugins.py);
base + 30 is only named in dcmqrscp's configuration as its listed peer's move destination
(nothing listens there); base + 40 .. 64 are vsftpd's passive data ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import dcmqrscp, ftp, isolated, orthanc, plugins, process, services, webfixture_pages
from .canary import canary_bytes
from .certs import make_self_signed, write_private
from .datasets import DCMQR_FILES, sample_files
from .errors import LabError
from .process import ProcessRecord
from .worklists import WORKLIST_AE, build_worklist

DEFAULT_BASE_PORT = 21100
READY_TIMEOUT = 30.0
MANIFEST = "lab.json"
PIDS = "pids.json"
PUBLIC = "public-folder"  # where the servers that drop privileges keep their files (lab up --implementations)
CREDENTIALS = "orthanc-locked.credentials"
MARKER = ".phiwatch-lab"
_DATA_DIRS = (
    "orthanc-open", "orthanc-locked", "orthanc-default", "dcmqrscp", "tls", "vsftpd-anonymous", "vsftpd-closed",
)


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/phiwatch/lab, or ~/.local/state/phiwatch/lab."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "phiwatch" / "lab"


def _resolve(state_dir: Path | None) -> Path:
    return Path(state_dir) if state_dir is not None else default_state_dir()


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One up/down at a time per state directory."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def manifest(state_dir: Path | None = None) -> dict | None:
    """The manifest of the lab in state_dir, or None when no lab was brought up there."""
    data = _read_json(_resolve(state_dir) / MANIFEST)
    return data if isinstance(data, dict) else None


def _records(state_dir: Path) -> list[ProcessRecord]:
    data = _read_json(state_dir / PIDS)
    if not isinstance(data, list):
        return []
    records = []
    for item in data:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            records.append(ProcessRecord.from_json(item))
    return records


def _save_records(state_dir: Path, records: list[ProcessRecord]) -> None:
    _write_json(state_dir / PIDS, [r.to_json() for r in records])


def _python_env() -> dict[str, str]:
    """Environment for the lab's Python servers: this interpreter finds this package."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def up(state_dir: Path | None = None, base_port: int = DEFAULT_BASE_PORT, implementations: bool = False) -> dict:
    """Start every lab server (idempotent), load the data, write and return the manifest.

    implementations: also the further real implementations of each protocol (ProFTPD, pure-ftpd,
    rclone, Apache, lighttpd, Caddy, Python's http.server, SeaweedFS, Apache WebDAV, the honeypot
    hosts: plugins.implementations), which the tests otherwise start one at a time (`single`)."""
    state = _resolve(state_dir)
    span = services.IMPLEMENTATIONS_SPAN if implementations else services.PORT_SPAN
    highest = 65536 - span  # base .. base + span - 1, reserved ports included
    if not 1024 <= base_port <= highest:
        raise LabError(f"base port {base_port} is out of range (1024-{highest})")
    _claim(state)
    with _locked(state):
        current = manifest(state)
        records = _records(state)
        if current and records and all(process.record_alive(r) for r in records):
            if current.get("base_port") != base_port:
                raise LabError(
                    f"the lab already runs on base port {current.get('base_port')} in {state}: "
                    "run 'phiwatch lab down' first"
                )
            if current.get("implementations") or not implementations:
                return current  # the lab already up (with the further implementations, if asked) answers
        if records:
            process.stop(records)  # a half-dead lab, or one without the implementations now asked: start again
        _remove_public(state)
        for name in (PIDS, MANIFEST):
            (state / name).unlink(missing_ok=True)
        chosen = (*plugins.servers(), *(plugins.implementations() if implementations else ()))
        return _start(state, base_port, chosen)


def _claim(state: Path) -> None:
    """Mark state as the lab's; refuse a non-empty directory that is not (up wipes parts)."""
    marker = state / MARKER
    if marker.exists():
        return
    if state.exists() and any(state.iterdir()):
        raise LabError(f"{state} is not empty and is not a phiwatch lab state directory")
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    marker.write_text("phiwatch lab state directory: 'phiwatch lab down' stops its servers\n")


def _processes(chosen: tuple[plugins.LabServer, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """(process name, port offsets) of the built-in servers, then of the chosen plug-ins."""
    return [*services.PROCESSES, *((server.name, server.offsets) for server in chosen)]


def _check_ports(base: int, processes: list[tuple[str, tuple[int, ...]]]) -> None:
    for name, offsets in processes:
        for offset in offsets:
            if not process.port_free(base + offset):
                raise LabError(
                    f"port {base + offset} (needed by {name}) is already in use: "
                    "stop what uses it or choose another base port"
                )


def _prepare(
    state: Path, base: int, chosen: tuple[plugins.LabServer, ...]
) -> tuple[dict[str, list[str]], tuple[str, str], int, dict]:
    """Write configurations, credentials, certificate, dcmqrscp's index and the FTP tree.

    Returns each process's argv, the locked Orthanc's credentials, the number of
    studies dcmqrscp holds and what the anonymous FTP tree holds.
    """
    os.chmod(state, 0o700)
    logs = state / "logs"
    for name in (*_DATA_DIRS, *(server.name for server in (*plugins.servers(), *plugins.implementations()))):
        shutil.rmtree(state / name, ignore_errors=True)
    logs.mkdir(exist_ok=True)
    for name, _ in _processes(chosen):
        (logs / f"{name}.log").unlink(missing_ok=True)

    password = secrets.token_urlsafe(32)
    auth = (orthanc.LOCKED_USER, password)
    write_private(
        state / CREDENTIALS,
        json.dumps({"username": auth[0], "password": auth[1]}).encode(),
    )
    argv: dict[str, list[str]] = {}
    for name, locked, aet, offset in (
        ("orthanc-open", False, orthanc.OPEN_AET, 0),
        ("orthanc-locked", True, orthanc.LOCKED_AET, 2),
        ("orthanc-default", False, orthanc.DEFAULT_AET, 8),
    ):
        storage = state / name / "storage"
        storage.mkdir(parents=True)
        # The open Orthanc also serves a Modality Worklist (dcmtk's example items and the canary's).
        worklists = state / name / "worklists" if name == "orthanc-open" else None
        if worklists is not None:
            build_worklist(worklists)
        config = orthanc.render_config(
            name=f"PHIWATCH-LAB-{name.upper()}",
            aet=aet,
            dicom_port=base + offset,
            http_port=base + offset + 1,
            storage=storage,
            locked=locked,
            password=password if locked else None,
            default_credentials=name == "orthanc-default",
            worklists=worklists / WORKLIST_AE if worklists is not None else None,
        )
        config_path = state / name / "orthanc.json"
        orthanc.write_config(config_path, config)
        argv[name] = isolated.command([base + offset, base + offset + 1], orthanc.command(config_path))

    qr_dir = state / "dcmqrscp"
    qr_storage = qr_dir / dcmqrscp.CALLED_AE
    qr_studies = dcmqrscp.prepare_storage(
        qr_storage, sample_files(DCMQR_FILES), {"phiwatch-canary.dcm": canary_bytes()}
    )
    qr_config = qr_dir / "dcmqrscp.cfg"
    # LABVIEWER's move-destination port: base + 30, reserved, nothing listens there.
    move_port = base + services.MOVE_PORT_OFFSET
    qr_config.write_text(dcmqrscp.render_config(base + 4, qr_storage, move_port))
    argv["dcmqrscp"] = isolated.command([base + 4], dcmqrscp.command(qr_config, base + 4))

    tls_dir = state / "tls"
    tls_dir.mkdir(mode=0o700)
    cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
    make_self_signed(cert, key)
    py = [sys.executable, "-m"]
    argv["pynetdicom-any"] = [*py, "phiwatch_lab.anyscp", "--port", str(base + 5)]
    argv["pynetdicom-tls"] = [
        *py, "phiwatch_lab.anyscp", "--port", str(base + 6),
        "--tls-cert", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    argv["tarpit"] = [*py, "phiwatch_lab.tarpit", "--port", str(base + 7)]
    argv["web-fixtures"] = [*py, "phiwatch_lab.webfixtures", "--base-port", str(base)]
    ftp_tree: dict = {}
    for name, offset in (("vsftpd-anonymous", 20), ("vsftpd-closed", 21)):
        low, high = services.FTP_PASV_OFFSETS[name]
        anonymous = name == "vsftpd-anonymous"
        ftp_config, tree = ftp.prepare(state / name, base + offset, anonymous, base + low, base + high)
        argv[name] = ftp.command(ftp_config)
        ftp_tree = ftp_tree or tree
    return argv, auth, qr_studies, ftp_tree


def _public_folder(state: Path) -> Path:
    """A folder for the servers that drop to an unprivileged user (Apache, lighttpd, ProFTPD, ...),
    which cannot reach the private state folder: a new one in the temporary folder, readable by
    all (it holds the medical tree with the canary only), named in the state folder so that
    `down` removes it."""
    public = Path(tempfile.mkdtemp(prefix="phiwatch-lab-"))
    public.chmod(0o755)
    (state / PUBLIC).write_text(str(public))
    return public


def _remove_public(state: Path) -> None:
    record = state / PUBLIC
    if not record.is_file():
        return
    public = Path(record.read_text().strip())
    if public.parent == Path(tempfile.gettempdir()) and public.name.startswith("phiwatch-lab-"):
        shutil.rmtree(public, ignore_errors=True)
    record.unlink(missing_ok=True)


def _prepare_plugins(state: Path, base: int, chosen: tuple[plugins.LabServer, ...]) -> dict[str, plugins.Prepared]:
    prepared = {}
    further = plugins.implementations()
    public = _public_folder(state) if any(server in further for server in chosen) else None
    for server in chosen:
        folder = (public if public is not None and server in further else state) / server.name
        folder.mkdir(parents=True)
        prepared[server.name] = server.prepare(folder, base)
    return prepared


def _start(state: Path, base: int, chosen: tuple[plugins.LabServer, ...]) -> dict:
    orthanc.orthanc_binary()
    dcmqrscp.check_installed()
    ftp.check_installed()
    for server in chosen:
        server.check_installed()
    _check_ports(base, _processes(chosen))
    argv, auth, qr_studies, ftp_tree = _prepare(state, base, chosen)
    prepared = _prepare_plugins(state, base, chosen)
    argv.update({name: item.argv for name, item in prepared.items()})
    env = _python_env()
    records: list[ProcessRecord] = []
    try:
        for name, offsets in _processes(chosen):
            python = argv[name][0] == sys.executable or (name in prepared and prepared[name].python)
            record = process.spawn(
                name,
                argv[name],
                state / "logs" / f"{name}.log",
                [base + o for o in offsets],
                cwd=state,
                env=env if python else None,
            )
            records.append(record)
            _save_records(state, records)
        _wait_ready(records, base)
        data, facts = _load_data(base, auth)
        data["dcmqrscp"] = {"studies": qr_studies}
        data["web-fixtures"] = {"studies": len(webfixture_pages.STUDIES)}
        facts["vsftpd-anonymous"] = ftp_tree
        plugin_services = [
            entry for server in chosen for entry in server.services(base, prepared[server.name].facts)
        ]
        lab = {
            "base_port": base,
            "implementations": any(server in plugins.implementations() for server in chosen),
            "host": services.HOST,
            "state_dir": str(state),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "services": services.build_services(base, data, str(state / CREDENTIALS), facts) + plugin_services,
            "canary": services.build_canary(
                [
                    "orthanc-open",
                    "orthanc-locked",
                    "dcmqrscp",
                    "pynetdicom-any",
                    "pynetdicom-tls",
                    "orthanc-default",
                    "fixture-dcm4chee-arc",
                    "fixture-dicomweb",
                    "vsftpd-anonymous",
                    *(name for server in chosen for name in server.canary),
                ]
            ),
            "data": data,
        }
        _write_json(state / MANIFEST, lab)
        return lab
    except BaseException:
        process.stop(records)
        (state / PIDS).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def single(name: str, folder: Path, base_port: int) -> Iterator[list[dict[str, Any]]]:
    """Run one plug-in server alone (for its own tests): yields its manifest entries, stops it after."""
    server = next((s for s in (*plugins.servers(), *plugins.implementations()) if s.name == name), None)
    if server is None:
        raise LabError(f"no lab plug-in named {name!r}")
    server.check_installed()
    _check_ports(base_port, [(name, server.offsets)])
    shutil.rmtree(folder / name, ignore_errors=True)
    (folder / name).mkdir(parents=True)
    prepared = server.prepare(folder / name, base_port)
    record = process.spawn(
        name, prepared.argv, folder / "logs" / f"{name}.log", [base_port + o for o in server.offsets],
        cwd=folder, env=_python_env() if prepared.python else None,
    )  # fmt: skip
    try:
        _wait_ready([record], base_port)
        yield server.services(base_port, prepared.facts)
    finally:
        process.stop([record])


def _wait_ready(records: list[ProcessRecord], base: int, timeout: float = READY_TIMEOUT) -> None:
    pending = list(records)
    http_ports = {base + 1, base + 3, base + 9}
    everyone = (*plugins.servers(), *plugins.implementations())
    custom = {server.name: server.ready for server in everyone if server.ready is not None}
    names = {record.name for record in records}
    timeout = max([timeout, *(server.ready_timeout for server in everyone if server.name in names)])
    deadline = time.monotonic() + timeout
    while pending:
        for record in list(pending):
            if not process.record_alive(record):
                raise LabError(f"{record.name} exited during start-up: {process.log_tail(record.log)}")
            check = custom.get(record.name)
            if check is not None:
                ready = check(base)
            else:
                ready = all(process.port_accepting(p, timeout=0.3) for p in record.ports) and all(
                    orthanc.http_ready(p) for p in record.ports if p in http_ports
                )
            if ready:
                pending.remove(record)
        if not pending:
            return
        if time.monotonic() > deadline:
            record = pending[0]
            raise LabError(f"{record.name} was not ready within {timeout:.0f} s: {process.log_tail(record.log)}")
        time.sleep(0.1)


def _load_data(base: int, auth: tuple[str, str]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, Any]]]:
    """Upload the test instances and the canary to every Orthanc over REST.

    Returns per Orthanc the instances stored and studies held, and the facts measured on
    orthanc-open after loading (its /statistics, its QIDO answer to limit=1).
    """
    payloads = [path.read_bytes() for path in sample_files()] + [canary_bytes()]
    data: dict[str, dict[str, int]] = {}
    for name, http_port, credentials in (
        ("orthanc-open", base + 1, None),
        ("orthanc-locked", base + 3, auth),
        ("orthanc-default", base + 9, orthanc.DEFAULT_CREDENTIALS),
    ):
        stored = orthanc.load_instances(http_port, payloads, credentials)
        if stored == 0:
            raise LabError(f"{name} refused every test instance: see its log")
        data[name] = {
            "instances": stored,
            "studies": orthanc.study_count(http_port, credentials),
        }
    facts: dict[str, dict[str, Any]] = {"orthanc-open": {"statistics": orthanc.statistics(base + 1)}}
    if orthanc.dicomweb_available():
        facts["orthanc-open"]["dicomweb_studies_limit_1"] = orthanc.qido_facts(base + 1)
    return data, facts


def down(state_dir: Path | None = None) -> int:
    """Stop every lab process (SIGTERM, SIGKILL after 15 s); the number stopped."""
    state = _resolve(state_dir)
    if not state.exists():
        return 0
    with _locked(state):
        stopped = process.stop(_records(state))
        for name in (PIDS, MANIFEST):
            (state / name).unlink(missing_ok=True)
        _remove_public(state)
        return stopped


def status(state_dir: Path | None = None) -> list[dict]:
    """Per service: name, port, protocol, process, pid, running (pid alive, port accepting)."""
    state = _resolve(state_dir)
    lab = manifest(state)
    if lab is None:
        return []
    by_name = {r.name: r for r in _records(state)}
    lab_host = lab.get("host", services.HOST)
    rows = []
    for service in lab.get("services", []):
        record = by_name.get(service.get("process", service["name"]))
        alive = record is not None and process.record_alive(record)
        rows.append(
            {
                "name": service["name"],
                "host": service.get("host", lab_host),
                "port": service["port"],
                "protocol": service.get("protocol"),
                "process": service.get("process"),
                "pid": record.pid if record else None,
                "running": bool(alive and process.port_accepting(service["port"], service.get("host", lab_host))),
            }
        )
    return rows
