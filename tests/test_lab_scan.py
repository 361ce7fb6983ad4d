"""Given the real lab servers, a phiwatch scan finds exactly their documented exposures,
writes a valid scan.json and store, and no planted PHI value reaches any output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from phiwatch.models import ScanResult
from phiwatch.peertext import peer_text, place_name
from phiwatch.store import Store
from phiwatch_lab import nfs, s3, samba
from phiwatch_lab.canary import CANARY_STRINGS
from phiwatch_lab.medtree import CANARY_FOLDER, TREE_FILES

pytestmark = pytest.mark.lab

# Names of files and folders in the lab's trees (lab/medtree.py and the plug-ins' other shares).
LAB_FILE_NAMES = [*TREE_FILES, "ADT_", "claims_", "SE000001", "IM00001", "README", CANARY_FOLDER,
                  *nfs.PUBLIC_FILES, *samba.PUBLIC_FILES, *s3.WWW_FILES, "ledger.csv", "scan.dcm"]


def phiwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True,
                          text=True, timeout=240)


def host_of(lab: dict, entry: dict) -> str:
    """Where a manifest entry listens: the lab's loopback host unless it names its own (NFS)."""
    return entry.get("host", lab["host"])


@pytest.fixture(scope="module")
def lab_scan(lab, tmp_path_factory):
    """One scan of every lab service, through the real CLI, with a debug log: the lab host's ports
    min..max and the NFS namespace's host with its own ports (ports apply to every host of a scan)."""
    out = tmp_path_factory.mktemp("lab-scan")
    local = [s["port"] for s in lab["services"] if host_of(lab, s) == lab["host"]]
    elsewhere = [s for s in lab["services"] if host_of(lab, s) != lab["host"]]
    hosts = [lab["host"], *sorted({s["host"] for s in elsewhere})]
    ports = ",".join([*sorted({str(s["port"]) for s in elsewhere}), f"{min(local)}-{max(local)}"])
    result = phiwatch("scan", *hosts, "-p", ports,
                      "--output", str(out), "--db", str(out / "phiwatch.db"),
                      "--log-file", str(out / "phiwatch.log"), "--timeout", "5")
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "scan.json").read_text())
    return {"out": out, "process": result, "json": document, "lab": lab,
            "by_address": {(s["host"], s["port"]): s for s in document["services"]},
            "manifest": {s["name"]: s for s in lab["services"]}}


def address(lab_scan, name: str) -> tuple[str, int]:
    entry = lab_scan["manifest"][name]
    return host_of(lab_scan["lab"], entry), entry["port"]


def service(lab_scan, name: str) -> dict:
    return lab_scan["by_address"][address(lab_scan, name)]


def findings(lab_scan, name: str) -> dict[str, dict]:
    where = address(lab_scan, name)
    return {f["check_id"]: f for f in lab_scan["json"]["findings"] if (f["host"], f["port"]) == where}


def test_scan_json_is_valid_against_the_published_schema(lab_scan):
    schema = json.loads(phiwatch("schema").stdout)
    assert json.loads((lab_scan["out"] / "scan.schema.json").read_text()) == schema
    jsonschema.validate(lab_scan["json"], schema)
    ScanResult.model_validate(lab_scan["json"])
    assert lab_scan["json"]["scan"]["complete"] is True


def test_open_orthanc_exposes_counted_studies_without_values(lab_scan):
    svc = service(lab_scan, "orthanc-open")
    expected = lab_scan["manifest"]["orthanc-open"]["expected"]
    assert svc["protocol"] == "dicom" and svc["status"] == "exposed"
    assert svc["identified_by"] == "probe"  # an odd port, identified from its own bytes
    query = svc["dicom"]["query"]
    assert query["studies"] == expected["studies"] >= 2
    assert query["instances"] >= query["studies"]
    assert {"PatientName", "PatientID"} <= set(query["phi_attributes"])
    exposed = findings(lab_scan, "orthanc-open")["dicom_study_data_exposed"]
    assert exposed["severity"] == "critical"
    assert exposed["exposure"]["studies"] == expected["studies"]
    assert "dicom_any_called_ae_accepted" in findings(lab_scan, "orthanc-open")
    assert "dicom_no_tls" in findings(lab_scan, "orthanc-open")


