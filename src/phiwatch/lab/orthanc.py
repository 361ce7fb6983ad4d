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
OPEN_AET = "ORTHANC"
LOCKED_AET = "LOCKEDPACS"
LOCKED_USER = "phiwatch-lab"


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
) -> dict[str, object]:
    """An Orthanc configuration: wide open (locked=False) or locked down (locked=True)."""
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
    else:
        config |= {
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowStore": True,
        }
    if dicomweb_available():
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True}
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


def study_count(http_port: int, auth: tuple[str, str] | None = None) -> int:
    response = httpx.get(f"http://127.0.0.1:{http_port}/statistics", auth=auth, timeout=5)
    response.raise_for_status()
    return int(response.json().get("CountStudies", 0))
