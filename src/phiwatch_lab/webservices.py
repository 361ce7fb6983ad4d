"""Manifest entries of the lab's web services: Orthanc with its default credentials
(base + 8 DICOM, + 9 HTTP) and the ten web PACS fixtures (base + 10 .. + 19).

Orthanc's answers were measured with Orthanc 1.10.1 (Debian 12) and are asserted by
tests/test_lab.py; the fixtures' facts are what webfixtures serves (labelled fixtures:
``X-Phiwatch-Fixture``), mimicking the products' public pages (see webfixture_pages).
"""

from __future__ import annotations

from typing import Any

from . import orthanc
from . import webfixture_pages as pages
from .services import _service

FIXTURE_PROCESS = "web-fixtures"


def _orthanc_default(base: int, data: dict[str, dict[str, int]], dicomweb: bool) -> list[dict[str, Any]]:
    studies = data.get("orthanc-default", {}).get("studies", 0)
    user, password = orthanc.DEFAULT_CREDENTIALS
    return [
        _service(
            "orthanc-default",
            "orthanc-default",
            base + 8,
            "dicom",
            "Orthanc 1.10 as installed with its sample user orthanc:orthanc: any called AE, "
            "echo and store allowed, C-FIND from an unknown caller aborted.",
            {
                "association": "accepted",
                "called_ae_checked": False,
                "echo": "success",
                "query": "refused",
                "find": "aborted",
                "store": "success",
                "studies_present": studies,
            },
            called_ae=orthanc.DEFAULT_AET,
        ),
        _service(
            "orthanc-default-http",
            "orthanc-default",
            base + 9,
            "http",
            "Orthanc REST API and DICOMweb behind HTTP Basic with the well-known default "
            "credentials orthanc:orthanc.",
            {
                "status": 401,
                "auth": "basic",
                "realm": "Orthanc Secure Area",
                "product": "orthanc",
                "version": "1.10.1",
                "dicomweb": dicomweb,
                "query": "refused",
                "default_credentials": {
                    "username": user,
                    "password": password,
                    "status": 200,
                    "query": "exposed",
                    "studies": studies,
                    "canary": True,
                },
                # Authorization: Basic Og== (":"), and a right user with a wrong password.
                "blank_credentials": {"authorization": "Basic Og==", "status": 401},
                "wrong_password": {"status": 401},
                "remote_access_allowed": orthanc.DEFAULT_CREDENTIALS_REMOTE_ACCESS,
            },
        ),
    ]


def _fixture(base: int, key: str, description: str, expected: dict[str, Any]) -> dict[str, Any]:
    fixture = pages.BY_KEY[key]
    facts = {
        "fixture": True,
        "fixture_header": pages.FIXTURE_HEADER,
        "product": fixture.product,
        "version": fixture.version,
        "dicomweb": False,
        **expected,
    }
    return _service(f"fixture-{key}", FIXTURE_PROCESS, base + fixture.offset, "http", description, facts)


def _exposed_studies() -> dict[str, Any]:
    return {"dicomweb": True, "query": "exposed", "studies": len(pages.STUDIES), "canary": True}


