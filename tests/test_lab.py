"""The built-in lab: every documented exposure, checked with plain pynetdicom clients.

These tests use pynetdicom, httpx and sockets directly, never the phiwatch scanner, so
they pin down what the lab *is*; the scanner's tests then check what phiwatch *finds*.
"""

from __future__ import annotations

import asyncio
import base64
import ftplib
import io
import ipaddress
import json
import socket
import ssl
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

import phiwatch_lab as lab_control
from phiwatch_lab import dcmqrscp as dcmqrscp_module
from phiwatch_lab import orthanc as orthanc_module
from phiwatch_lab.canary import (
    CANARY_PATIENT_ID,
    CANARY_PATIENT_NAME,
    CANARY_STRINGS,
    CANARY_STUDY_UID,
    build_canary_dataset,
)
from phiwatch_lab.tarpit import Tarpit
from phiwatch_lab.webfixture_pages import FIXTURE_HEADER, FIXTURES

from .conftest import LAB_BASE_PORT

pytestmark = pytest.mark.lab

HOST = "127.0.0.1"
StudyFind = StudyRootQueryRetrieveInformationModelFind
FIXTURE_KEYS = [fixture.key for fixture in FIXTURES]


def service(manifest: dict, name: str) -> dict:
    return next(s for s in manifest["services"] if s["name"] == name)


def associate(
    port: int,
    called: str,
    calling: str = "PHIWATCH",
    contexts: tuple[str, ...] = (Verification, StudyFind),
    tls: ssl.SSLContext | None = None,
) -> Association:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate(HOST, port, ae_title=called, tls_args=(tls, None) if tls else None)


