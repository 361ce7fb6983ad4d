"""Each protocol's library is imported when its probe first runs, never at start-up.

A scan of one DICOM port (the lab's pynetdicom SCP) runs in a fresh interpreter, which then
lists the modules it imported: none of the file-repository, S3, SMB, NFS, HTTP or cluster
libraries may be among them.
"""

from __future__ import annotations

import asyncio
import json
import os
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
