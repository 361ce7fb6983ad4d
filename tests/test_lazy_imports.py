"""Each protocol's library is imported when its probe first runs, never at start-up.

A scan of one DICOM port (the lab's pynetdicom SCP) runs in a fresh interpreter, which then
lists the modules it imported: none of the file-repository, S3, SMB, NFS, HTTP or cluster
libraries may be among them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from phiwatch.probes import PROTOCOLS

from .conftest import LAB_BASE_PORT

DICOM_PORT = LAB_BASE_PORT + 901
# Libraries of protocols a DICOM scan does not probe (and of the cluster, and of the lab).
NOT_FOR_DICOM = ["impacket", "botocore", "pyNfsClient", "dask", "distributed", "moto", "httpx",
                 "httpcore", "ftplib", "cryptography", "phiwatch.probes.ftp", "phiwatch.probes.smb",
                 "phiwatch.probes.s3", "phiwatch.probes.nfs", "phiwatch.probes.rsync",
                 "phiwatch.probes.dirindex"]  # fmt: skip

SCAN = """
import json, sys
from rich.console import Console
from phiwatch.run import ScanRequest, run_scan
request = ScanRequest(targets=["127.0.0.1"], ports=sys.argv[1], store=False, timeout=2.0, progress="none")
result = run_scan(request, Console(file=open("/dev/null", "w")))
print(json.dumps({"modules": sorted(sys.modules),
                  "services": [(s.protocol, s.status.value) for s in result.services]}))
"""


@pytest.fixture(scope="module")
def dicom_scp():
    proc = subprocess.Popen([sys.executable, "-m", "phiwatch_lab.anyscp", "--port", str(DICOM_PORT)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", DICOM_PORT), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the lab's DICOM SCP did not start")
        yield DICOM_PORT
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_dicom_scan_imports_no_other_protocols_library(dicom_scp, tmp_path):
    # Given the lab's DICOM SCP on one port, When a fresh interpreter scans that port
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-c", SCAN, str(dicom_scp)], capture_output=True, text=True,
                         timeout=60, env=env, check=True)  # fmt: skip
    found = json.loads(run.stdout.strip().splitlines()[-1])
    # Then it probed DICOM (so the DICOM path really ran) ...
    assert found["services"] == [["dicom", "exposed"]]
    assert "pynetdicom" in found["modules"]
    # ... and imported no library of a protocol it did not probe
    imported = set(found["modules"])
    assert [name for name in NOT_FOR_DICOM if name in imported] == []


def test_every_probe_the_protocol_table_names_resolves():
    for spec in PROTOCOLS:
        for probe in (spec.probe and spec.load_probe(), spec.on_http and spec.load_on_http()):
            assert probe is None or asyncio.iscoroutinefunction(probe), spec.name


# Start-up: what the real entry point imports for a scan of one closed port, and for --help.
# Each of these takes tens to hundreds of milliseconds to import and is needed only once a
# service of its protocol answers, a report is written or a cluster is used.
NOT_FOR_A_CLOSED_PORT = ["pydicom", "pynetdicom", "httpx", "httpcore", "jinja2", "cryptography", "impacket",
                         "botocore", "dask", "distributed", "geoip2fast", "numpy", "alembic",
                         "sqlalchemy"]  # fmt: skip
NOT_FOR_HELP = [*NOT_FOR_A_CLOSED_PORT, "pydantic", "yaml", "uvloop", "asyncio"]


def _imported_by(argv: list[str], tmp_path) -> tuple[int, set[str], str]:
    """Run the installed `phiwatch` with Python's import-time log; the modules it imported."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    entry = os.path.join(os.path.dirname(sys.executable), "phiwatch")
    run = subprocess.run([entry, *argv], capture_output=True, text=True, timeout=60, env=env, check=False)
    log = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
    modules = {line.rsplit("|", 1)[1].strip() for line in log}
    return run.returncode, modules, run.stdout + run.stderr


def _heavy(modules: set[str], names: list[str]) -> list[str]:
    return sorted(name for name in names if any(m == name or m.startswith(name + ".") for m in modules))


