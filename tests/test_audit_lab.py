"""Both views agree: the lab's own configurations, audited, against a scan of the same servers.

The lab writes its servers' configurations into its state folder (Orthanc JSON, dcmqrscp.cfg,
vsftpd.conf, smb.conf, rsyncd.conf, ganesha.conf, nginx.conf). Given the whole lab, when
`phiwatch audit STATE --sniff-served` and `phiwatch scan` (with --try-default-logins) run
through the CLI, then:
- every finding the scan raises on a configured server, with an id both views share, has an
  audit finding with the same id on the same port, unless EXPLAINED says why not;
- every critical audit finding is proved by the scan (same id, same port) or explained;
- no canary value, lab file name or secret reaches any audit output.
ProFTPD and Apache httpd are not part of `lab up`; they are started alone, as their own
protocol tests start them. What the audit does not see: file permissions between a server's
user and the folder it serves (a server that cannot read its folder exposes nothing while its
configuration says it would), firewalls and network namespaces (the lab's NFS server is
reachable only inside its namespace; the scan reaches it there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phiwatch.checks.metadata import load_catalog
from phiwatch_lab.canary import CANARY_STRINGS

from .test_lab_scan import LAB_FILE_NAMES, host_of

pytestmark = pytest.mark.lab

# The servers whose configuration files the lab writes, by manifest name.
CONFIGURED = {"orthanc-open", "orthanc-open-http", "orthanc-locked", "orthanc-locked-http", "orthanc-default",
              "orthanc-default-http", "dcmqrscp", "vsftpd-anonymous", "vsftpd-closed", "samba-guest",
              "samba-auth", "rsyncd", "nginx-autoindex", "nfs-ganesha"}
# (check id, manifest name) -> why one view has it and the other cannot
EXPLAINED = {
    ("dicom_retrieve_accepted", "orthanc-open"): (
        "the scan judges retrieval from association negotiation alone, and Orthanc accepts the C-GET and "
        "C-MOVE contexts from anyone; its configuration (DicomAlwaysAllowGet/Move false, no DicomModalities) "
        "refuses the operation itself, which the scan never tries"),
    ("dicom_retrieve_accepted", "orthanc-default"): (
        "as for orthanc-open: negotiation accepts, the configuration refuses the operation"),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def views(lab, lab_state_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("audit-lab")
    local = [s["port"] for s in lab["services"] if host_of(lab, s) == lab["host"]]
    elsewhere = [s for s in lab["services"] if host_of(lab, s) != lab["host"]]
    hosts = [lab["host"], *sorted({s["host"] for s in elsewhere})]
    ports = ",".join([*sorted({str(s["port"]) for s in elsewhere}), f"{min(local)}-{max(local)}"])
    scan = run("scan", *hosts, "-p", ports, "--try-default-logins", "--timeout", "5", "--no-db",
               "--output", str(out / "scan"))
    assert scan.returncode == 0, scan.stderr
    audit = run("audit", str(lab_state_dir), "--sniff-served", "--diff", "--output", str(out / "audit"))
    assert audit.returncode == 0, audit.stderr
    by_port = {(host_of(lab, s), s["port"]): s["name"] for s in lab["services"]}
    return {"scan": json.loads((out / "scan" / "scan.json").read_text()),
            "audit": json.loads((out / "audit" / "audit.json").read_text()),
            "audit_texts": [audit.stdout, audit.stderr] + [p.read_text() for p in (out / "audit").iterdir()],
            "by_port": by_port, "ports": {s["port"]: s["name"] for s in lab["services"]}, "lab": lab}


def test_every_configured_server_is_audited_from_its_own_file(views, lab_state_dir):
    audited = {Path(f["path"]).relative_to(lab_state_dir).as_posix(): f["kind"]
               for f in views["audit"]["files"] if f["status"] == "audited" and f["kind"]}
    assert audited == {
        "orthanc-open/orthanc.json": "orthanc.json", "orthanc-locked/orthanc.json": "orthanc.json",
        "orthanc-default/orthanc.json": "orthanc.json", "dcmqrscp/dcmqrscp.cfg": "dcmqrscp.cfg",
        "vsftpd-anonymous/vsftpd.conf": "vsftpd.conf", "vsftpd-closed/vsftpd.conf": "vsftpd.conf",
        "samba-guest/smb.conf": "smb.conf", "samba-auth/smb.conf": "smb.conf", "rsyncd/rsyncd.conf": "rsyncd.conf",
        "nginx-autoindex/nginx.conf": "nginx", "nfs-ganesha/ganesha.conf": "ganesha.conf",
    }
    assert not [f for f in views["audit"]["files"] if f["status"] == "malformed"]


def test_every_exposure_the_scan_proves_has_the_same_audit_finding(views):
    shared = {i for i, e in load_catalog().items() if {"scan", "audit"} <= set(e.sources)}
    audit = {(f["check_id"], f["port"]) for f in views["audit"]["findings"]}
    missing = []
    for finding in views["scan"]["findings"]:
        name = views["by_port"].get((finding["host"], finding["port"]))
        if name not in CONFIGURED or finding["check_id"] not in shared:
            continue
        if (finding["check_id"], finding["port"]) in audit:
            continue
        if (finding["check_id"], name.removesuffix("-http")) not in EXPLAINED:
            missing.append((finding["check_id"], name))
    assert missing == []
    # the negative controls stay clean on both sides
    for name in ("samba-auth", "dcmqrscp"):
        port = next(s["port"] for s in views["lab"]["services"] if s["name"] == name)
        assert not [f for f in views["audit"]["findings"] if f["port"] == port and f["severity"] in
                    {"critical", "high"}], name


def test_every_critical_audit_finding_is_proved_by_the_scan_or_explained(views):
    proved = {(f["check_id"], f["port"]) for f in views["scan"]["findings"]}
    unproved = [(f["check_id"], views["ports"].get(f["port"]), f["location"]["line"])
                for f in views["audit"]["findings"]
                if f["severity"] == "critical" and (f["check_id"], f["port"]) not in proved
                and (f["check_id"], views["ports"].get(f["port"], "").removesuffix("-http")) not in EXPLAINED]
    assert unproved == []
    criticals = {f["check_id"] for f in views["audit"]["findings"] if f["severity"] == "critical"}
    assert {"dicom_study_data_exposed", "dicomweb_studies_exposed", "web_default_login_accepted",
            "smb_medical_files_exposed", "ftp_medical_files_exposed", "rsync_medical_files_exposed",
            "nfs_medical_files_exposed", "http_index_medical_files_exposed"} <= criticals


def test_no_canary_lab_file_name_or_secret_in_any_audit_output(views, lab_state_dir):
    locked = json.loads((lab_state_dir / "orthanc-locked" / "orthanc.json").read_text())
    secrets = [str(p) for p in locked["RegisteredUsers"].values()]
    for text in views["audit_texts"]:
        for value in [*CANARY_STRINGS, *secrets]:
            assert value not in text
        for name in LAB_FILE_NAMES:
            assert name not in text, name


@pytest.mark.parametrize("name", ["proftpd-anonymous", "apache-index"])
def test_proftpd_and_apache_alone_agree_with_their_scan(name, tmp_path):
    """The lab's ProFTPD and Apache httpd, started alone as their protocol tests start them: the audit of
    the configuration each one runs with, and a scan of its ports, see the same exposures."""
    from phiwatch_lab.errors import LabError

    from .implementations import started

    try:
        with started(name) as (entry, _truth):
            folder = Path(entry["served"]).parent  # the server's folder: its configuration and its tree
            ports = [entry["port"]] if name != "apache-index" else [entry["port"], entry["port"] + 1,
                                                                     entry["port"] + 2]
            scan = run("scan", "127.0.0.1", "-p", ",".join(map(str, ports)), "--timeout", "5", "--no-db",
                       "--output", str(tmp_path / "scan"))
            audit = run("audit", str(folder), "--sniff-served", "--output", str(tmp_path / "audit"))
    except LabError as exc:
        pytest.skip(str(exc))
    assert scan.returncode == 0, scan.stderr
    assert audit.returncode == 0, audit.stderr
    scanned = json.loads((tmp_path / "scan" / "scan.json").read_text())["findings"]
    audited = json.loads((tmp_path / "audit" / "audit.json").read_text())["findings"]
    shared = {i for i, e in load_catalog().items() if {"scan", "audit"} <= set(e.sources)}
    proved = {(f["check_id"], f["port"]) for f in scanned if f["check_id"] in shared}
    seen = {(f["check_id"], f["port"]) for f in audited}
    assert proved and proved <= seen
    unproved = [f["check_id"] for f in audited if f["severity"] == "critical"
                and (f["check_id"], f["port"]) not in proved]
    assert unproved == []
    texts = [p.read_text() for p in (tmp_path / "audit").iterdir()]
    assert not [v for v in CANARY_STRINGS for text in texts if v in text]


def test_a_samba_that_lists_shares_to_null_sessions_agrees_with_its_scan(tmp_path):
    """The lab's password-only Samba with `restrict anonymous = 0` (Samba's default) instead of 2: no share
    is open to guests, yet a null session lists the shares; both views say smb_anonymous_share_access."""
    import os
    import signal
    import socket
    import time

    from phiwatch_lab import samba
    from phiwatch_lab.errors import LabError

    from .conftest import LAB_BASE_PORT

    try:
        samba.check_installed()
    except LabError as exc:
        pytest.skip(str(exc))
    port = LAB_BASE_PORT + 96
    folder = tmp_path / "samba"
    folder.mkdir()
    prepared = samba.prepare(folder, LAB_BASE_PORT, guest=False)
    config = folder / "smb.conf"
    text = config.read_text()
    assert "restrict anonymous = 2" in text
    config.write_text(text.replace("restrict anonymous = 2", "restrict anonymous = 0").replace(
        f"smb ports = {LAB_BASE_PORT + samba.AUTH_OFFSET}", f"smb ports = {port}"))
    # its own session: the runner stops Samba's helper by process group
    server = subprocess.Popen(prepared.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        scan = run("scan", "127.0.0.1", "-p", str(port), "--timeout", "3", "--no-db", "--output",
                   str(tmp_path / "scan"))
        audit = run("audit", str(config), "--output", str(tmp_path / "audit"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    assert scan.returncode == 0 and audit.returncode == 0, scan.stderr + audit.stderr
    scanned = {f["check_id"] for f in json.loads((tmp_path / "scan" / "scan.json").read_text())["findings"]}
    audited = json.loads((tmp_path / "audit" / "audit.json").read_text())["findings"]
    assert "smb_anonymous_share_access" in scanned
    [finding] = [f for f in audited if f["check_id"] == "smb_anonymous_share_access"]
    assert finding["port"] == port and "restrict anonymous = 0" in finding["evidence"]
    assert finding["fix"][0]["new"].strip() == "restrict anonymous = 2"
