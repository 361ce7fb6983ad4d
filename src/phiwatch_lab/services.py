"""The lab's services and the exposure each one is known to have (the manifest).

Every ``expected`` block below was measured against the real servers on Debian 12
(Orthanc 1.10.1, dcmtk 3.6.7, pynetdicom 3.0.4) and is asserted by tests/test_lab.py.
Reject reasons use phiwatch's names (models.RejectReason); codes are PS3.8 table 9-21.
"""

from __future__ import annotations

from typing import Any

from . import dcmqrscp, medtree, orthanc
from .canary import CANARY_PATIENT_ID, CANARY_STRINGS, CANARY_STUDY_UID
from .certs import CERT_COMMON_NAME
from .datasets import ANY_SCP_AE_TITLE

HOST = "127.0.0.1"

# (process name, port offsets it listens on)
PROCESSES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("orthanc-open", (0, 1)),
    ("orthanc-locked", (2, 3)),
    ("dcmqrscp", (4,)),
    ("pynetdicom-any", (5,)),
    ("pynetdicom-tls", (6,)),
    ("tarpit", (7,)),
    ("orthanc-default", (8, 9)),
    ("web-fixtures", tuple(range(10, 20))),
    ("vsftpd-anonymous", (20,)),
    ("vsftpd-closed", (21,)),
)
PORT_COUNT = 22
# Offsets that are reserved, not listened on: dcmqrscp's move destination, vsftpd's passive ports.
MOVE_PORT_OFFSET = 30
FTP_PASV_OFFSETS = {"vsftpd-anonymous": (40, 59), "vsftpd-closed": (60, 64)}
PORT_SPAN = 100  # base .. base + 99 are the lab's (plug-ins in lab/plugins.py use 22 .. 29, 31 .. 39, 65 ..)
IMPLEMENTATIONS_SPAN = 150  # with the further implementations (plugins.implementations: offsets 100 .. 141)

_REJECTED_CALLED_AE = {
    "association": "rejected",
    "reject_result": "rejected-permanent",
    "reject_source": "service-user",
    "reject_reason": "called-ae-not-recognized",
    "reject_reason_code": 7,
}


def _service(
    name: str,
    process: str,
    port: int,
    protocol: str,
    description: str,
    expected: dict[str, Any],
    *,
    tls: bool = False,
    called_ae: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "process": process,
        "port": port,
        "protocol": protocol,
        "tls": tls,
        "called_ae": called_ae,
        "description": description,
        "expected": expected,
    }