def test_locked_orthanc_rejects_the_unknown_called_ae(lab_scan):
    svc = service(lab_scan, "orthanc-locked")
    assert svc["status"] == "rejected"
    assert svc["dicom"]["reject"]["reason_name"] == "called-ae-not-recognized"
    assert svc["dicom"]["reject"]["permanent"] is True
    assert findings(lab_scan, "orthanc-locked") == {}


def test_dcmqrscp_matches_its_documented_answer(lab_scan):
    svc = service(lab_scan, "dcmqrscp")
    expected = lab_scan["manifest"]["dcmqrscp"]["expected"]
    assert svc["status"] == expected["association"] == "rejected"
    assert svc["dicom"]["reject"]["reason_name"] == expected["reject_reason"]


def test_accept_anything_scp_exposes_studies_and_accepts_storage(lab_scan):
    svc = service(lab_scan, "pynetdicom-any")
    assert svc["status"] == "exposed"
    assert svc["dicom"]["vendor"] == "pynetdicom"
    found = findings(lab_scan, "pynetdicom-any")
    assert {"dicom_study_data_exposed", "dicom_storage_accepted",
            "dicom_retrieve_accepted"} <= set(found)


def test_tls_scp_is_found_behind_tls_with_its_certificate_facts(lab_scan):
    svc = service(lab_scan, "pynetdicom-tls")
    assert svc["protocol"] == "dicom" and svc["dicom"]["tls"] is True
    assert svc["status"] == "exposed"
    assert svc["tls"]["self_signed"] is True and svc["tls"]["expired"] is False
    assert svc["tls"]["subject"] == peer_text("CN=phiwatch-lab")  # through the peer-text gate
    found = findings(lab_scan, "pynetdicom-tls")
    assert "dicom_no_tls" not in found
    assert "dicom_tls_certificate_untrusted" in found


def test_http_ports_are_identified_as_http(lab_scan):
    for name in ("orthanc-open-http", "orthanc-locked-http"):
        assert service(lab_scan, name)["protocol"] == "http"


def test_tarpit_ends_in_timeout(lab_scan):
    svc = service(lab_scan, "tarpit")
    assert svc["status"] == "timeout"
    assert svc["elapsed_ms"] < 60_000


def test_the_store_holds_the_same_scan(lab_scan):
    document = lab_scan["json"]
    store = Store(lab_scan["out"] / "phiwatch.db")
    loaded = store.load(document["scan"]["id"])
    store.close()
    assert loaded is not None
    assert loaded.model_dump(mode="json") == ScanResult.model_validate(document).model_dump(
        mode="json")


def test_no_canary_value_or_lab_file_name_reaches_any_output(lab_scan):
    # Given every output of the scan: scan.json, the store, the debug log, report.html and the console
    out: Path = lab_scan["out"]
    blobs = {
        "scan.json": (out / "scan.json").read_bytes(),
        "phiwatch.db": (out / "phiwatch.db").read_bytes(),
        "phiwatch.log": (out / "phiwatch.log").read_bytes(),
        "report.html": (out / "report.html").read_bytes(),
        "stdout": lab_scan["process"].stdout.encode(),
        "stderr": lab_scan["process"].stderr.encode(),
    }
    assert len(blobs["phiwatch.log"]) > 0 and b"</html>" in blobs["report.html"]
    assert b"critical" in blobs["stdout"] + blobs["stderr"] and len(blobs["phiwatch.db"]) > 0
    for name, blob in blobs.items():
        # Then no planted patient value appears, in any case
        for canary in CANARY_STRINGS:
            assert canary.encode() not in blob, f"{canary!r} leaked into {name}"
            assert canary.upper().encode() not in blob.upper(), f"{canary!r} leaked into {name}"
        # And no file or folder name of the lab's trees (share, module, bucket, export names may appear)
        for file_name in LAB_FILE_NAMES:
            assert file_name.encode() not in blob, f"{file_name!r} leaked into {name}"


