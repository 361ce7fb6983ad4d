"""Static fixtures for web PACS products that cannot be installed here (served by webfixtures).

Every page is small and hand-made: it keeps only the identifying bits of the real product,
read from its public sources, and is labelled a fixture (header ``X-Phiwatch-Fixture``).

Sources (public repositories, read through the project's search tools):
- dcm4chee-arc-light: ui2/src/index.html (title ``dcm4chee-arc-ui``); QueryAETs.java
  (``/aets``: dicomAETitle, dicomDescription, dcmAcceptedUserRole); JsonConfiguration
  DeviceInfo (``/devices``: dicomSoftwareVersion list); UI ControlService
  (``/ctrl/status`` -> {"status": "STARTED"}); QIDO-RS at /aets/{AET}/rs/studies.
- OHIF Viewers: platform/app/public/html-templates/index.html (``<title>OHIF Viewer</title>``,
  app-config.js loaded first).
- Dicoogle: webapp/index-template.html (``<title>Dicoogle</title>``); dicoogle-client
  endpoints (``ext/version``).
- Kheops UI: public/index.html (``<title>Kheops</title>``); its API wants a bearer token.
- PacsOne Server 7.2.3 (RainbowFish): php/login.php, authenticate.php, footer.php,
  sharedData.php. MedDream PACS is an OEM of PacsOne (same /pacs/login.php and form);
  Greenbone's detection keys on "Not authorized to access this URL" and "loginSplash".
- Horos: WebPortalConnection (default title ``Horos Web Portal``); Greenbone's detection
  (port 3333, 'Service provided by <a href="http://www.horosproject.org"').
- XNAT: footer template (``XNAT v1.x``), /xapi/siteConfig/buildInfo, /data/projects
  ResultSet JSON; HTTP Basic on the REST API.
- Conquest: dgate.cpp top page (``Conquest DICOM server - version %s``, BGCOLOR CFDFCF).
Lab choices, not read from a source: versions other than PacsOne's and the archive's
(Dicoogle 3.0.2, XNAT 1.8.10, Conquest 1.5.0c, Horos 4.0.1), Server headers, the XNAT realm,
the Horos and XNAT form field names, and which paths answer at ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .datasets import Study, synthetic_studies

FIXTURE_HEADER = "X-Phiwatch-Fixture"


@dataclass(frozen=True)
class Fixture:
    offset: int  # port offset from the lab's base port
    key: str  # value of the X-Phiwatch-Fixture header
    product: str
    version: str | None
    server: str | None  # Server header, None: the fixture sends none


FIXTURES: tuple[Fixture, ...] = (
    Fixture(10, "dcm4chee-arc", "dcm4chee-arc", "5.31.2", None),
    Fixture(11, "ohif", "ohif-viewer", None, "nginx"),
    Fixture(12, "dicoogle", "dicoogle", "3.0.2", None),
    Fixture(13, "kheops", "kheops", None, "nginx"),
    Fixture(14, "meddream", "meddream-pacs", None, "Apache"),
    Fixture(15, "pacsone", "pacsone-server", "7.2.3", "Apache"),
    Fixture(16, "horos", "horos-web-portal", "4.0.1", None),
    Fixture(17, "xnat", "xnat", "1.8.10", None),
    Fixture(18, "conquest", "conquest", "1.5.0c", None),
    Fixture(19, "dicomweb", "dicomweb", None, None),
)
BY_KEY = {f.key: f for f in FIXTURES}

DCM4CHEE_AET = "DCM4CHEE"
XNAT_DEFAULT_CREDENTIALS = ("admin", "admin")
XNAT_REALM = "XNAT"
# PacsOne/MedDream print this in a hidden field when the anti-spam image is bypassed
# (file no.antispam.code); authenticate.php compares it with the session's code.
ANTISPAM_CODE = "1234"
PACS_AETITLE = "PACS"
PACS_DATABASE = "dicom"
PACS_FAILED_LOGIN = (
    "Could not connect to database 'dicom'@'localhost' as User: '%s'\nPlease check your username and password.\n"
)

# --- DICOM JSON (PS3.18 F.2) ------------------------------------------------------

_STUDY_TAGS: tuple[tuple[str, str, str], ...] = (
    ("00080020", "DA", "StudyDate"),
    ("00080030", "TM", "StudyTime"),
    ("00080050", "SH", "AccessionNumber"),
    ("00080061", "CS", "ModalitiesInStudy"),
    ("00080090", "PN", "ReferringPhysicianName"),
    ("00081030", "LO", "StudyDescription"),
    ("00100010", "PN", "PatientName"),
    ("00100020", "LO", "PatientID"),
    ("00100030", "DA", "PatientBirthDate"),
    ("00100040", "CS", "PatientSex"),
    ("0020000D", "UI", "StudyInstanceUID"),
    ("00200010", "SH", "StudyID"),
    ("00201208", "IS", "NumberOfStudyRelatedInstances"),
)
# Query keys a fixture matches on (exact match; ModalitiesInStudy: contains).
QUERY_KEYS: dict[str, str] = {tag: keyword for tag, _, keyword in _STUDY_TAGS} | {
    keyword: keyword for _, _, keyword in _STUDY_TAGS
}


def _value(vr: str, value: str | int | list[str]) -> list[Any]:
    if vr == "PN":
        return [{"Alphabetic": value}]
    if vr == "IS":
        return [int(value)] if not isinstance(value, list) else [int(v) for v in value]
    return list(value) if isinstance(value, list) else [value]


def study_json(study: Study, retrieve_aet: str | None = None, retrieve_url: str | None = None) -> dict:
    """One study in the DICOM JSON model, attributes sorted by tag."""
    item: dict[str, dict[str, Any]] = {"00080005": {"vr": "CS", "Value": ["ISO_IR 100"]}}
    for tag, vr, keyword in _STUDY_TAGS:
        if keyword in study:
            item[tag] = {"vr": vr, "Value": _value(vr, study[keyword])}
    if retrieve_aet:
        item["00080054"] = {"vr": "AE", "Value": [retrieve_aet]}
    if retrieve_url:
        item["00081190"] = {"vr": "UR", "Value": [f"{retrieve_url}/{study['StudyInstanceUID']}"]}
    return dict(sorted(item.items()))


STUDIES: list[Study] = synthetic_studies()  # five synthetic studies, the last one the canary

# --- dcm4chee-arc ------------------------------------------------------------------

DCM4CHEE_UI = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>dcm4chee-arc-ui</title>
  <base href="/dcm4chee-arc/ui2/">
  <!-- phiwatch lab fixture: not the real dcm4chee-arc-light UI -->
</head>
<body class="mat-typography"><app-root><div class="uil-ring-css"></div></app-root></body>
</html>
"""
DCM4CHEE_AETS: list[dict[str, Any]] = [
    {
        "dicomAETitle": DCM4CHEE_AET,
        "dicomDescription": "Hide instances rejected for Quality Reasons",
        "dcmAcceptedUserRole": ["user", "admin"],
    }
]
DCM4CHEE_DEVICES: list[dict[str, Any]] = [
    {
        "dicomDeviceName": "dcm4chee-arc",
        "dicomDescription": "DCM4CHEE Archive 5",
        "dicomManufacturer": "dcm4che.org",
        "dicomManufacturerModelName": "dcm4chee-arc",
        "dicomSoftwareVersion": [BY_KEY["dcm4chee-arc"].version],
        "dicomPrimaryDeviceType": ["ARCHIVE"],
        "dicomInstalled": True,
        "hasArcDevExt": True,
    }
]
DCM4CHEE_STATUS = {"status": "STARTED"}
DCM4CHEE_DEVICENAME = {"dicomDeviceName": "dcm4chee-arc", "UIConfigurationDeviceName": "dcm4chee-arc"}