def association_request(called: str, calling: str = "PHIWATCH") -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing Verification, encoded by pynetdicom."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16382
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    primitive.user_information = [max_length, implementation]
    context = build_context(Verification)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def reject_of(port: int, called: str, calling: str = "PHIWATCH") -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ a server answers with.

    Read straight off the socket: pynetdicom's requestor reports about half of
    dcmqrscp's rejects as aborts, because dcmqrscp closes the connection right
    after sending A-ASSOCIATE-RJ (Orthanc keeps it open until we close it).
    """
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(association_request(called, calling))
        header = _read_exactly(sock, 6)
        assert header[0] == 0x03, f"expected A-ASSOCIATE-RJ (type 3), got PDU type {header[0]}"
        body = _read_exactly(sock, int.from_bytes(header[2:6], "big"))
    reject = A_ASSOCIATE_RJ()
    reject.decode(header + body)
    return reject.result, reject.source, reject.reason_diagnostic


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed before a whole PDU arrived"
        data += chunk
    return data


def study_query() -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "StudyDate", "PatientName", "PatientID"):
        setattr(query, keyword, "")
    return query


def find(assoc: Association, model: str = StudyFind, query: Dataset | None = None):
    """All C-FIND answers: (list of status values, list of identifiers)."""
    statuses, identifiers = [], []
    for status, identifier in assoc.send_c_find(query or study_query(), model):
        statuses.append(status.Status if "Status" in status else None)
        if identifier is not None:
            identifiers.append(identifier)
    return statuses, identifiers


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- the manifest ------------------------------------------------------------------


# Plug-in servers (lab/plugins.py) after the built-in ones: (name, port, protocol, host); host None is
# the lab's loopback host, NFS_HOST is the address inside the NFS server's own network namespace.
BASE = LAB_BASE_PORT  # 31100 unless PHIWATCH_TEST_BASE moves it
NFS_HOST = str(ipaddress.ip_address("100.64.0.0") + 4 * BASE + 2)  # the namespace end of the base's /30
PLUGIN_SERVICES = [
    ("pyftpdlib-mlsd", BASE + 27, "ftp", None),
    ("nginx-autoindex", BASE + 26, "http", None),
    ("rsyncd", BASE + 24, "rsync", None),
    ("moto-s3", BASE + 25, "s3", None),
    ("nfs-ganesha", 2049, "nfs", NFS_HOST),
    ("nfs-ganesha-rpcbind", 111, "nfs", NFS_HOST),
    ("samba-guest", BASE + 22, "smb", None),
    ("samba-auth", BASE + 23, "smb", None),
    ("wlmscpfs", BASE + 80, "dicom", None),
    ("pynetdicom-series", BASE + 81, "dicom", None),
    ("pynetdicom-universal", BASE + 82, "dicom", None),
    ("honeypot/canned", BASE + 90, "dicom", None),
    ("honeypot/persona", BASE + 91, "dicom", None),
    ("honeypot/canned-bare", BASE + 92, "dicom", None),
    ("hl7-push", BASE + 70, "hl7", None),
    ("astm-push", BASE + 71, "astm", None),
]


def test_manifest_lists_the_built_in_services_then_the_plug_ins(lab, lab_state_dir):
    # Given the lab is up on its base port (31100 by default)
    # When its manifest is read back
    on_disk = lab_control.manifest(lab_state_dir)
    # Then it is the one up() returned, with the twenty-two built-in services on base .. base+21
    assert on_disk == lab
    assert lab["host"] == HOST and lab["base_port"] == BASE
    names = [s["name"] for s in lab["services"]]
    assert names[:22] == [
        "orthanc-open",
        "orthanc-open-http",
        "orthanc-locked",
        "orthanc-locked-http",
        "dcmqrscp",
        "pynetdicom-any",
        "pynetdicom-tls",
        "tarpit",
        "orthanc-default",
        "orthanc-default-http",
        *(f"fixture-{key}" for key in FIXTURE_KEYS),
        "vsftpd-anonymous",
        "vsftpd-closed",
    ]
    assert [s["port"] for s in lab["services"][:22]] == list(range(BASE, BASE + 22))
    protocols = [s["protocol"] for s in lab["services"][:22]]
    assert protocols == ["dicom", "http"] * 2 + ["dicom"] * 5 + ["http"] * 11 + ["ftp"] * 2
    # And after them the plug-ins' services, on base+22 .. base+27 and, for NFS, inside its namespace
    plugins = [(s["name"], s["port"], s["protocol"], s.get("host")) for s in lab["services"][22:]]
    assert plugins == PLUGIN_SERVICES
    assert all("host" not in s for s in lab["services"][:22])
    local_ports = sorted(s["port"] for s in lab["services"] if "host" not in s)
    assert local_ports == [*range(BASE, BASE + 28), *(BASE + o for o in (70, 71, 80, 81, 82, 90, 91, 92))]
    for entry in lab["services"]:
        assert isinstance(entry["tls"], bool) and entry["description"] and entry["expected"]
        assert entry["process"]
        assert entry["expected"].get("access", "-") in ("-", "anonymous", "denied", "not-attempted")
    assert [s["name"] for s in lab["services"] if s["tls"]] == ["pynetdicom-tls"]
    assert lab["canary"]["strings"] == CANARY_STRINGS
    # And the canary list names every server that holds the canary patient, plug-ins included
    assert lab["canary"]["planted_in"] == [
        "orthanc-open", "orthanc-locked", "dcmqrscp", "pynetdicom-any", "pynetdicom-tls", "orthanc-default",
        "fixture-dcm4chee-arc", "fixture-dicomweb", "vsftpd-anonymous",
        "pyftpdlib-mlsd", "nginx-autoindex", "rsyncd", "moto-s3", "nfs-ganesha", "samba-guest", "samba-auth",
        "wlmscpfs", "pynetdicom-series", "pynetdicom-universal", "hl7-push", "astm-push",
    ]  # fmt: skip
    said = {s["name"] for s in lab["services"] if s["expected"].get("canary")}
    assert said <= set(lab["canary"]["planted_in"])
    assert said & {name for name, *_ in PLUGIN_SERVICES} == {
        "pyftpdlib-mlsd", "nginx-autoindex", "rsyncd", "moto-s3", "nfs-ganesha", "samba-guest",
        "wlmscpfs", "pynetdicom-series", "pynetdicom-universal"}  # fmt: skip
    # And every fixture says so: its name, its description, its expected block
    for entry in lab["services"][10:20]:
        assert entry["name"].startswith("fixture-") and entry["description"].startswith("FIXTURE")
        assert entry["expected"]["fixture"] is True and entry["process"] == "web-fixtures"


def test_nfs_services_live_in_the_labs_own_network_namespace(lab):
    # Given the NFS entries of the manifest
    entries = [s for s in lab["services"] if s["protocol"] == "nfs"]
    assert {s["process"] for s in entries} == {"nfs-ganesha"} and {s["host"] for s in entries} == {NFS_HOST}
    # Then the namespace named after the base port exists and holds the address, not the host's loopback
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert f"phiwatch-nfs-{BASE}" in namespaces.split()
    inside = subprocess.run(["ip", "-n", f"phiwatch-nfs-{BASE}", "-4", "-o", "addr"], capture_output=True,
                            text=True, timeout=10).stdout  # fmt: skip
    assert f"{NFS_HOST}/30" in inside
    # And both of its ports accept there
    for entry in entries:
        with socket.create_connection((NFS_HOST, entry["port"]), timeout=5):
            pass


def test_locked_password_is_private_and_never_in_the_manifest(lab, lab_state_dir):
    # Given the credentials file of the locked Orthanc
    path = Path(service(lab, "orthanc-locked-http")["expected"]["credentials_file"])
    credentials = json.loads(path.read_text())
    # Then only its owner can read it, the password is strong, and the manifest lacks it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(credentials["password"]) >= 32
    assert credentials["password"] not in json.dumps(lab)
    config = lab_state_dir / "orthanc-locked" / "orthanc.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


# --- orthanc-open ------------------------------------------------------------------


def test_orthanc_open_accepts_any_called_ae_and_exposes_studies(lab):
    # Given the open Orthanc, called with a title that is not its own
    entry = service(lab, "orthanc-open")
    assoc = associate(entry["port"], "ANY-SCP")
    try:
        # When we echo and ask for every study
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        statuses, studies = find(assoc)
    finally:
        assoc.release()
    # Then the studies come back, the canary among them
    assert statuses[-1] == 0x0000
    assert len(studies) >= 2
    assert len(studies) == entry["expected"]["studies"]
    assert CANARY_STUDY_UID in {str(s.StudyInstanceUID) for s in studies}


def test_orthanc_open_http_answers_without_authentication(lab):
    # Given the open Orthanc's REST port
    port = service(lab, "orthanc-open-http")["port"]
    # When we ask for /system and, through DICOMweb, for the studies
    system = httpx.get(f"http://{HOST}:{port}/system", timeout=5)
    # Then it answers 200 and identifies itself
    assert system.status_code == 200
    assert system.json()["Version"] == "1.10.1"
    assert system.json()["DicomAet"] == "ORTHANC"
    if service(lab, "orthanc-open-http")["expected"]["dicomweb"]:
        studies = httpx.get(f"http://{HOST}:{port}/dicom-web/studies", timeout=5)
        assert studies.status_code == 200 and len(studies.json()) >= 2


def test_orthanc_open_accepts_a_store_from_anyone(lab):
    # Given the open Orthanc (DicomAlwaysAllowStore), When we store an instance it has
    entry = service(lab, "orthanc-open")
    assert entry["expected"]["store"] == "success"
    assoc = associate(entry["port"], "ANY-SCP", contexts=(CTImageStorage,))
    try:
        answer = assoc.send_c_store(dcmread(get_testdata_file("CT_small.dcm", download=False)))
    finally:
        assoc.release()
    # Then it answers Success (the instance was already there: nothing changes)
    assert answer.Status == 0x0000


# --- orthanc-locked ----------------------------------------------------------------


def test_orthanc_locked_rejects_an_unknown_called_ae_with_reason_7(lab):
    # Given the locked Orthanc, which checks the called AE title
    # When we call it ANY-SCP
    # Then it rejects: permanent (1), by the service user (1), called AE not recognised (7)
    assert reject_of(service(lab, "orthanc-locked")["port"], "ANY-SCP") == (1, 1, 7)


def test_orthanc_locked_with_its_called_ae_accepts_but_aborts_find_and_store(lab):
    entry = service(lab, "orthanc-locked")
    assert entry["called_ae"] == "LOCKEDPACS"
    # Given an association with the right called AE from an unknown calling AE
    assoc = associate(entry["port"], "LOCKEDPACS")
    assert assoc.is_established
    # When we echo, then ask for the studies
    assert assoc.send_c_echo().Status == 0x0000
    statuses, studies = find(assoc)
    # Then the echo succeeds but the C-FIND gets no status at all: an A-ABORT
    assert studies == [] and statuses == [None]
    assoc.abort()
    # And a C-STORE is aborted the same way
    assoc = associate(entry["port"], "LOCKEDPACS", contexts=(CTImageStorage,))
    assert assoc.is_established
    answer = assoc.send_c_store(dcmread(get_testdata_file("CT_small.dcm", download=False)))
    assert "Status" not in answer
    assoc.abort()


def test_orthanc_locked_http_requires_the_generated_password(lab):
    entry = service(lab, "orthanc-locked-http")
    url = f"http://{HOST}:{entry['port']}"
    # Given no credentials, the REST API answers 401 with Orthanc's realm
    anonymous = httpx.get(f"{url}/system", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="Orthanc Secure Area"'
    # When we use the lab's credentials, Then the data is there (present, not exposed)
    credentials = json.loads(Path(entry["expected"]["credentials_file"]).read_text())
    auth = (credentials["username"], credentials["password"])
    statistics = httpx.get(f"{url}/statistics", auth=auth, timeout=5)
    assert statistics.status_code == 200
    assert statistics.json()["CountStudies"] >= 2
    assert statistics.json()["CountStudies"] == lab["data"]["orthanc-locked"]["studies"]


# --- dcmqrscp ----------------------------------------------------------------------


def test_dcmqrscp_rejects_an_unknown_called_ae_with_reason_7(lab):
    # Given dcmqrscp, When called ANY-SCP, Then rejected (permanent, service user, 7)
    assert reject_of(service(lab, "dcmqrscp")["port"], "ANY-SCP") == (1, 1, 7)


def test_dcmqrscp_rejects_an_unlisted_calling_ae_with_reason_7_too(lab):
    # Given dcmqrscp's own AE title DCMQR but a calling AE outside its peer list
    port = service(lab, "dcmqrscp")["port"]
    # Then it rejects with reason 7 as well (dcmtk never sends 3, calling AE unknown)
    assert reject_of(port, "DCMQR", calling="PHIWATCH") == (1, 1, 7)


def test_dcmqrscp_accepts_its_listed_peer_and_exposes_studies(lab):
    entry = service(lab, "dcmqrscp")
    allowed = entry["expected"]["with_allowed_calling_ae"]
    # Given the listed peer LABVIEWER calling DCMQR
    assoc = associate(entry["port"], "DCMQR", calling=allowed["calling_ae"])
    try:
        assert assoc.is_established
        # When it echoes and asks for every study
        assert assoc.send_c_echo().Status == 0x0000
        statuses, studies = find(assoc)
    finally:
        assoc.release()
    # Then every indexed study comes back, the canary among them
    assert statuses[-1] == 0x0000
    assert len(studies) == allowed["studies"] >= 2
    assert CANARY_STUDY_UID in {str(s.StudyInstanceUID) for s in studies}


@pytest.mark.parametrize("name", ["orthanc-locked", "dcmqrscp"])
def test_after_a_reject_the_connection_is_closed_or_kept_as_documented(lab, name):
    entry = service(lab, name)
    with socket.create_connection((HOST, entry["port"]), timeout=1.0) as sock:
        # Given a rejected association request
        sock.sendall(association_request("ANY-SCP"))
        header = _read_exactly(sock, 6)
        _read_exactly(sock, int.from_bytes(header[2:6], "big"))
        # When we wait up to 1 s for more, Then dcmqrscp has closed, Orthanc waits for us
        try:
            outcome = "connection-closed" if sock.recv(1) == b"" else "data"
        except TimeoutError:
            outcome = "connection-kept-open"
        except ConnectionResetError:
            outcome = "connection-closed"
    assert outcome == entry["expected"]["after_reject"]


# --- pynetdicom-any ----------------------------------------------------------------


def test_pynetdicom_any_accepts_any_titles_and_returns_the_canary_study(lab):
    # Given the permissive SCP, called and calling with arbitrary titles
    assoc = associate(service(lab, "pynetdicom-any")["port"], "WHATEVER", calling="NOBODY")
    try:
        assert assoc.is_established
        query = study_query()
        for keyword in ("ModalitiesInStudy", "NumberOfStudyRelatedInstances", "InstitutionName"):
            setattr(query, keyword, "")
        # When we ask for every study
        statuses, studies = find(assoc, query=query)
    finally:
        assoc.release()
    # Then five synthetic studies in several years come back, one is the canary
    assert statuses[-1] == 0x0000 and len(studies) == 5
    assert len({str(s.StudyDate)[:4] for s in studies}) >= 4
    canary = [s for s in studies if s.StudyInstanceUID == CANARY_STUDY_UID]
    assert len(canary) == 1
    assert str(canary[0].PatientName) == CANARY_PATIENT_NAME
    assert canary[0].PatientID == CANARY_PATIENT_ID


def test_pynetdicom_any_matches_keys_and_serves_patient_root_and_worklist(lab):
    port = service(lab, "pynetdicom-any")["port"]
    assoc = associate(
        port,
        "ANY-SCP",
        contexts=(StudyFind, PatientRootQueryRetrieveInformationModelFind, ModalityWorklistInformationFind),
    )
    try:
        # Given a query for one patient ID, Then only the canary study matches
        query = study_query()
        query.PatientID = CANARY_PATIENT_ID
        assert [s.PatientID for s in find(assoc, query=query)[1]] == [CANARY_PATIENT_ID]
        # Given a PATIENT-level query, Then five patients
        patients = Dataset()
        patients.QueryRetrieveLevel = "PATIENT"
        patients.PatientID = ""
        assert len(find(assoc, PatientRootQueryRetrieveInformationModelFind, patients)[1]) == 5
        # Given a worklist query, Then five scheduled items
        worklist = Dataset()
        worklist.PatientName = ""
        worklist.ScheduledProcedureStepSequence = [Dataset()]
        assert len(find(assoc, ModalityWorklistInformationFind, worklist)[1]) == 5
    finally:
        assoc.release()


def test_pynetdicom_any_accepts_twenty_proposed_contexts(lab):
    # Given an association request proposing 20 presentation contexts
    contexts = (
        Verification,
        StudyFind,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
        ModalityWorklistInformationFind,
        *(c.abstract_syntax for c in StoragePresentationContexts[:14]),
    )
    assert len(contexts) == 20
    assoc = associate(service(lab, "pynetdicom-any")["port"], "ANY-SCP", contexts=contexts)
    try:
        # Then the association is accepted with all twenty contexts
        assert assoc.is_established
        assert len(assoc.accepted_contexts) == 20
    finally:
        assoc.release()


def test_pynetdicom_any_honours_c_cancel(lab):
    assoc = associate(service(lab, "pynetdicom-any")["port"], "ANY-SCP")
    try:
        context_id = next(c.context_id for c in assoc.accepted_contexts if c.abstract_syntax == StudyFind)
        # Given a C-FIND under way, When we send C-CANCEL after the first match
        statuses = []
        for status, _ in assoc.send_c_find(study_query(), StudyFind, msg_id=42):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(42, context_id)
    finally:
        assoc.release()
    # Then the SCP stops early with status Cancel (0xFE00)
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 6


def test_pynetdicom_any_keeps_nothing_and_retrieves_nothing(lab):
    port = service(lab, "pynetdicom-any")["port"]
    assoc = associate(
        port,
        "ANY-SCP",
        contexts=(
            CTImageStorage,
            PatientRootQueryRetrieveInformationModelGet,
            PatientRootQueryRetrieveInformationModelMove,
        ),
    )
    try:
        # When we store the canary, Then 0xA700 (out of resources)
        assert assoc.send_c_store(build_canary_dataset()).Status == 0xA700
        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = CANARY_PATIENT_ID
        # When we C-GET or C-MOVE, Then failure statuses and no data
        gets = list(assoc.send_c_get(query, PatientRootQueryRetrieveInformationModelGet))
        moves = list(assoc.send_c_move(query, "PHIWATCH", PatientRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()
    assert [s.Status for s, _ in gets] == [0xA702]
    assert [s.Status for s, _ in moves] == [0xA801]


# --- pynetdicom-tls ----------------------------------------------------------------


def test_pynetdicom_tls_needs_tls(lab):
    port = service(lab, "pynetdicom-tls")["port"]
    # Given the TLS port, When we associate in plain DICOM, Then no association
    plain = associate(port, "ANY-SCP")
    assert not plain.is_established
    # When we associate over TLS without verifying the certificate, Then it is exposed
    assoc = associate(port, "ANY-SCP", tls=unverified_tls())
    try:
        assert assoc.is_established
        _, studies = find(assoc)
    finally:
        assoc.release()
    assert CANARY_STUDY_UID in {str(s.StudyInstanceUID) for s in studies}


def test_pynetdicom_tls_resets_a_plain_association_request(lab):
    port = service(lab, "pynetdicom-tls")["port"]
    assert service(lab, "pynetdicom-tls")["expected"]["plain"] == "reset"
    with socket.create_connection((HOST, port), timeout=3) as sock:
        # Given the first bytes of an A-ASSOCIATE-RQ (PDU type 1) instead of a ClientHello
        sock.sendall(b"\x01\x00\x00\x00\x00\x44" + b"\x00\x01" + b"\x00" * 66)
        # Then the server never answers with DICOM: it resets the connection
        with pytest.raises(ConnectionResetError):
            sock.recv(64)


def test_pynetdicom_tls_presents_a_self_signed_30_day_certificate(lab):
    port = service(lab, "pynetdicom-tls")["port"]
    with socket.create_connection((HOST, port), timeout=3) as raw:
        with unverified_tls().wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "phiwatch-lab"
    assert cert.issuer == cert.subject
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 29 <= lifetime.days <= 31
    assert cert.not_valid_before_utc <= datetime.now(UTC) <= cert.not_valid_after_utc


# --- tarpit ------------------------------------------------------------------------


def test_tarpit_accepts_and_sends_nothing(lab):
    entry = service(lab, "tarpit")
    assert entry["expected"]["status"] == "timeout"
    with socket.create_connection((HOST, entry["port"]), timeout=1.0) as sock:
        # Given a connection on which we send an association request's first bytes
        sock.sendall(b"\x01\x00\x00\x00\x00\x44" + b"\x00" * 68)
        # Then nothing comes back within 1 s, and the connection is still open
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_tarpit_closes_extras_at_once_and_others_after_the_hold():
    # Given a tarpit that holds 0.5 s and at most 2 connections
    async def scenario() -> tuple[bytes, float, float]:
        pit = Tarpit(hold=0.5, max_connections=2)
        server = await asyncio.start_server(pit.handle, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        async with server:
            held = [await asyncio.open_connection(HOST, port) for _ in range(2)]
            await asyncio.sleep(0.1)
            started = loop.time()
            extra_reader, extra_writer = await asyncio.open_connection(HOST, port)
            # When a third connects, Then it is closed at once without a byte
            extra = await asyncio.wait_for(extra_reader.read(), timeout=2)
            extra_delay = loop.time() - started
            # And the two held ones end (EOF, no data) after about the hold time
            results = [await asyncio.wait_for(r.read(), timeout=3) for r, _ in held]
            held_for = loop.time() - started
            assert results == [b"", b""]
            for writer in (extra_writer, *(w for _, w in held)):
                writer.close()
        return extra, extra_delay, held_for

    extra, extra_delay, held_for = asyncio.run(scenario())
    assert extra == b"" and extra_delay < 0.3
    assert 0.25 <= held_for < 2.0


# --- orthanc-default: the well-known orthanc:orthanc -----------------------------------


def test_orthanc_default_http_challenges_anonymous_clients_with_its_realm(lab):
    entry = service(lab, "orthanc-default-http")
    # Given no credentials, When we ask for /system and for the studies over DICOMweb
    for path in ("/system", "/dicom-web/studies", "/app/explorer.html"):
        answer = httpx.get(f"http://{HOST}:{entry['port']}{path}", timeout=5)
        # Then 401 with Orthanc's realm, and nothing else
        assert answer.status_code == entry["expected"]["status"] == 401, path
        assert answer.headers["www-authenticate"] == f'Basic realm="{entry["expected"]["realm"]}"'
        assert answer.content == b""


def test_orthanc_default_http_opens_to_orthanc_orthanc_and_exposes_the_studies(lab):
    entry = service(lab, "orthanc-default-http")
    default = entry["expected"]["default_credentials"]
    auth = (default["username"], default["password"])
    assert auth == ("orthanc", "orthanc")
    url = f"http://{HOST}:{entry['port']}"
    # Given the default credentials, When we ask for /system, /statistics and QIDO studies
    system = httpx.get(f"{url}/system", auth=auth, timeout=5)
    statistics = httpx.get(f"{url}/statistics", auth=auth, timeout=5)
    studies = httpx.get(f"{url}/dicom-web/studies", auth=auth, timeout=5)
    # Then each answers 200; the server names itself and every study comes back, the canary too
    assert system.status_code == default["status"] == 200
    assert system.json()["Version"] == entry["expected"]["version"] == "1.10.1"
    assert system.json()["DicomAet"] == "ORTHANC"
    assert statistics.json()["CountStudies"] == default["studies"] == lab["data"]["orthanc-default"]["studies"]
    assert studies.status_code == 200 and studies.headers["content-type"] == "application/dicom+json"
    uids = {s["0020000D"]["Value"][0] for s in studies.json()}
    assert len(uids) == default["studies"] >= 2
    assert CANARY_STUDY_UID in uids


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic Og=="},  # ":" - blank user and password
        {"Authorization": "Basic " + base64.b64encode(b"orthanc:").decode()},
        {"Authorization": "Basic " + base64.b64encode(b":orthanc").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"orthanc:wrong").decode()},
    ],
    ids=["blank", "blank-password", "blank-user", "wrong-password"],
)
def test_orthanc_default_http_refuses_blank_and_wrong_credentials(lab, headers):
    entry = service(lab, "orthanc-default-http")
    assert entry["expected"]["blank_credentials"] == {"authorization": "Basic Og==", "status": 401}
    # Given blank or wrong credentials, When we ask for /system, Then 401 with the realm
    answer = httpx.get(f"http://{HOST}:{entry['port']}/system", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="Orthanc Secure Area"'


def test_orthanc_default_dicom_echoes_and_stores_but_aborts_find(lab):
    entry = service(lab, "orthanc-default")
    # Given an association under any called AE title from an unknown calling AE
    assoc = associate(entry["port"], "ANY-SCP", contexts=(Verification, StudyFind, CTImageStorage))
    assert assoc.is_established
    # When we echo and store an instance it already has, Then both succeed
    assert assoc.send_c_echo().Status == 0x0000
    stored = assoc.send_c_store(dcmread(get_testdata_file("CT_small.dcm", download=False)))
    assert stored.Status == 0x0000 and entry["expected"]["store"] == "success"
    # And a C-FIND gets no status at all: Orthanc aborts (DicomAlwaysAllowFind false)
    statuses, studies = find(assoc)
    assert studies == [] and statuses == [None] and entry["expected"]["find"] == "aborted"
    assoc.abort()


def test_orthanc_open_statistics_and_qido_limit_1_are_recorded_as_measured(lab):
    entry = service(lab, "orthanc-open-http")
    url = f"http://{HOST}:{entry['port']}"
    # Given the open Orthanc, When we read /statistics and QIDO with limit=1
    statistics = httpx.get(f"{url}/statistics", timeout=5).json()
    qido = httpx.get(f"{url}/dicom-web/studies?limit=1", timeout=5)
    # Then the manifest holds exactly these counts and this answer
    recorded = entry["expected"]["statistics"]
    assert recorded["CountStudies"] == statistics["CountStudies"] == entry["expected"]["studies"] >= 2
    assert recorded["CountInstances"] == statistics["CountInstances"] >= recorded["CountStudies"]
    assert all(isinstance(value, int) for value in recorded.values())
    assert qido.status_code == 200 and qido.headers["content-type"] == "application/dicom+json"
    assert len(qido.json()) == 1
    assert entry["expected"]["dicomweb_studies_limit_1"] == {
        "status": 200,
        "content_type": "application/dicom+json",
        "studies": 1,
    }


# --- web fixtures ----------------------------------------------------------------------


def fixture_url(manifest: dict, key: str, path: str = "") -> str:
    return f"http://{HOST}:{service(manifest, f'fixture-{key}')['port']}{path}"


@pytest.mark.parametrize("key", FIXTURE_KEYS)
def test_every_fixture_labels_itself_and_answers_404_elsewhere(lab, key):
    expected = service(lab, f"fixture-{key}")["expected"]
    # Given a fixture's page, When we fetch it, Then its status, title and label are as documented
    page = httpx.get(fixture_url(lab, key, expected["page"]), timeout=5)
    assert page.status_code == expected["status"] == 200
    assert page.headers[FIXTURE_HEADER] == key
    if "title" in expected:
        assert f"<title>{expected['title']}</title>".lower() in page.text.lower()  # Conquest: <TITLE>
    # When we fetch a path the fixture does not serve, Then 404, still labelled
    for path in ("/no/such/path", "/app/explorer.html", "/../etc/passwd"):
        missing = httpx.get(fixture_url(lab, key, path), timeout=5)
        assert missing.status_code == 404 and missing.headers[FIXTURE_HEADER] == key
    # And a HEAD of the page has the same status and no body
    head = httpx.head(fixture_url(lab, key, expected["page"]), timeout=5)
    assert head.status_code == 200 and head.content == b"" and head.headers[FIXTURE_HEADER] == key


def test_fixtures_listen_on_127_0_0_1_only(lab):
    # Given the fixtures' ports, When we connect to 127.0.0.2 instead, Then nothing listens there
    for key in FIXTURE_KEYS:
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.2", service(lab, f"fixture-{key}")["port"])) != 0, key


@pytest.mark.lab
def test_servers_without_a_bind_address_answer_on_127_0_0_1_only(lab):
    # Given Orthanc, dcmqrscp and wlmscpfs, which can only listen on every address: the lab runs each
    # in a network namespace of its own behind a relay on 127.0.0.1 (phiwatch_lab/isolated.py)
    names = ["orthanc-open", "orthanc-open-http", "orthanc-locked", "orthanc-locked-http", "orthanc-default",
             "orthanc-default-http", "dcmqrscp", "wlmscpfs"]
    for name in names:
        port = service(lab, name)["port"]
        # When we connect to another loopback address (a server on 0.0.0.0 answers on all of 127/8)
        # Then nothing answers there, and the server answers on 127.0.0.1
        with socket.socket() as elsewhere, socket.socket() as here:
            elsewhere.settimeout(1)
            here.settimeout(5)
            assert elsewhere.connect_ex(("127.0.0.2", port)) != 0, name
            assert here.connect_ex(("127.0.0.1", port)) == 0, name


def test_fixture_backlog_takes_a_burst_of_connections_without_delay(lab):
    port = service(lab, "fixture-dicomweb")["port"]
    # Given 300 connections opened at once, Then all are accepted well under a SYN retransmit (1 s)
    started = time.monotonic()
    sockets = [socket.create_connection((HOST, port), timeout=2) for _ in range(300)]
    elapsed = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert elapsed < 1.0


def qido(url: str, **params: str) -> list[dict]:
    answer = httpx.get(url, params=params, timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/dicom+json"
    return answer.json()


@pytest.mark.parametrize("key", ["dcm4chee-arc", "dicomweb"])
def test_fixture_qido_serves_dicom_json_studies_with_limit_and_offset(lab, key):
    expected = service(lab, f"fixture-{key}")["expected"]
    path = expected["qido"] if key == "dcm4chee-arc" else expected["page"]
    url = fixture_url(lab, key, path)
    # Given the fixture's QIDO-RS, When we ask for every study
    studies = qido(url)
    # Then five studies in the DICOM JSON model, the canary among them
    assert len(studies) == expected["studies"] == 5 and expected["canary"] is True
    uids = [s["0020000D"]["Value"][0] for s in studies]
    assert CANARY_STUDY_UID in uids
    for study in studies:
        assert study["00100010"]["vr"] == "PN" and "Alphabetic" in study["00100010"]["Value"][0]
        assert study["00201208"]["vr"] == "IS" and isinstance(study["00201208"]["Value"][0], int)
        assert study["00080061"]["vr"] == "CS" and study["00080061"]["Value"]
        assert list(study) == sorted(study)
    # And limit and offset page through them
    assert [s["0020000D"]["Value"][0] for s in qido(url, limit="2")] == uids[:2]
    assert [s["0020000D"]["Value"][0] for s in qido(url, offset="3", limit="10")] == uids[3:]
    assert qido(url, offset="5") == []
    # And an exact key matches one study; a bad limit is refused
    assert [s["0020000D"]["Value"][0] for s in qido(url, PatientID=CANARY_PATIENT_ID)] == [CANARY_STUDY_UID]
    assert httpx.get(url, params={"limit": "x"}, timeout=5).status_code == 400


def test_dcm4chee_fixture_lists_its_ae_and_shows_its_version(lab):
    expected = service(lab, "fixture-dcm4chee-arc")["expected"]
    # Given the archive fixture, When we read its AE list, device list and status
    aets = httpx.get(fixture_url(lab, "dcm4chee-arc", "/dcm4chee-arc/aets"), timeout=5).json()
    devices = httpx.get(fixture_url(lab, "dcm4chee-arc", expected["version_path"]), timeout=5).json()
    status = httpx.get(fixture_url(lab, "dcm4chee-arc", "/dcm4chee-arc/ctrl/status"), timeout=5).json()
    moved = httpx.get(fixture_url(lab, "dcm4chee-arc", "/dcm4chee-arc/ui2"), timeout=5)
    # Then one AE DCM4CHEE, the version 5.31.2, a started archive, and the UI's redirect
    assert [a["dicomAETitle"] for a in aets] == expected["aets"] == ["DCM4CHEE"]
    assert {"dicomDescription", "dcmAcceptedUserRole"} <= set(aets[0])
    assert devices[0]["dicomSoftwareVersion"] == [expected["version"]] == ["5.31.2"]
    assert status == {"status": "STARTED"}
    assert moved.status_code == 302 and moved.headers["location"] == "/dcm4chee-arc/ui2/"
    retrieve = qido(fixture_url(lab, "dcm4chee-arc", expected["qido"]), limit="1")[0]
    assert retrieve["00080054"]["Value"] == ["DCM4CHEE"]


def test_ohif_dicoogle_kheops_horos_and_conquest_fixtures_identify_themselves(lab):
    ohif = service(lab, "fixture-ohif")["expected"]
    config = httpx.get(fixture_url(lab, "ohif", ohif["config_path"]), timeout=5)
    assert config.status_code == 200 and ohif["dicomweb_root"] in config.text
    assert httpx.get(fixture_url(lab, "ohif"), timeout=5).headers["server"] == "nginx"
    dicoogle = service(lab, "fixture-dicoogle")["expected"]
    version = httpx.get(fixture_url(lab, "dicoogle", dicoogle["version_path"]), timeout=5).json()
    assert version == {"version": dicoogle["version"]} == {"version": "3.0.2"}
    kheops = service(lab, "fixture-kheops")["expected"]
    api = httpx.get(fixture_url(lab, "kheops", kheops["api"]["path"]), timeout=5)
    assert api.status_code == kheops["api"]["status"] == 401
    assert api.headers["www-authenticate"].startswith("Bearer")
    horos = httpx.get(fixture_url(lab, "horos", "/"), timeout=5).text
    assert 'Service provided by <a href="http://www.horosproject.org">' in horos
    conquest = httpx.get(fixture_url(lab, "conquest", "/cgi-bin/dgate.exe"), timeout=5).text
    assert "Welcome to the Conquest DICOM server - version 1.5.0c" in conquest


def pacs_form(manifest: dict, key: str, **changes: str) -> dict[str, str]:
    return service(manifest, f"fixture-{key}")["expected"]["login"]["fields"] | changes


def test_meddream_fixture_accepts_a_blank_login(lab):
    expected = service(lab, "fixture-meddream")["expected"]
    with httpx.Client(base_url=fixture_url(lab, "meddream"), timeout=5) as client:
        # Given the login page, Then it carries PacsOne's form and MedDream's markers
        page = client.get("/pacs/login.php").text
        for name in expected["login"]["fields"]:
            assert f"name='{name}'" in page, name
        assert "loginSplash" in page and "Not authorized to access this URL" in page
        assert "MedDream PACS" in page
        # When we post the form with a blank user name and password
        answer = client.post(expected["login"]["action"], data=pacs_form(lab, "meddream"))
        # Then we get PHP's session cookie and the way to the home page
        assert answer.status_code == 302 and answer.headers["location"] == "login.php"
        assert "PHPSESSID" in client.cookies
        again = client.get("/pacs/login.php")
        assert again.status_code == 302 and again.headers["location"] == "home.php"
        assert client.get("/pacs/home.php").status_code == 200
    # And at / the fixture sends us to the login page
    root = httpx.get(fixture_url(lab, "meddream", "/"), timeout=5)
    assert root.status_code == 302 and root.headers["location"] == expected["root"]["location"]


@pytest.mark.parametrize(
    "key, changes",
    [
        ("meddream", {"formUsername": "admin", "formPassword": "admin"}),
        ("meddream", {"formAntiSpam": "0"}),
        ("pacsone", {}),
    ],
    ids=["meddream-named-user", "meddream-no-antispam", "pacsone-blank"],
)
def test_pacs_login_fixtures_refuse_other_logins(lab, key, changes):
    # Given a login the fixture does not accept, When we post it
    with httpx.Client(base_url=fixture_url(lab, key), timeout=5) as client:
        answer = client.post("/pacs/authenticate.php", data=pacs_form(lab, key, **changes))
        # Then back to the login page with PacsOne's message, no session, no home page
        assert answer.status_code == 302
        assert answer.headers["location"].startswith("login.php?message=Could+not+connect+to+database")
        assert "PHPSESSID" not in client.cookies
        home = client.get("/pacs/home.php")
        assert home.status_code == 302 and home.headers["location"] == "login.php"


def test_pacsone_fixture_shows_its_product_and_version(lab):
    expected = service(lab, "fixture-pacsone")["expected"]
    page = httpx.get(fixture_url(lab, "pacsone", expected["page"]), timeout=5)
    assert expected["banner"] == "PacsOne Server 7.2.3" and expected["banner"] in page.text
    assert "PacsOne Server Login" in page.text and expected["blank_login"] == "refused"


def test_xnat_fixture_accepts_admin_admin_over_basic_auth_only(lab):
    expected = service(lab, "fixture-xnat")["expected"]
    projects = fixture_url(lab, "xnat", expected["api"]["path"])
    # Given no credentials or wrong ones, Then 401 with a Basic challenge
    anonymous = httpx.get(projects, timeout=5)
    assert anonymous.status_code == expected["api"]["status"] == 401
    assert anonymous.headers["www-authenticate"] == f'Basic realm="{expected["realm"]}"'
    assert httpx.get(projects, auth=("admin", "wrong"), timeout=5).status_code == 401
    assert httpx.get(projects, headers={"Authorization": "Basic Og=="}, timeout=5).status_code == 401
    # Given admin:admin, Then the projects and the build information
    default = expected["default_credentials"]
    auth = (default["username"], default["password"])
    listed = httpx.get(projects, auth=auth, timeout=5)
    assert listed.status_code == default["status"] == 200
    assert len(listed.json()["ResultSet"]["Result"]) == default["projects"] == 1
    build = httpx.get(fixture_url(lab, "xnat", expected["version_path"]), auth=auth, timeout=5).json()
    assert build["version"] == expected["version"] == "1.8.10"
    assert "JSESSIONID" in httpx.get(fixture_url(lab, "xnat", "/login"), timeout=5).headers["set-cookie"]


def test_dicomweb_fixture_has_open_cors_and_no_product_page(lab):
    expected = service(lab, "fixture-dicomweb")["expected"]
    # Given the bare DICOMweb server, When we ask for the studies from another origin
    answer = httpx.get(fixture_url(lab, "dicomweb", expected["page"]), headers={"Origin": "http://evil.test"})
    # Then any origin may read them, with credentials
    assert answer.headers["access-control-allow-origin"] == expected["cors"]["allow_origin"] == "*"
    assert answer.headers["access-control-allow-credentials"] == expected["cors"]["allow_credentials"]
    preflight = httpx.options(fixture_url(lab, "dicomweb", expected["page"]), timeout=5)
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    # And its root is a bare 404, with no Orthanc explorer behind it
    for path in ("/", "/app/explorer.html"):
        assert httpx.get(fixture_url(lab, "dicomweb", path), timeout=5).status_code == expected["root_status"]


# --- lifecycle ---------------------------------------------------------------------


def test_status_reports_every_service_running(lab, lab_state_dir):
    rows = lab_control.status(lab_state_dir)
    assert [r["name"] for r in rows] == [s["name"] for s in lab["services"]]
    assert all(r["running"] for r in rows), rows
    assert all(isinstance(r["port"], int) for r in rows)


def test_up_twice_is_idempotent(lab, lab_state_dir):
    before = {r["name"]: r["pid"] for r in lab_control.status(lab_state_dir)}
    # When up() runs again with the same ports, Then the same lab is returned as is
    assert lab_control.up(lab_state_dir, base_port=BASE) == lab
    assert {r["name"]: r["pid"] for r in lab_control.status(lab_state_dir)} == before


def test_up_on_other_ports_while_running_is_refused(lab, lab_state_dir):
    with pytest.raises(lab_control.LabError, match=f"already runs on base port {BASE}"):
        lab_control.up(lab_state_dir, base_port=BASE + 400)


def test_lab_logs_hold_no_canary_value(lab, lab_state_dir):
    # Given the servers' logs after every test above queried them (the process logs, and any log a
    # server writes beside its data)
    for log in [*lab_state_dir.rglob("*.log"), *lab_state_dir.rglob("log.*")]:  # log.*: Samba's
        text = log.read_text(errors="replace")
        # Then no planted patient value appears in any of them
        assert not [s for s in CANARY_STRINGS if s in text], log.name


def test_default_state_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert lab_control.default_state_dir() == tmp_path / "phiwatch" / "lab"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert lab_control.default_state_dir() == Path.home() / ".local/state/phiwatch/lab"


def test_a_missing_orthanc_names_its_debian_package(monkeypatch, tmp_path):
    # Given no Orthanc binary anywhere
    monkeypatch.setattr(orthanc_module, "ORTHANC_CANDIDATES", ())
    monkeypatch.setattr(orthanc_module.shutil, "which", lambda name: None)
    # Then up() fails with one line naming the Debian package, and starts nothing
    with pytest.raises(lab_control.LabError) as caught:
        lab_control.up(tmp_path, base_port=BASE + 300)
    assert "Debian package 'orthanc'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert lab_control.status(tmp_path) == []


def test_a_missing_dcmqrscp_names_its_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(dcmqrscp_module, "DCMQRSCP", tmp_path / "no-such-dcmqrscp")
    with pytest.raises(lab_control.LabError, match="Debian package 'dcmtk'"):
        lab_control.up(tmp_path, base_port=BASE + 300)


def test_a_server_that_dies_at_start_up_stops_the_others(monkeypatch, tmp_path):
    # Given an "Orthanc" that writes an error and exits at once
    def broken(config_path: Path) -> list[str]:
        return ["/bin/sh", "-c", "echo 'E: cannot open the storage area' >&2; exit 3"]

    monkeypatch.setattr(orthanc_module, "command", broken)
    # When the lab is brought up, Then the error carries the tail of its log
    with pytest.raises(lab_control.LabError, match="exited during start-up.*storage area"):
        lab_control.up(tmp_path, base_port=BASE + 300)
    # And nothing it started is left running or listening, and no NFS namespace is left behind
    assert not (tmp_path / "pids.json").exists()
    for port in range(BASE + 300, BASE + 328):
        with socket.socket() as probe:
            assert probe.connect_ex((HOST, port)) != 0, port
    assert not Path(f"/run/netns/phiwatch-nfs-{BASE + 300}").exists()


def test_up_refuses_a_foreign_non_empty_directory(tmp_path):
    # Given a directory that holds someone else's files
    (tmp_path / "notes.txt").write_text("keep me")
    # Then up() refuses to use it (it would wipe its data folders), and touches nothing
    with pytest.raises(lab_control.LabError, match="not a phiwatch lab state directory"):
        lab_control.up(tmp_path, base_port=BASE + 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_up_with_a_port_taken_fails_cleanly(tmp_path):
    # Given something already listening on the tarpit's port of a lab at base+200
    with socket.socket() as squatter:
        squatter.bind((HOST, BASE + 207))
        squatter.listen()
        # When the lab is brought up, Then one clear error, and nothing left running
        with pytest.raises(lab_control.LabError, match=f"port {BASE + 207}"):
            lab_control.up(tmp_path, base_port=BASE + 200)
    assert lab_control.manifest(tmp_path) is None
    assert lab_control.status(tmp_path) == []
    assert lab_control.down(tmp_path) == 0


def test_down_stops_every_process_and_frees_the_ports(tmp_path):
    # Given a second, separate lab at base+100
    manifest = lab_control.up(tmp_path, base_port=BASE + 100)
    try:
        pids = {r["pid"] for r in lab_control.status(tmp_path)}
        assert len(pids) == 22  # ten built-in processes, twelve plug-ins
        assert Path(f"/run/netns/phiwatch-nfs-{BASE + 100}").exists()
    finally:  # never left running for the tests after this one
        # When it is brought down
        assert lab_control.down(tmp_path) == 22
    # Then none of its processes remain, every port is free and down() is a no-op
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    on_loopback = [entry for entry in manifest["services"] if "host" not in entry]
    assert len(on_loopback) == 36
    for entry in on_loopback:
        with socket.socket() as probe:
            assert probe.connect_ex((HOST, entry["port"])) != 0, entry["name"]
    # And the NFS server's namespace and veth pair are gone (its address is no longer routed here)
    assert not Path(f"/run/netns/phiwatch-nfs-{BASE + 100}").exists()
    assert not Path(f"/sys/class/net/pwnfs{BASE + 100}h").exists()
    assert lab_control.status(tmp_path) == []
    assert lab_control.down(tmp_path) == 0


# --- vsftpd ----------------------------------------------------------------------------


def ftp_session(port: int) -> ftplib.FTP:
    client = ftplib.FTP(timeout=5)
    client.connect(HOST, port)
    return client


def test_vsftpd_anonymous_serves_its_documented_tree_read_only(lab):
    entry = service(lab, "vsftpd-anonymous")
    expected = entry["expected"]
    with ftp_session(entry["port"]) as client:
        # Given an anonymous login with no password asked
        assert client.login("anonymous", "").startswith("230")
        # Then FEAT offers neither MLSD nor AUTH TLS: listings are LIST only
        features = client.sendcmd("FEAT").upper()
        assert "MLSD" not in features and "AUTH TLS" not in features
        assert expected["listing"] == "list" and expected["tls_offered"] is False
        assert sorted(client.nlst("/")) == ["/DICOM", "/HL7", "/IMAGES", "/README.txt", "/X12"]
        # And the series folder holds its 300 images, the loop link points up
        assert len(client.nlst("/IMAGES/SE000001")) == 300
        lines: list[str] = []
        client.retrlines("LIST /HL7", lines.append)
        assert any(line.startswith("l") and line.endswith("back -> ..") for line in lines)
        assert len([line for line in lines if line.endswith(".hl7")]) == expected["files_present"]["hl7"]
        # And the canary is there to be found
        data = bytearray()
        client.retrbinary(f"RETR /HL7/ADT_{CANARY_PATIENT_ID}_1.hl7", data.extend)
        assert CANARY_PATIENT_NAME.encode() in data
        # And nothing can be written
        with pytest.raises(ftplib.error_perm):
            client.storbinary("STOR /upload.txt", io.BytesIO(b"x"))
    counts = expected["probe_counts"]
    assert counts["dicom"]["verified"] + counts["dicom"]["estimated"] == expected["files_present"]["dicom"]


def test_vsftpd_closed_refuses_anonymous_and_ftp_at_once(lab):
    entry = service(lab, "vsftpd-closed")
    assert entry["expected"]["access"] == "denied"
    with ftp_session(entry["port"]) as client:
        for user in ("anonymous", "ftp"):
            started = time.monotonic()
            with pytest.raises(ftplib.error_perm, match="^530"):
                client.login(user, "phiwatch@")
            assert time.monotonic() - started < 2
        assert "AUTH TLS" not in client.sendcmd("FEAT").upper()
