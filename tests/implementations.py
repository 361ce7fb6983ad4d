"""What the per-protocol tests over several real implementations share: one server started alone,
its served folder's independent truth, and the expectations every implementation must meet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, Service, ShareFacts
from phiwatch_lab import control
from phiwatch_lab.canary import CANARY_STRINGS

from .repo_helpers import no_leak
from .truth import Truth, local_truth, scanned

# A base of its own, beside the whole lab's (PHIWATCH_TEST_BASE) and lab_plugin's (+200).
BASE = int(os.environ.get("PHIWATCH_TEST_BASE", "31100")) + 400


@contextmanager
def started(name: str, served: str = "root") -> Iterator[tuple[dict, Truth]]:
    """Start the lab server `name` alone; yield its manifest entry and the truth of the folder it serves.

    Its folder is one the servers' unprivileged users can reach (pytest's own are private).
    """
    folder = Path(tempfile.mkdtemp(prefix=f"phiwatch-{name}-"))
    folder.chmod(0o755)
    try:
        with control.single(name, folder, BASE) as entries:
            entry = {**entries[0], "served": str(folder / name / served)}  # the folder on disk
            yield entry, local_truth(folder / name / served)
        logs_hold_no_canary(folder / "logs")  # the server stopped: its log is complete
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def logs_hold_no_canary(folder: Path) -> None:
    """A lab server's log holds no planted patient value (an access log quoting paths would)."""
    for log in folder.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [s for s in CANARY_STRINGS if s in text], log.name


def expect_like_the_truth(svc: Service, share: ShareFacts, truth: Truth, exposed_check: str,
                          extra: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Files by kind (verified and estimated), PHI attribute names, findings, and no canary anywhere."""
    files, phi = scanned(share)
    assert files == truth.files, f"scan {files} != truth {truth.files}"
    assert phi == truth.phi
    assert share.files_sniffed == truth.sniffed
    assert svc.status is ProbeStatus.EXPOSED
    findings = {f.check_id: f for f in evaluate(svc)}
    assert exposed_check in findings, sorted(findings)
    exposure = findings[exposed_check].exposure
    assert exposure is not None
    assert exposure.files.dicom == truth.total("dicom", "dicomdir")
    assert (exposure.files.hl7, exposure.files.x12) == (truth.total("hl7"), truth.total("x12"))
    no_leak(svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in findings.values()]), extra)


def scan_outputs(port: int, out: Path, *options: str) -> dict:
    """`phiwatch scan` of one port, as a user runs it: every file it writes and everything it prints
    is checked for canary values and lab names; returns its scan.json."""
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", "127.0.0.1", "-p", str(port), "--output", str(out), "--no-db",
         "--timeout", "2", *options],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    no_leak(result.stdout + result.stderr, ("/HL7", "/X12", "/IMAGES"))
    for path in out.rglob("*"):
        if path.is_file():
            no_leak(path.read_text(errors="replace"), ("/HL7", "/X12", "/IMAGES"))
    document: dict = json.loads((out / "scan.json").read_text())
    return document
