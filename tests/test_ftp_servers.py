"""The FTP probe against five real FTP servers over the same medical tree, each held to the truth
of the folder it serves (tests/truth.py), not to counts phiwatch measured.

vsftpd 3.0.3 (LIST only), pyftpdlib (MLSD, AUTH TLS offered), ProFTPD 1.3.8 and pure-ftpd
1.0.50 (both honour ASCII mode: without TYPE I, files are rewritten and DICOM heads break)
and rclone's FTP server (no ABOR). Each transfer cut at the per-file budget must end in band,
so every file of every kind is found on every server.
"""

from __future__ import annotations

import ftplib

import pytest

from phiwatch.probes import ftp

from .implementations import expect_like_the_truth, scan_outputs, started
from .repo_helpers import HOST, identify

SERVERS = ["vsftpd-alone", "pyftpdlib-mlsd", "proftpd-anonymous", "pure-ftpd-anonymous", "rclone-ftp"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request):
    with started(request.param) as (entry, truth):
        yield request.param, entry, truth, identify(entry["port"])


def test_every_file_is_found_by_kind_as_the_served_folder_holds_it(server):
    name, entry, truth, svc = server
    # Given a real FTP server over the medical tree, When the scanner meets it on an odd port
    assert svc.protocol == "ftp" and svc.identified_by == "banner"
    facts = svc.repository
    assert facts is not None and facts.access == "anonymous"
    (share,) = facts.shares
    # Then what it counts is what the served folder holds under the same limits
    assert truth.files["dicom"]["estimated"] > 0 and truth.total("hl7") and truth.total("x12")
    expect_like_the_truth(svc, share, truth, "ftp_medical_files_exposed")
    assert share.error is None, (name, share.error)


def test_the_server_really_rewrites_ascii_and_the_probe_asks_for_binary(server):
    name, entry, _, _ = server
    # The server itself, with ftplib: a file with CR LF pairs, read in ASCII and in binary mode
    client = ftplib.FTP()
    client.connect(HOST, entry["port"], timeout=5)
    try:
        client.login()
        chunks: list[bytes] = []
        client.sendcmd("TYPE I")
        client.retrbinary("RETR /X12/claims_1.837", chunks.append)
        binary = b"".join(chunks)
        lines: list[str] = []
        client.retrlines("RETR /X12/claims_1.837", lines.append)  # TYPE A
    finally:
        client.close()
    assert binary.startswith(b"ISA*") and len(lines) > 1
    assert ftp.LOGINS[0][0] == "anonymous"


def test_a_scan_of_it_writes_the_exposure_and_no_canary_anywhere(server, tmp_path):
    name, entry, truth, _ = server
    document = scan_outputs(entry["port"], tmp_path)
    (svc,) = document["services"]
    assert svc["protocol"] == "ftp" and svc["status"] == "exposed", name
    finding = next(f for f in document["findings"] if f["check_id"] == "ftp_medical_files_exposed")
    assert finding["exposure"]["files"]["dicom"] == truth.total("dicom", "dicomdir")