def test_known_ae_title_from_a_file_opens_the_locked_orthanc_but_not_its_data(lab, tmp_path):
    locked = next(s for s in lab["services"] if s["name"] == "orthanc-locked")
    titles = tmp_path / "aets.txt"
    titles.write_text(f"NOTTHIS\n{locked['called_ae']}\n")
    out = tmp_path / "out"
    result = phiwatch("scan", lab["host"], "-p", str(locked["port"]), "--aet-file", str(titles),
                      "--output", str(out), "--no-db", "--timeout", "2")
    assert result.returncode == 0, result.stderr
    [svc] = json.loads((out / "scan.json").read_text())["services"]
    assert svc["dicom"]["called_ae"] == locked["called_ae"]
    assert svc["dicom"]["called_ae_guessed"] is True and svc["dicom"]["aet_attempts"] == 3
    assert svc["status"] == "query-refused"
    assert svc["dicom"]["query"]["refusal"] == "abort"
    checks = {f["check_id"] for f in json.loads((out / "scan.json").read_text())["findings"]}
    assert "dicom_default_ae_title_accepted" in checks
    assert "dicom_study_data_exposed" not in checks


def test_open_orthanc_http_exposes_exact_counts_over_dicomweb(lab_scan):
    svc = service(lab_scan, "orthanc-open-http")
    expected = lab_scan["manifest"]["orthanc-open-http"]["expected"]
    assert svc["protocol"] == "http" and svc["status"] == "exposed"
    [dicomweb] = svc["http"]["dicomweb"]
    assert dicomweb["exact"] is True and dicomweb["access"] == "none"
    assert dicomweb["studies"] == expected["studies"]
    assert {"Orthanc"} == {p["product"] for p in svc["http"]["products"]}
    assert "1.10.1" in {p["version"] for p in svc["http"]["products"]}
    found = findings(lab_scan, "orthanc-open-http")
    assert found["dicomweb_studies_exposed"]["severity"] == "critical"
    assert found["dicomweb_studies_exposed"]["exposure"]["studies"] == expected["studies"]
    assert "web_pacs_open" in found


def test_locked_and_default_orthanc_refuse_blank_logins_and_are_not_exposed(lab_scan):
    for name in ("orthanc-locked-http", "orthanc-default-http"):
        svc = service(lab_scan, name)
        assert svc["status"] == "open", name
        assert svc["http"]["auth_realm"] == "Orthanc Secure Area"
        assert svc["http"]["blank_login"] is False
        assert svc["http"]["default_logins_tried"] == 0  # not without --try-default-logins
        found = findings(lab_scan, name)
        assert {"web_credentials_over_http", "web_pacs_detected"} <= set(found)
        assert "dicomweb_studies_exposed" not in found


@pytest.mark.parametrize(
    ("name", "product", "checks"),
    [
        ("fixture-dcm4chee-arc", "dcm4chee-arc", {"dicomweb_studies_exposed", "web_pacs_open"}),
        ("fixture-ohif", "OHIF Viewer", {"web_pacs_detected"}),
        ("fixture-dicoogle", "Dicoogle", {"web_pacs_open"}),
        ("fixture-kheops", "Kheops", {"web_pacs_detected"}),
        ("fixture-meddream", "MedDream", {"web_blank_login_accepted", "web_credentials_over_http"}),
        ("fixture-pacsone", "PacsOne", {"web_pacs_detected", "web_credentials_over_http"}),
        ("fixture-horos", "Horos Web Portal", {"web_pacs_detected", "web_credentials_over_http"}),
        ("fixture-xnat", "XNAT", {"web_pacs_detected", "web_credentials_over_http"}),
        ("fixture-conquest", "Conquest", {"web_pacs_open"}),
        ("fixture-dicomweb", None, {"dicomweb_studies_exposed", "web_cors_wildcard_credentials"}),
    ],
)
def test_product_fixtures_are_fingerprinted_with_their_documented_exposure(lab_scan, name, product, checks):
    # These are static fixtures that mimic products not installable here (see lab/webfixture_pages.py)
    svc = service(lab_scan, name)
    expected = lab_scan["manifest"][name]["expected"]
    assert expected["fixture"] is True
    products = {p["product"]: p["version"] for p in svc["http"]["products"]}
    if product is not None:
        assert product in products
        if expected.get("version"):
            assert expected["version"] in {v for v in products.values() if v}
    found = set(findings(lab_scan, name))
    assert checks <= found, found
    if expected.get("query") == "exposed":
        studies = [d["studies"] for d in svc["http"]["dicomweb"] if d["result"] == "exposed"]
        assert studies == [expected["studies"]]