def test_a_scan_of_a_closed_port_imports_no_protocol_library(tmp_path):
    # Given nothing listening on 127.0.0.1 port 1, When the real entry point scans it without the store
    code, modules, output = _imported_by(["scan", "127.0.0.1", "-p", "1", "--no-db"], tmp_path)
    # Then the scan ran to its end (the engine and the models were loaded) ...
    assert code == 0, output[-2000:]
    assert {"phiwatch.scanner", "phiwatch.models"} <= modules
    # ... without importing a protocol's library, the store (SQLAlchemy), report templates or the cluster
    assert _heavy(modules, NOT_FOR_A_CLOSED_PORT) == []


def test_help_imports_neither_the_models_nor_the_store(tmp_path):
    code, modules, output = _imported_by(["--help"], tmp_path)
    assert code == 0 and "scan" in output
    assert "typer" in modules
    assert _heavy(modules, NOT_FOR_HELP) == []


def test_a_usage_error_answers_before_the_models_load(tmp_path):
    code, modules, output = _imported_by(["scan", "127.0.0.1", "-p", "70000"], tmp_path)
    assert code == 2 and "port out of range" in output
    assert _heavy(modules, [*NOT_FOR_A_CLOSED_PORT, "pydantic", "typer._adapters"]) == []


def test_plain_options_need_no_pydantic_adapter(tmp_path):
    # the scan's options are read without Typer building a TypeAdapter for each (start-up time)
    code, modules, output = _imported_by(["scan", "127.0.0.1", "-p", "1", "--no-db", "--timeout", "1.5",
                                          "--per-host", "4", "--exclude", "127.0.0.2"], tmp_path)  # fmt: skip
    assert code == 0, output[-2000:]
    assert "typer._adapters" not in modules


def test_a_scan_into_a_new_db_file_imports_no_alembic(tmp_path):
    # Given no store yet, When the real entry point scans a closed port into a new --db file
    db = tmp_path / "new.db"
    code, modules, output = _imported_by(["scan", "127.0.0.1", "-p", "1", "--db", str(db)], tmp_path)
    # Then the store was created at the newest revision (SQLAlchemy ran) without importing Alembic
    assert code == 0, output[-2000:]
    assert "sqlalchemy" in modules and _heavy(modules, ["alembic"]) == []
    from phiwatch.migrations import HEAD

    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_a_scan_into_an_existing_store_imports_no_sqlalchemy(tmp_path):
    # Given a store made by a first scan, When the real entry point scans into it again
    db = tmp_path / "phiwatch.db"
    first, _, output = _imported_by(["scan", "127.0.0.1", "-p", "1", "--db", str(db)], tmp_path)
    assert first == 0, output[-2000:]
    code, modules, output = _imported_by(["scan", "127.0.0.1", "-p", "1", "--db", str(db)], tmp_path)
    # Then it was written through sqlite3 alone, and both scans are stored whole
    assert code == 0, output[-2000:]
    assert "phiwatch.litestore" in modules and _heavy(modules, ["sqlalchemy", "alembic"]) == []
    with sqlite3.connect(db) as connection:
        scans = connection.execute("SELECT complete, json_extract(scan, '$.options.ports') FROM scans").fetchall()
        plans = connection.execute("SELECT count(*) FROM scan_plans").fetchall()
    assert scans == [(1, "[1]"), (1, "[1]")] and plans == [(2,)]


SESSION = """
import asyncio, sys, threading
from phiwatch.engine import Engine, Limits
from phiwatch.probes.blocking import run_session
from phiwatch.sessions import BlockingSession

async def main():
    engine = Engine(Limits(timeout=2.0, retries=0))
    session = BlockingSession(engine, "127.0.0.1", asyncio.get_running_loop(), 5.0)
    before = "pydicom" in sys.modules
    seen = await run_session(engine, session, lambda: ("pydicom" in sys.modules,
                                                       threading.current_thread() is threading.main_thread()),
                             lambda: None, 5.0)
    session.close()
    engine.close()
    print(before, *seen)

asyncio.run(main())
"""


def test_a_session_thread_finds_the_sniffer_loaded_by_the_event_loop():
    # Given a fresh interpreter with no pydicom; When a blocking session runs in the engine's pool;
    # Then pydicom (the sniffer's, whose modules import one another in circles) was imported on the
    # loop's thread before the session's thread started: two threads never import it at once.
    out = subprocess.run([sys.executable, "-c", SESSION], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False"]
