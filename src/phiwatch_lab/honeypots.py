"""Lab plug-ins: honeypot-like DICOM servers (lab/honeypot.py), so tests prove the trust signals.

- honeypot (offsets 90-92, on the lab's host, part of `lab up`): a dicompot-like server
  (canned whole datasets with Pixel Data, no implementation class UID, every context
  accepted), a DICOMHawk-like persona (pynetdicom's class UID named ORTHANC, answers only
  '*', one response per instance dated today) and the canned server without Pixel Data.
- honeypot-hosts (offsets 93-94, started alone by the trust tests): the same kinds on two
  addresses of their own, derived from the base port, with a "Horos Web Portal" page on the
  persona's host: the same canned studies on two hosts, and a DICOM persona its web port
  contradicts. Two hosts of their own cannot join `lab up`, whose Orthanc and dcmqrscp
  listen on every loopback address.

Each manifest entry says which trust reasons phiwatch must find (`expected.trust_reasons`,
a subset) and that the service is a honeypot; the values served are synthetic.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

from .plugins import LabServer, Prepared
from .services import HOST

CANNED, PERSONA, BARE = 90, 91, 92
HOSTS_DICOM, HOSTS_WEB = 93, 94
PERSONA_VERSION = "ORTHANC"
CANNED_REASONS = [
    "no-implementation-class-uid", "accepts-nonsense-abstract-syntax", "known-honeypot-fingerprint",
    "unrequested-elements-in-answers", "pixel-data-in-answers", "oversized-answers", "duplicate-study-uids",
    "all-studies-in-one-year",
]
BARE_REASONS = [
    "no-implementation-class-uid", "accepts-nonsense-abstract-syntax", "known-honeypot-fingerprint",
    "unrequested-elements-in-answers", "duplicate-study-uids", "all-studies-in-one-year", "ignores-query-keys",
]
PERSONA_REASONS = [
    "version-name-contradicts-class-uid", "known-honeypot-fingerprint", "duplicate-study-uids",
    "all-studies-dated-today", "answers-only-a-universal-match",
]
EXPECTED_QUERY = {"association": "accepted", "query": "exposed", "studies": 3, "responses": 5}


def host_addresses(base: int) -> tuple[str, str]:
    """The two loopback addresses of honeypot-hosts: 127.<base high>.<base low>.90 and .91."""
    return f"127.{(base >> 8) & 0xFF}.{base & 0xFF}.90", f"127.{(base >> 8) & 0xFF}.{base & 0xFF}.91"


def _argv(*endpoints: str) -> list[str]:
    return [sys.executable, "-m", "phiwatch_lab.honeypot", *endpoints]


def prepare(folder: Path, base: int) -> Prepared:
    return Prepared(argv=_argv("--dicom", f"{HOST}:{base + CANNED}:canned",
                               "--dicom", f"{HOST}:{base + PERSONA}:persona",
                               "--dicom", f"{HOST}:{base + BARE}:canned-bare"), python=True)


def prepare_hosts(folder: Path, base: int) -> Prepared:
    first, second = host_addresses(base)
    return Prepared(argv=_argv("--dicom", f"{first}:{base + HOSTS_DICOM}:persona",
                               "--web", f"{first}:{base + HOSTS_WEB}",
                               "--dicom", f"{second}:{base + HOSTS_DICOM}:canned",
                               "--dicom", f"{second}:{base + HOSTS_WEB}:canned-bare"), python=True)


def _entry(name: str, host: str, port: int, protocol: str, description: str,
           expected: dict[str, Any]) -> dict[str, Any]:
    entry = {"name": name, "process": name.split("/")[0], "host": host, "port": port, "protocol": protocol,
             "tls": False, "called_ae": None, "description": description, "expected": expected}
    if host == HOST:
        del entry["host"]  # on the lab's own host, like every other service there
    return entry


def _honeypot(kind: str, reasons: list[str], **extra: Any) -> dict[str, Any]:
    return {**EXPECTED_QUERY, "honeypot": True, "kind": kind, "trust_reasons": reasons, **extra}


def services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _entry("honeypot/canned", HOST, base + CANNED, "dicom",
               "Honeypot-like (dicompot's behaviour): no implementation class UID, every context accepted, "
               "C-FIND answered with canned whole datasets and Pixel Data (~525 KB each), UIDs repeated.",
               _honeypot("canned", CANNED_REASONS)),
        _entry("honeypot/persona", HOST, base + PERSONA, "dicom",
               "Honeypot-like (DICOMHawk's early defaults): pynetdicom's class UID named ORTHANC; answers only "
               "a '*' match, one response per instance (with the instance's own identifiers), all dated today.",
               _honeypot("persona", PERSONA_REASONS)),
        _entry("honeypot/canned-bare", HOST, base + BARE, "dicom",
               "Honeypot-like: the canned server without Pixel Data; it ignores the query's keys.",
               _honeypot("canned-bare", BARE_REASONS)),
    ]


def hosts_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    first, second = host_addresses(base)
    shared = ["study-uids-shared-across-hosts"]
    return [
        _entry("honeypot-hosts/persona", first, base + HOSTS_DICOM, "dicom",
               "The DICOMHawk-like persona (claims Orthanc) on a host whose web port serves a Horos page.",
               _honeypot("persona", [*PERSONA_REASONS, "persona-contradicted-by-web-ports", *shared])),
        _entry("honeypot-hosts/web", first, base + HOSTS_WEB, "http",
               "A one-page 'Horos Web Portal' login on the persona's host.",
               {"status": 200, "product": "horos-web-portal", "honeypot": False}),
        _entry("honeypot-hosts/canned", second, base + HOSTS_DICOM, "dicom",
               "The dicompot-like server on a second host, with the same canned studies.",
               _honeypot("canned", [*CANNED_REASONS, *shared])),
        _entry("honeypot-hosts/canned-bare", second, base + HOSTS_WEB, "dicom",
               "Its twin without Pixel Data on the same host: the same fingerprint, one fleet.",
               _honeypot("canned-bare", [*BARE_REASONS, *shared])),
    ]


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def hosts_ready(base: int) -> bool:
    first, second = host_addresses(base)
    return all(_accepting(h, base + o) for h, o in ((first, HOSTS_DICOM), (first, HOSTS_WEB),
                                                    (second, HOSTS_DICOM), (second, HOSTS_WEB)))


SERVER = LabServer(
    name="honeypot",
    offsets=(CANNED, PERSONA, BARE),
    check_installed=lambda: None,
    prepare=prepare,
    services=services,
)
HOSTS_SERVER = LabServer(
    name="honeypot-hosts",
    offsets=(HOSTS_DICOM, HOSTS_WEB),
    check_installed=lambda: None,
    prepare=prepare_hosts,
    services=hosts_services,
    ready=hosts_ready,
)