def test_default_logins_are_tried_only_when_asked_and_found(lab, tmp_path):
    by_name = {s["name"]: s for s in lab["services"]}
    ports = [by_name[n]["port"] for n in ("orthanc-locked-http", "orthanc-default-http", "fixture-xnat")]
    out = tmp_path / "out"
    result = phiwatch("scan", lab["host"], "-p", ",".join(map(str, ports)), "--try-default-logins",
                      "--output", str(out), "--no-db", "--timeout", "2")
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "scan.json").read_text())
    services = {s["port"]: s for s in document["services"]}
    locked, default, xnat = (services[p]["http"] for p in ports)
    assert locked["default_login_user"] is None and 1 <= locked["default_logins_tried"] <= 3
    assert default["default_login_user"] == "orthanc"
    assert xnat["default_login_user"] == "admin"
    [exposure] = [d for d in default["dicomweb"] if d["result"] == "exposed"]
    assert exposure["access"] == "default-login"
    assert exposure["studies"] == by_name["orthanc-default-http"]["expected"]["default_credentials"]["studies"]
    checks = {(f["port"], f["check_id"]) for f in document["findings"]}
    assert (ports[1], "web_default_login_accepted") in checks
    assert (ports[2], "web_default_login_accepted") in checks
    assert (ports[0], "web_default_login_accepted") not in checks
    for canary in CANARY_STRINGS:
        assert canary not in (out / "scan.json").read_text()


# --- file repositories ----------------------------------------------------------------------------

# Check ids the scan must give each file-repository service of the manifest (every entry whose
# expected block states an access); the status follows from that access.
REPOSITORIES: dict[str, set[str]] = {
    "vsftpd-anonymous": {"ftp_medical_files_exposed", "ftp_no_tls"},
    "vsftpd-closed": {"ftp_no_tls"},
    "pyftpdlib-mlsd": {"ftp_medical_files_exposed"},
    "nginx-autoindex": {"http_index_medical_files_exposed"},
    "rsyncd": {"rsync_medical_files_exposed", "rsync_module_list_exposed"},
    "moto-s3": {"s3_bucket_medical_files_exposed", "s3_anonymous_list_buckets", "s3_bucket_public_listing"},
    "nfs-ganesha": {"nfs_medical_files_exposed", "nfs_world_readable_export", "nfs_export_list_exposed"},
    "nfs-ganesha-rpcbind": set(),
    "samba-guest": {"smb_medical_files_exposed", "smb_anonymous_share_access", "smb1_enabled",
                    "smb_signing_not_required"},
    "samba-auth": set(),
}
STATUS_OF_ACCESS = {"anonymous": "exposed", "denied": "rejected", "not-attempted": "open"}
# The share that holds the medical tree, where the manifest gives one flat block of counts.
TREE_SHARE = {"vsftpd-anonymous": "/", "pyftpdlib-mlsd": "/", "nginx-autoindex": "/", "rsyncd": "imaging",
              "samba-guest": "imaging"}
FACTS = ("access", "login", "listing", "dialect", "tls_offered", "smb1", "signing_required")


def expected_counts(name: str, expected: dict) -> dict[str, dict]:
    """The manifest's measured counts per share: {share: {kind: {verified, estimated}}}."""
    counts = expected.get("probe_counts", {})
    if counts and all("verified" in value for value in counts.values()):
        return {TREE_SHARE[name]: counts}
    return counts


