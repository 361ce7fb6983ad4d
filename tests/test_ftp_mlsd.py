"""The FTP probe against a real pyftpdlib server: MLSD listings and AUTH TLS offered.

pyftpdlib announces `MLST` in FEAT (RFC 3659) and lists with MLSD; it offers AUTH TLS
without requiring it. It follows the tree's link HL7/back -> .. as a folder, so the loop
shows as a folder whose listing repeats the root's: seen once, not walked again.
"""

from __future__ import annotations

import ftplib
import json

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus
from phiwatch.peertext import peer_text
from phiwatch.probes import ftp
from phiwatch.probes.walk import Outcome, WalkLimits
from phiwatch_lab import medtree
from phiwatch_lab.pyftpd import BANNER

from .repo_helpers import HOST, identify, no_leak
from .repo_helpers import run_probe as _run_probe


def run_probe(port: int, limits: WalkLimits | None = None) -> Outcome:
    return _run_probe(ftp, port, limits)


@pytest.fixture(scope="module")
def mlsd(lab_plugin):
    with lab_plugin("pyftpdlib-mlsd") as entries:
        (entry,) = entries
        yield entry, identify(entry["port"])


def test_server_really_offers_mlsd_and_tls(mlsd):
    entry, _ = mlsd
    # The server itself, with ftplib: what the probe must discover on its own
    client = ftplib.FTP()
    client.connect(HOST, entry["port"], timeout=5)
    try:
        features = client.sendcmd("FEAT")
        assert "AUTH TLS" in features and "MLST" in features
        client.login()
        assert {facts["type"] for _, facts in client.mlsd("/")} == {"dir", "file"}
        with pytest.raises(ftplib.error_perm):
            client.mkd("/x")  # read-only
    finally:
        client.close()


def test_mlsd_tree_is_exposed_with_the_walks_counts(mlsd, tmp_path):
    entry, svc = mlsd
    expected = entry["expected"]
    assert svc.protocol == "ftp" and svc.identified_by == "banner"
    assert svc.status is ProbeStatus.EXPOSED
    facts = svc.repository
    assert facts is not None and facts.access == "anonymous" and facts.login == "anonymous"
    assert facts.listing == "mlsd" == expected["listing"]
    assert facts.tls_offered is True and expected["tls_offered"] is True
    assert facts.server == peer_text(f"220 {BANNER}")
    (share,) = facts.shares
    counts = {kind: count.model_dump() for kind, count in share.files.items()}
    assert counts == expected["probe_counts"] == medtree.probe_counts(medtree.build_tree(tmp_path / "t"))
    assert counts["dicom"]["estimated"] == medtree.SERIES_SIZE - WalkLimits().per_directory
    assert {"PatientName", "PatientID"} <= set(share.phi_attributes["dicom"])
    assert "PID-5 patient name" in share.phi_attributes["hl7"]
    # The link is a folder here: listed once, its listing repeats the root's, not walked further
    assert share.loops == expected["loops"] == 1
    assert share.directories == 8  # /, DICOM, patient folder, HL7, HL7/back (the loop), IMAGES, SE000001, X12
    assert share.limited
    assert 0 < share.bytes_read <= share.files_sniffed * WalkLimits().file_budget


def test_mlsd_findings_tls_offered_and_nothing_leaks(mlsd):
    _, svc = mlsd
    found = {f.check_id: f for f in evaluate(svc)}
    assert set(found) == {"ftp_medical_files_exposed"}  # AUTH TLS is offered: no ftp_no_tls
    plain = svc.model_copy(update={"repository": svc.repository.model_copy(update={"tls_offered": False})})
    assert "ftp_no_tls" in {f.check_id for f in evaluate(plain)}  # the same facts without TLS would fire it
    text = svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in found.values()])
    no_leak(text)


def test_mlsd_walk_bounds_hold(mlsd):
    entry, _ = mlsd
    limits = WalkLimits(max_files=4, per_directory=2, max_depth=1)
    outcome = run_probe(entry["port"], limits)
    assert outcome.status is ProbeStatus.EXPOSED and outcome.facts.listing == "mlsd"
    (share,) = outcome.facts.shares
    assert share.limited
    assert share.directories == 5  # /, DICOM, HL7, IMAGES, X12: their subfolders are beyond depth 1
    assert share.files_sniffed == 4  # max_files, over the whole host
    assert share.bytes_read <= 4 * limits.file_budget
    assert "dicom" not in share.files  # every DICOM instance sits two folders down
    counts = {kind: (c.verified, c.estimated) for kind, c in share.files.items()}
    assert sum(v + e for v, e in counts.values()) == 6  # DICOMDIR, 3 HL7, 2 X12: sniffed or named
