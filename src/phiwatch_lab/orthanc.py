"""Orthanc for the lab: configuration rendering, readiness, loading instances over REST.

Orthanc 1.10 has no bind-address option: its DICOM and HTTP ports listen on 0.0.0.0.
That is acceptable for the lab because remote access is off (every 127.x client counts
as local) and the locked instance requires authentication; run the lab inside a
network namespace for strict isolation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx

from .certs import write_private
from .errors import LabError

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
# Orthanc's own Modality Worklist plugin (Debian package orthanc): serves the *.wl files of a folder.
WORKLIST_PLUGIN = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")
OPEN_AET = "ORTHANC"
LOCKED_AET = "LOCKEDPACS"
LOCKED_USER = "phiwatch-lab"
# The credentials of Orthanc's sample configuration, left in place by many installs.
DEFAULT_AET = "ORTHANC"
DEFAULT_CREDENTIALS = ("orthanc", "orthanc")
# Measured with Orthanc 1.10.1: with RemoteAccessAllowed false only a client whose source
# address is 127.0.0.1 counts as local (from 127.0.0.2 even orthanc:orthanc gets 401), and
# from 127.0.0.1 every answer is the same as with true. The lab keeps it false so that a
# default-credential REST API is never offered on the host's other interfaces (Orthanc
# listens on 0.0.0.0); set it to True only inside an isolated network namespace.
DEFAULT_CREDENTIALS_REMOTE_ACCESS = False


# Debian installs Orthanc in /usr/sbin, which is not on every user's PATH.
ORTHANC_CANDIDATES: tuple[str, ...] = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")


def orthanc_binary() -> str:
    for candidate in (shutil.which("Orthanc"), *ORTHANC_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise LabError("Orthanc is not installed: install the Debian package 'orthanc' (make deps)")


def dicomweb_available() -> bool:
    return DICOMWEB_PLUGIN.is_file()


def render_config(
    *,
    name: str,
    aet: str,
    dicom_port: int,
    http_port: int,
    storage: Path,
    locked: bool,
    password: str | None = None,
    default_credentials: bool = False,
    worklists: Path | None = None,
) -> dict[str, object]:
    """An Orthanc configuration: wide open (locked=False) or locked down (locked=True).

    default_credentials=True: the sample configuration's user orthanc:orthanc, HTTP Basic
    required, C-FIND refused to unknown callers, other DICOM settings at Orthanc's defaults.
    worklists: a folder of *.wl files served by the ModalityWorklists plugin to any caller
    (DicomAlwaysAllowFindWorklist), when the plugin is installed.
    """
    config: dict[str, object] = {
        "Name": name,
        "DicomAet": aet,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "RemoteAccessAllowed": False,
        "SslEnabled": False,
        "ExecuteLuaEnabled": False,
        "RestApiWriteToFileSystemEnabled": False,
        "DeidentifyLogs": True,
        "SaveJobs": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 16,
        "DicomModalities": {},
        "OrthancPeers": {},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomAlwaysAllowFindWorklist": False,
    }
    if locked:
        if not password:
            raise ValueError("a locked Orthanc needs a password")
        config |= {
            "AuthenticationEnabled": True,
            "RegisteredUsers": {LOCKED_USER: password},
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowStore": False,
        }
    elif default_credentials:
        config |= {
            "RemoteAccessAllowed": DEFAULT_CREDENTIALS_REMOTE_ACCESS,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {DEFAULT_CREDENTIALS[0]: DEFAULT_CREDENTIALS[1]},
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowStore": True,
        }
    else:
        config |= {
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowStore": True,
        }
    plugins: list[str] = []
    if dicomweb_available():
        plugins.append(str(DICOMWEB_PLUGIN))
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True}
    if worklists is not None and WORKLIST_PLUGIN.is_file():
        plugins.append(str(WORKLIST_PLUGIN))
        config["Worklists"] = {"Enable": True, "Database": str(worklists)}
        config["DicomAlwaysAllowFindWorklist"] = True
    if plugins:
        config["Plugins"] = plugins
    return config


def write_config(path: Path, config: dict[str, object]) -> None:
    """Write the configuration 0600: the locked one holds a password."""
    write_private(path, json.dumps(config, indent=2).encode())


def command(config_path: Path) -> list[str]:
    return [orthanc_binary(), str(config_path)]


def http_ready(http_port: int) -> bool:
    """True once the REST API answers (200 when open, 401 when locked)."""
    try:
        response = httpx.get(f"http://127.0.0.1:{http_port}/system", timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 401)


def load_instances(
    http_port: int,
    payloads: Iterable[bytes],
    auth: tuple[str, str] | None = None,
) -> int:
    """POST each DICOM file to /instances; the number Orthanc stored (or already had)."""
    stored = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", auth=auth, timeout=20) as client:
        for payload in payloads:
            try:
                response = client.post("/instances", content=payload)
            except httpx.HTTPError as exc:
                raise LabError(f"cannot load data into Orthanc on port {http_port}: {exc}") from None
            if response.status_code == 401:
                raise LabError(f"Orthanc on port {http_port} refused the lab's credentials")
            if response.status_code == 200:
                stored += 1
    return stored


def statistics(http_port: int, auth: tuple[str, str] | None = None) -> dict[str, int]:
    """/statistics counts (CountPatients, CountStudies, CountSeries, CountInstances): numbers only."""
    response = httpx.get(f"http://127.0.0.1:{http_port}/statistics", auth=auth, timeout=5)
    response.raise_for_status()
    data = response.json()
    keys = ("CountPatients", "CountStudies", "CountSeries", "CountInstances")
    return {key: int(data.get(key, 0)) for key in keys}


def study_count(http_port: int, auth: tuple[str, str] | None = None) -> int:
    return statistics(http_port, auth)["CountStudies"]


def qido_facts(http_port: int, auth: tuple[str, str] | None = None) -> dict[str, object]:
    """What GET /dicom-web/studies?limit=1 answers: status, content type, number of studies."""
    response = httpx.get(f"http://127.0.0.1:{http_port}/dicom-web/studies?limit=1", auth=auth, timeout=5)
    studies = response.json() if response.status_code == 200 else []
    return {
        "status": response.status_code,
        "content_type": response.headers.get("content-type"),
        "studies": len(studies) if isinstance(studies, list) else 0,
    }
