"""Given the web product data, rows validate, match real answers, and flag known flaws."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from phiwatch.probes.http_client import HttpResponse
from phiwatch.probes.web_catalog import Fingerprint, known_flaws, version_tuple, web_catalog


def response(status: int, body: str, **headers: str) -> HttpResponse:
    return HttpResponse(status, {k.replace("_", "-"): v for k, v in headers.items()}, body.encode())


def test_the_catalog_loads_and_every_product_with_rows_is_known():
    catalog = web_catalog()
    assert len(catalog.fingerprints) >= 15
    fingerprinted = {row.product for row in catalog.fingerprints}
    assert {"Orthanc", "dcm4chee-arc", "OHIF Viewer", "Dicoogle", "Kheops", "MedDream", "PacsOne",
            "Horos Web Portal", "XNAT", "Conquest"} <= fingerprinted
    assert set(catalog.products) <= fingerprinted


def test_orthanc_system_gives_product_and_version():
    [row] = [r for r in web_catalog().fingerprints if r.path == "/system" and r.kind == "api"]
    answer = response(200, '{"DicomAet": "ORTHANC", "Version": "1.5.7", "Name": "x"}')
    assert row.matches(answer)
    assert row.version_of(answer) == "1.5.7"
    assert not row.matches(response(200, "<html>hello</html>"))


def test_the_orthanc_realm_is_recognised_without_credentials():
    [row] = [r for r in web_catalog().fingerprints if r.kind == "auth"]
    assert row.matches(response(401, "", www_authenticate='Basic realm="Orthanc Secure Area"'))
    assert not row.matches(response(401, "", www_authenticate='Basic realm="other"'))


def test_known_flaws_follow_the_version():
    assert known_flaws("Orthanc", "1.5.7") == ["CVE-2025-0896"]
    assert known_flaws("Orthanc", "1.5.8") == []
    assert known_flaws("Orthanc", "1.10.1") == []
    assert known_flaws("Orthanc", None) == []
    assert known_flaws("Orthanc", "garbage") == []
    assert version_tuple("1.5.0c") == (1, 5, 0)


def test_a_version_regex_needs_one_group():
    with pytest.raises(ValidationError):
        Fingerprint(product="x", path="/", status=[200], kind="ui", version={"regex": "no group"})