def build_services(
    base: int,
    data: dict[str, dict[str, int]],
    credentials: str,
    facts: dict[str, dict[str, Any]] | None = None,
) -> list[dict]:
    """The manifest's service list for a lab on base port ``base``.

    facts: answers measured at start-up (orthanc-open's /statistics and QIDO limit=1).
    """
    from .webservices import build_web_services  # it builds on _service below

    dicomweb = orthanc.dicomweb_available()
    open_studies = data.get("orthanc-open", {}).get("studies", 0)
    locked_studies = data.get("orthanc-locked", {}).get("studies", 0)
    open_facts = (facts or {}).get("orthanc-open", {})
    return [
        _service(
            "orthanc-open",
            "orthanc-open",
            base,
            "dicom",
            "Orthanc 1.10, any called AE, C-FIND allowed for any caller: studies exposed; its "
            "ModalityWorklists plugin serves dcmtk's example worklist and the canary's item to anyone.",
            {
                "association": "accepted",
                "worklist": "exposed" if orthanc.WORKLIST_PLUGIN.is_file() else "not-offered",
                "called_ae_checked": False,
                "echo": "success",
                "query": "exposed",
                "studies": open_studies,
                "canary": True,
                "store": "success",
            },
            called_ae=orthanc.OPEN_AET,
        ),
        _service(
            "orthanc-open-http",
            "orthanc-open",
            base + 1,
            "http",
            "Orthanc REST API and explorer without authentication (loopback counts as local); its WebDAV "
            "tree (/webdav/, on by default) serves the studies as folders named after the patients.",
            {
                "status": 200,
                "auth": "none",
                "webdav": "anonymous",  # Orthanc's WebDavEnabled defaults to true: a file share too
                "product": "orthanc",
                "version": "1.10.1",
                "dicomweb": dicomweb,
                "query": "exposed",
                "studies": open_studies,
                # GET /statistics: exact counts (CountStudies, CountInstances, ...), no PHI.
                "statistics": open_facts.get("statistics", {}),
                # GET /dicom-web/studies?limit=1: status, content type, studies returned.
                "dicomweb_studies_limit_1": open_facts.get("dicomweb_studies_limit_1", {}),
            },
        ),
        _service(
            "orthanc-locked",
            "orthanc-locked",
            base + 2,
            "dicom",
            "Orthanc 1.10 checking the called AE (LOCKEDPACS), Find and Store refused: "
            "data is present but not exposed.",
            {
                **_REJECTED_CALLED_AE,
                # After the A-ASSOCIATE-RJ Orthanc keeps the connection open (> 40 s)
                # until the requestor closes it.
                "after_reject": "connection-kept-open",
                "query": "refused",
                "with_called_ae": {
                    "called_ae": orthanc.LOCKED_AET,
                    "association": "accepted",
                    "echo": "success",
                    "query": "refused",
                    # Orthanc answers C-FIND and C-STORE from an unknown calling AE with
                    # an A-ABORT straight away: no DIMSE status at all.
                    "find": "aborted",
                    "store": "aborted",
                },
                "studies_present": locked_studies,
            },
            called_ae=orthanc.LOCKED_AET,
        ),
        _service(
            "orthanc-locked-http",
            "orthanc-locked",
            base + 3,
            "http",
            "Orthanc REST API behind HTTP Basic authentication with a random password.",
            {
                "status": 401,
                "auth": "basic",
                "realm": "Orthanc Secure Area",
                "product": "orthanc",
                "query": "refused",
                "credentials_file": credentials,
            },
        ),
        _service(
            "dcmqrscp",
            "dcmqrscp",
            base + 4,
            "dicom",
            "dcmtk 3.6.7 dcmqrscp: AE DCMQR reachable only from calling AE LABVIEWER on this "
            "host; everyone else is rejected with reason 7.",
            {
                **_REJECTED_CALLED_AE,
                # dcmqrscp closes the connection right after its A-ASSOCIATE-RJ; a
                # pynetdicom requestor then reports about half of these rejects as aborts.
                "after_reject": "connection-closed",
                "query": "refused",
                "with_called_ae": {
                    "called_ae": dcmqrscp.CALLED_AE,
                    **_REJECTED_CALLED_AE,
                },
                "with_allowed_calling_ae": {
                    "called_ae": dcmqrscp.CALLED_AE,
                    "calling_ae": dcmqrscp.ALLOWED_CALLING_AE,
                    "association": "accepted",
                    "echo": "success",
                    "query": "exposed",
                    "studies": data.get("dcmqrscp", {}).get("studies", 0),
                    "canary": True,
                },
            },
            called_ae=dcmqrscp.CALLED_AE,
        ),
        _service(
            "pynetdicom-any",
            "pynetdicom-any",
            base + 5,
            "dicom",
            "pynetdicom SCP accepting any AE titles and contexts; C-FIND returns 5 synthetic "
            "studies including the canary; C-STORE answers 0xA700, C-GET/C-MOVE fail.",
            _ANY_EXPECTED,
            called_ae=ANY_SCP_AE_TITLE,
        ),
        _service(
            "pynetdicom-tls",
            "pynetdicom-tls",
            base + 6,
            "dicom",
            f"The same pynetdicom SCP behind TLS with a self-signed certificate (CN {CERT_COMMON_NAME}, 30 days).",
            {
                **_ANY_EXPECTED,
                # A plain A-ASSOCIATE-RQ fails the TLS handshake: connection reset.
                "plain": "reset",
                "certificate_cn": CERT_COMMON_NAME,
                "self_signed": True,
            },
            tls=True,
            called_ae=ANY_SCP_AE_TITLE,
        ),
        _service(
            "tarpit",
            "tarpit",
            base + 7,
            "dicom",
            "Accepts TCP connections and never sends a byte (closes after 120 s).",
            {"status": "timeout", "bytes_sent": 0},
        ),
        *build_web_services(base, data, dicomweb),
        *_ftp_services(base, (facts or {}).get("vsftpd-anonymous", {})),
    ]


def _ftp_services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    files = tree.get("files", {})
    return [
        _service(
            "vsftpd-anonymous",
            "vsftpd-anonymous",
            base + 20,
            "ftp",
            "vsftpd 3.0.3, anonymous read-only (LIST only, no MLSD, no TLS): DICOM images with the "
            "canary (in a folder named after the canary patient), a DICOMDIR, HL7 ADT and X12 837 "
            f"files with canary values, a folder loop (HL7/back -> ..) and {medtree.SERIES_SIZE} small "
            "images IM00001.. in IMAGES/SE000001.",
            {
                "access": "anonymous",
                "login": "anonymous",
                "listing": "list",
                "mlsd": False,
                "tls_offered": False,
                "files_present": files,
                "loops": 1,
                # Measured with phiwatch's default walk bounds (25 files sniffed per folder):
                # the rest of the series is counted by name.
                "probe_counts": medtree.probe_counts(tree),
                "canary": True,
            },
        ),
        _service(
            "vsftpd-closed",
            "vsftpd-closed",
            base + 21,
            "ftp",
            "vsftpd 3.0.3 without anonymous login (negative control): USER anonymous and USER ftp "
            "are answered 530 at once; no TLS.",
            {"access": "denied", "anonymous_reply": 530, "tls_offered": False},
        ),
    ]


_ANY_EXPECTED: dict[str, Any] = {
    "association": "accepted",
    "called_ae_checked": False,
    "echo": "success",
    "query": "exposed",
    "studies": 5,
    "canary": True,
    "store": "0xA700",
    "get": "0xA702",
    "move": "0xA801",
    "cancel": "honoured",
}


def build_canary(planted_in: list[str]) -> dict[str, Any]:
    return {
        "strings": list(CANARY_STRINGS),
        "patient_id": CANARY_PATIENT_ID,
        "study_uid": CANARY_STUDY_UID,
        "planted_in": planted_in,
    }