def _fixtures(base: int) -> list[dict[str, Any]]:
    qido = f"/dcm4chee-arc/aets/{pages.DCM4CHEE_AET}/rs/studies"
    return [
        _fixture(
            base, "dcm4chee-arc",
            "FIXTURE of dcm4chee-arc-light 5.31.2 without security: UI, AE list, device list "
            "with the version, and QIDO-RS with 5 studies (the canary among them).",
            {"page": "/dcm4chee-arc/ui2/", "status": 200, "title": "dcm4chee-arc-ui", "auth": "none",
             "aets": [pages.DCM4CHEE_AET], "qido": qido, "version_path": "/dcm4chee-arc/devices",
             **_exposed_studies()},
        ),
        _fixture(
            base, "ohif",
            "FIXTURE of an OHIF Viewer page without authentication; app-config.js names the "
            "lab's open DICOMweb fixture as its data source.",
            {"page": "/", "status": 200, "title": "OHIF Viewer", "auth": "none",
             "config_path": "/app-config.js", "dicomweb_root": f"http://127.0.0.1:{base + 19}/dicom-web"},
        ),
        _fixture(
            base, "dicoogle",
            "FIXTURE of the Dicoogle web application (login in the page) and its /ext/version.",
            {"page": "/", "status": 200, "title": "Dicoogle", "auth": "login-form",
             "version_path": "/ext/version"},
        ),
        _fixture(
            base, "kheops",
            "FIXTURE of the KHEOPS UI; its API answers 401 without a bearer token.",
            {"page": "/", "status": 200, "title": "Kheops", "auth": "bearer",
             "api": {"path": "/api/studies", "status": 401}},
        ),
        _fixture(
            base, "meddream",
            "FIXTURE of MedDream PACS (a PacsOne OEM) that accepts a blank user name and password: "
            "POST /pacs/authenticate.php with formUsername and formPassword empty.",
            {"page": "/pacs/login.php", "status": 200, "title": "Login", "auth": "login-form",
             "login": _pacs_login(), "blank_login": "accepted",
             "root": {"status": 302, "location": "/pacs/login.php"}},
        ),
        _fixture(
            base, "pacsone",
            "FIXTURE of the PacsOne Server 7.2.3 login page; every login is refused.",
            {"page": "/pacs/login.php", "status": 200, "title": "Login", "auth": "login-form",
             "banner": "PacsOne Server 7.2.3", "login": _pacs_login(), "blank_login": "refused"},
        ),
        _fixture(
            base, "horos",
            "FIXTURE of the Horos Web Portal login page (default port 3333).",
            {"page": "/", "status": 200, "title": "Horos Web Portal", "auth": "login-form"},
        ),
        _fixture(
            base, "xnat",
            "FIXTURE of XNAT 1.8: /login page; the REST API takes HTTP Basic and accepts the "
            "default admin:admin.",
            {"page": "/login", "status": 200, "title": "XNAT", "auth": "basic",
             "realm": pages.XNAT_REALM, "api": {"path": "/data/projects", "status": 401},
             "version_path": "/xapi/siteConfig/buildInfo",
             "default_credentials": {"username": "admin", "password": "admin", "status": 200, "projects": 1}},
        ),
        _fixture(
            base, "conquest",
            "FIXTURE of the Conquest DICOM server's dgate CGI top page, no authentication.",
            {"page": "/cgi-bin/dgate", "status": 200, "title": "Conquest DICOM server - version 1.5.0c",
             "auth": "none"},
        ),
        _fixture(
            base, "dicomweb",
            "FIXTURE of a bare DICOMweb server: QIDO-RS at /dicom-web/studies with 5 studies, "
            "CORS open to any origin with credentials, no product page (404 at /).",
            {"page": "/dicom-web/studies", "status": 200, "auth": "none", "root_status": 404,
             "cors": {"allow_origin": "*", "allow_credentials": "true"}, **_exposed_studies()},
        ),
    ]  # fmt: skip


def _pacs_login() -> dict[str, Any]:
    """The PacsOne/MedDream login form: POST these fields to /pacs/authenticate.php."""
    return {
        "form": "/pacs/login.php",
        "action": "/pacs/authenticate.php",
        "fields": {
            "loginvalue": "login",
            "aetitle": pages.PACS_AETITLE,
            "formDatabase": pages.PACS_DATABASE,
            "formUsername": "",
            "formPassword": "",
            "formAntiSpam": pages.ANTISPAM_CODE,
        },
        "success": {"status": 302, "location": "login.php", "cookie": "PHPSESSID", "then": "home.php"},
        "failure": {"status": 302, "location_prefix": "login.php?message="},
    }


def build_web_services(base: int, data: dict[str, dict[str, int]], dicomweb: bool) -> list[dict[str, Any]]:
    return _orthanc_default(base, data, dicomweb) + _fixtures(base)