# --- OHIF, Dicoogle, Kheops ------------------------------------------------------------

OHIF_INDEX = """<!doctype html>
<html lang="en">
<head>
  <meta charset="UTF-8" />
  <meta name="application-name" content="OHIF Viewer" />
  <meta name="apple-mobile-web-app-title" content="@ohif/app" />
  <script type="text/javascript">window.PUBLIC_URL = '/';</script>
  <script rel="preload" as="script" type="text/javascript" src="/app-config.js"></script>
  <title>OHIF Viewer</title>
  <!-- phiwatch lab fixture: not the real OHIF Viewer -->
</head>
<body>
  <noscript> You need to enable JavaScript to run this app. </noscript>
  <div id="react-portal"></div>
  <div id="root"></div>
</body>
</html>
"""


def ohif_app_config(dicomweb_root: str) -> str:
    """OHIF's app-config.js: the DICOMweb archive the viewer reads, in the clear."""
    return (
        "window.config = {\n"
        "  routerBasename: '/',\n"
        "  showStudyList: true,\n"
        "  defaultDataSourceName: 'dicomweb',\n"
        "  dataSources: [{\n"
        "    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',\n"
        "    sourceName: 'dicomweb',\n"
        f"    configuration: {{ friendlyName: 'phiwatch lab fixture', qidoRoot: '{dicomweb_root}',"
        f" wadoRoot: '{dicomweb_root}', qidoSupportsIncludeField: false }},\n"
        "  }],\n"
        "};\n"
    )


DICOOGLE_INDEX = """<!DOCTYPE html>
<html class="" lang="en">
<head>
  <meta charset="utf-8">
  <meta name="description" content="Dicoogle Web Application">
  <meta name="author" content="Universidade de Aveiro, DETI/IEETA, Bioinformatics Group (http://bioinformatics.ua.pt/)">
  <title>Dicoogle</title>
  <!-- phiwatch lab fixture: not the real Dicoogle -->
</head>
<body><div id="react-container"></div></body>
</html>
"""
DICOOGLE_VERSION = {"version": BY_KEY["dicoogle"].version}

