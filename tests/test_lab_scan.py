"""Given the real lab servers, a phiwatch scan finds exactly their documented exposures,
writes a valid scan.json and store, and no planted PHI value reaches any output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from phiwatch.lab.canary import CANARY_STRINGS
from phiwatch.models import ScanResult
from phiwatch.store import Store

pytestmark = pytest.mark.lab


def phiwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module")
def lab_scan(lab, tmp_path_factory):
    """One scan of every lab port, through the real CLI, with a debug log."""
    out = tmp_path_factory.mktemp("lab-scan")
    ports = [s["port"] for s in lab["services"]]
    result = phiwatch("scan", lab["host"], "-p", f"{min(ports)}-{max(ports)}",
                      "--output", str(out), "--db", str(out / "phiwatch.db"),
                      "--log-file", str(out / "phiwatch.log"), "--timeout", "2")
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "scan.json").read_text())
    return {"out": out, "process": result, "json": document,
            "by_port": {s["port"]: s for s in document["services"]},
            "manifest": {s["name"]: s for s in lab["services"]}}


def service(lab_scan, name: str) -> dict:
    return lab_scan["by_port"][lab_scan["manifest"][name]["port"]]


def findings(lab_scan, name: str) -> dict[str, dict]:
    port = lab_scan["manifest"][name]["port"]
    return {f["check_id"]: f for f in lab_scan["json"]["findings"] if f["port"] == port}


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
    assert "phiwatch-lab" in svc["tls"]["subject"]
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


def test_no_canary_value_reaches_json_store_logs_or_console(lab_scan):
    out: Path = lab_scan["out"]
    blobs = {
        "scan.json": (out / "scan.json").read_bytes(),
        "phiwatch.db": (out / "phiwatch.db").read_bytes(),
        "phiwatch.log": (out / "phiwatch.log").read_bytes(),
        "stdout": lab_scan["process"].stdout.encode(),
        "stderr": lab_scan["process"].stderr.encode(),
    }
    assert len(blobs["phiwatch.log"]) > 0
    for name, blob in blobs.items():
        for canary in CANARY_STRINGS:
            assert canary.encode() not in blob, f"{canary!r} leaked into {name}"
            assert canary.upper().encode() not in blob.upper(), f"{canary!r} leaked into {name}"


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
