"""`phiwatch lab up --implementations`: the further real implementations of each protocol (ProFTPD,
pure-ftpd, rclone, Apache, lighttpd, Caddy, Python's http.server, SeaweedFS, Apache WebDAV, the
honeypot hosts) start beside the whole lab, and a scan of the lab finds each one's exposure as its own tests do.

Those servers drop to an unprivileged user, which cannot reach the lab's private state folder:
they keep their files in a folder of their own that `lab down` removes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phiwatch_lab import plugins
from phiwatch_lab.canary import CANARY_STRINGS

from .conftest import LAB_BASE_PORT

BASE = LAB_BASE_PORT + 1000  # beside the session's lab (+0), plug-ins (+200), implementations (+400)
NEGATIVE = {"apache-webdav-login", "apache-webdav-refused", "rclone-s3-signed"}  # controls: no exposure


def phiwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.lab
def test_every_further_implementation_is_up_and_its_exposure_found(tmp_path):
    # Given the whole lab with the further implementations, on a base of its own
    state = tmp_path / "state"
    up = phiwatch("lab", "up", "--state-dir", str(state), "--base-port", str(BASE), "--implementations")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        manifest = json.loads((state / "lab.json").read_text())
        public = Path((state / "public-folder").read_text().strip())
        further = {server.name for server in plugins.implementations()}
        ours = [e for e in manifest["services"] if e["process"] in further]
        # the file servers on the lab's host; the honeypot hosts on addresses of their own (test_trust_lab)
        entries = [e for e in ours if e.get("host", manifest["host"]) == manifest["host"]]
        assert manifest["implementations"] is True and len(entries) >= 16
        assert {e["process"] for e in ours if e not in entries} == {"honeypot-hosts"}
        # their files are in the public folder; the rest of the lab's stay in the private state folder
        assert public.is_dir() and (public.stat().st_mode & 0o777) == 0o755
        assert {p.name for p in public.iterdir()} == further
        assert (state.stat().st_mode & 0o077) == 0
        # When the lab's further ports are scanned
        out = tmp_path / "out"
        ports = ",".join(str(e["port"]) for e in entries)
        scan = phiwatch("scan", manifest["host"], "-p", ports, "--timeout", "5", "--no-db", "--output", str(out),
                        "--progress", "none")
    finally:
        down = phiwatch("lab", "down", "--state-dir", str(state))
    assert scan.returncode in (0, 1), scan.stderr[-3000:]
    document = json.loads((out / "scan.json").read_text())
    status = {s["port"]: s["status"] for s in document["services"]}
    exposed_by = {f["port"] for f in document["findings"] if f["check_id"].endswith("medical_files_exposed")}
    # Then each is exposed with a medical-files finding, and each negative control is not
    for entry in entries:
        if entry["name"] in NEGATIVE:
            assert status.get(entry["port"]) != "exposed" and entry["port"] not in exposed_by, entry["name"]
        else:
            assert status.get(entry["port"]) == "exposed" and entry["port"] in exposed_by, entry["name"]
    # And no planted patient value reached any output
    for text in (scan.stdout, scan.stderr, *(p.read_text() for p in out.iterdir())):
        assert not [c for c in CANARY_STRINGS if c in text]
    # And `lab down` removed the public folder with the servers
    assert down.returncode == 0 and not public.exists() and not (state / "public-folder").exists()