KHEOPS_INDEX = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Kheops</title>
  <!-- phiwatch lab fixture: not the real KHEOPS UI -->
</head>
<body><div id="app"></div></body>
</html>
"""
KHEOPS_UNAUTHORIZED = {"error": "invalid_token", "error_description": "A bearer token is required"}

# --- PacsOne and MedDream (PacsOne OEM) ----------------------------------------------


def pacs_login_page(product: str, splash: bool, version: str | None, url: str, message: str | None) -> str:
    """/pacs/login.php: PacsOne's form (fields formUsername, formPassword, ...)."""
    notice = message if message is not None else f"Not authorized to access this URL: {url}"
    head = f'<div id="loginSplash"><h2>{product}</h2></div>' if splash else f"<h2>{product} Login</h2>"
    footer = f"<SMALL>{product} {version}</SMALL>" if version else f"<SMALL>{product}</SMALL>"
    return f"""<html>
<head><title>Login</title></head>
<body>
<!-- phiwatch lab fixture: not the real {product} -->
{head}
<form AUTOCOMPLETE="off" method=POST action='authenticate.php'>
<input type='hidden' name='loginvalue'>
<h3><font color=red>{notice}</font></h3>
<table>
<input type='hidden' name='aetitle' value='{PACS_AETITLE}'></input>
<tr><td>Current Database:</td>
<td><input type=text name='formDatabase' id='dbName' value='{PACS_DATABASE}' size=16 maxlength=64 readonly></td>
<tr><td>Enter Username:</td><td><input type=text size=16 maxlength=32 name='formUsername'></td></tr>
<tr><td>Enter Password:</td><td><input type=password size=16 maxlength=32 name='formPassword'></td></tr>
<input type='hidden' name='formAntiSpam' value={ANTISPAM_CODE}>
<tr><td><input type=submit name='login' value='Login'></td></tr>
</table>
</form>
<div class='hr'></div>
<TABLE class='table footer_table'><TR><TD ALIGN=LEFT>{footer}</TD>
<TD ALIGN=RIGHT><SMALL>Copyright 2003-2021 (c) RainbowFish Software</SMALL></TD></TR></TABLE>
</body>
</html>
"""


def pacs_home_page(product: str) -> str:
    return f"<html><head><title>{product}</title></head><body><h2>{product}</h2><p>Logged in.</p></body></html>\n"


# --- Horos, XNAT, Conquest --------------------------------------------------------------

HOROS_INDEX = f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Horos Web Portal</title></head>
<body>
<!-- phiwatch lab fixture: not the real Horos Web Portal -->
<form method="post" action="/login">
  <input type="text" name="username"> <input type="password" name="password">
  <input type="submit" value="Login">
</form>
<p>Service provided by <a href="http://www.horosproject.org">Horos</a> {BY_KEY["horos"].version}</p>
</body>
</html>
"""

XNAT_LOGIN = f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>XNAT</title></head>
<body id="login">
<!-- phiwatch lab fixture: not the real XNAT -->
<form name="form1" id="login_form" method="post" action="/login">
  <input type="text" name="username" id="username"> <input type="password" name="password" id="password">
  <button type="submit" id="loginButton">Login</button>
</form>
<div id="sticky-footer">
  <a class="xnat-version" href="http://www.xnat.org/">XNAT v{BY_KEY["xnat"].version}</a>
</div>
</body>
</html>
"""
XNAT_BUILD_INFO = {
    "Application-Name": "XNAT",
    "version": BY_KEY["xnat"].version,
    "buildNumber": "fixture",
    "commit": "fixture",
}
XNAT_PROJECTS = {
    "ResultSet": {
        "Result": [
            {
                "ID": "PWLAB",
                "secondary_ID": "PWLAB",
                "name": "phiwatch lab fixture project",
                "description": "synthetic",
                "pi_firstname": "",
                "pi_lastname": "",
                "URI": "/data/projects/PWLAB",
            }
        ],
        "totalRecords": "1",
    }
}

_CONQUEST_VERSION = BY_KEY["conquest"].version
CONQUEST_TOP = f"""<HEAD><TITLE>Conquest DICOM server - version {_CONQUEST_VERSION}</TITLE></HEAD>
<BODY BGCOLOR='CFDFCF'>
<!-- phiwatch lab fixture: not the real Conquest dgate -->
<H1>Welcome to the Conquest DICOM server - version {_CONQUEST_VERSION}</H1>
<HR>
<FORM ACTION="dgate"><INPUT NAME=mode TYPE=HIDDEN VALUE=querypatients>
Patient ID: <INPUT NAME=key TYPE=Text VALUE=''> <INPUT TYPE=SUBMIT VALUE='Query'></FORM>
</BODY>
"""

NOT_FOUND = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"