def _strings(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {*value, *(text for item in value.values() for text in _strings(item))}
    if isinstance(value, list):
        return {text for item in value for text in _strings(item)}
    return set()


def shares_of(lab_scan, name: str) -> dict[str, dict]:
    """Shares by the names the manifest gives; the scan keeps a name not made of generic words as a
    keyed hash (peertext.place_name, with this installation's salt), which maps back here."""
    known = {place_name(raw): raw for raw in _strings(lab_scan["manifest"][name]["expected"]) if len(raw) <= 64}
    shares = service(lab_scan, name)["repository"]["shares"]
    return {known.get(share["name"], share["name"]): share for share in shares}


def test_every_service_of_the_manifest_is_found_with_its_protocol_and_nothing_else(lab_scan):
    lab = lab_scan["lab"]
    wanted = {(host_of(lab, s), s["port"]): s["protocol"] for s in lab["services"]}
    found = {where: s["protocol"] for where, s in lab_scan["by_address"].items()}
    assert set(found) == set(wanted)
    tarpit = address(lab_scan, "tarpit")
    assert found.pop(tarpit) == "unknown" and wanted.pop(tarpit) == "dicom"  # it never says a byte
    assert found == wanted


def test_the_table_covers_every_file_repository_of_the_manifest(lab_scan):
    repositories = [s["name"] for s in lab_scan["lab"]["services"] if "access" in s["expected"]]
    assert sorted(repositories) == sorted(REPOSITORIES)


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_file_repository_has_its_protocol_status_facts_and_findings(lab_scan, name):
    entry = lab_scan["manifest"][name]
    expected = entry["expected"]
    svc = service(lab_scan, name)
    # Then the scan names its protocol, and its status follows from the access the manifest states
    assert svc["protocol"] == entry["protocol"]
    assert svc["status"] == STATUS_OF_ACCESS[expected["access"]]
    # And its facts are the manifest's
    facts = svc["repository"]
    for key in FACTS:
        if key in expected:
            assert facts[key] == expected[key], key
    # And its findings are exactly the documented ones
    assert set(findings(lab_scan, name)) == REPOSITORIES[name]


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_file_repository_counts_are_the_manifests(lab_scan, name):
    expected = lab_scan["manifest"][name]["expected"]
    shares = shares_of(lab_scan, name)
    measured = expected_counts(name, expected)
    # Then the shares holding the tree count, per kind, what the manifest measured (verified/estimated)
    for share_name, counts in measured.items():
        assert shares[share_name]["files"] == counts, share_name
    # And no other share shows a medical file, and the folder loops are the manifest's
    assert all(share["files"] == {} for share_name, share in shares.items() if share_name not in measured)
    assert sum(share["loops"] for share in shares.values()) == expected.get("loops", 0)
    # And the exposure counts every file the server holds: verified plus estimated
    exposures = [f["exposure"] for f in findings(lab_scan, name).values() if f["exposure"]]
    if any(measured.values()):
        present = expected["files_present"]
        [exposure] = exposures
        assert exposure["files"] == {"dicom": present["dicom"] + present["dicomdir"], "hl7": present["hl7"],
                                     "x12": present["x12"]}  # fmt: skip
        assert {"PatientName", "PatientID"} <= set(exposure["phi_attributes"])
    else:
        assert exposures == []


def test_shares_modules_buckets_and_exports_are_the_manifests(lab_scan):
    def names(name: str, key: str) -> list[str]:
        return [share for share, facts in shares_of(lab_scan, name).items() if facts[key]]

    manifest = lab_scan["manifest"]
    rsync = manifest["rsyncd"]["expected"]
    assert list(shares_of(lab_scan, "rsyncd")) == rsync["modules_listed"]  # "hidden" is not listed
    assert names("rsyncd", "readable") == rsync["open"]
    assert names("rsyncd", "auth_required") == rsync["auth_required"]
    bucket = manifest["moto-s3"]["expected"]
    s3_shares = shares_of(lab_scan, "moto-s3")
    assert list(s3_shares) == ["/", *bucket["buckets"]]
    assert names("moto-s3", "auth_required") == bucket["auth_required"]
    assert {b: s3_shares[b]["directories"] for b in bucket["directories"]} == bucket["directories"]
    export = manifest["nfs-ganesha"]["expected"]
    nfs_shares = shares_of(lab_scan, "nfs-ganesha")
    assert list(nfs_shares) == sorted(export["exports"])  # "/restricted" is not listed to the lab
    assert names("nfs-ganesha", "auth_required") == export["privileged_port_exports"]
    assert nfs_shares["/public"]["entries"] == export["public_entries"]
    guest = manifest["samba-guest"]["expected"]
    smb_shares = shares_of(lab_scan, "samba-guest")
    assert {n: "readable" if s["readable"] else "auth_required" for n, s in smb_shares.items()} == guest["shares"]
    assert smb_shares["public"]["entries"] == guest["public_entries"]
    assert manifest["samba-auth"]["expected"]["shares"] == len(shares_of(lab_scan, "samba-auth")) == 0


@pytest.mark.parametrize("name", ["samba-auth", "vsftpd-closed"])
def test_negative_controls_have_no_exposure_finding(lab_scan, name):
    svc = service(lab_scan, name)
    assert svc["status"] == "rejected" and svc["repository"]["access"] == "denied"
    assert all(not share["readable"] and share["entries"] == 0 for share in svc["repository"]["shares"])
    found = findings(lab_scan, name)
    assert all(f["exposure"] is None and f["severity"] not in ("critical", "high") for f in found.values())
    assert not [check for check in found if check.endswith("_exposed") or "anonymous" in check]
