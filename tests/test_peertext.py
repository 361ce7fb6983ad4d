"""The peer-text gate: what it keeps, what the models' types refuse, and the installation salt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from phiwatch import peertext
from phiwatch.models import HttpFacts, RepositoryFacts, Service, ShareFacts, TlsFacts
from phiwatch.peertext import classify, first_bytes, peer_text, place_name

PERSON = "DOE^JANE^QX"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("220 (vsFTPd 3.0.3)", "vsftpd 3.0.3"),
        (f"220 Welcome {PERSON} (vsFTPd 3.0.3)", "vsftpd 3.0.3"),
        ("nginx/1.22.1", "nginx 1.22.1"),
        ("Apache/2.4.57 (Debian)", "Apache httpd 2.4.57"),
        ("Orthanc Secure Area", "Orthanc Secure Area"),
        ("Orthanc", "Orthanc"),
        ("@RSYNCD: 31.0", "rsync 31.0"),
        ("SSH-2.0-OpenSSH_9.2p1 Debian-2", "OpenSSH 9.2p1"),
        ("OFFIS_DCMTK_367", "DCMTK 367"),
        ("Directory listing for /", "Directory listing for /"),
        ("Index of /", "Index of /"),
    ],
)
def test_products_and_versions_come_from_the_table(raw, kept):
    assert peer_text(raw) == kept


@pytest.mark.parametrize("raw", [f"Index of /{PERSON}/", f'realm="{PERSON}"', f"CN={PERSON}", "Dr DOE's <script>"])
def test_other_text_is_a_keyed_hash_and_a_length(raw):
    kept = peer_text(raw)
    assert kept is not None and kept.startswith("#") and kept.endswith(f"({len(raw)} chars)")
    assert "DOE" not in kept and kept == peer_text(raw) and kept != peer_text(raw + " ")


@pytest.mark.parametrize("raw", ["OFFIS_DCMTK_367", "PYNETDICOM_304", "ORTHANC", "GE_PACS_REV_24", "OSIRIX001"])
def test_known_implementation_version_names_are_kept_as_sent_for_fingerprints(raw):
    assert peertext.implementation_name(raw) == raw
    for personal in ("ORTHANC SMITH", "DOE_JANE", "OFFIS_DCMTK_DOE"):
        kept = peertext.implementation_name(personal)
        assert kept is not None and "SMITH" not in kept and "DOE" not in kept


def test_first_bytes_are_a_class_and_a_length():
    mllp = b"\x0bMSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1||123||" + PERSON.encode() + b"\r\x1c\r"
    assert first_bytes(mllp) == f"HL7 v2 over MLLP, {len(mllp)} bytes"
    assert first_bytes(b"\x05") == "ASTM E1381 (ENQ), 1 bytes"
    assert first_bytes(b"\x021H|\\^&|||X\r") .startswith("ASTM E1394 record, ")
    assert first_bytes(f"hello {PERSON}\r\n".encode()) == f"text, {len(PERSON) + 8} bytes"
    assert classify(b"\x16\x03\x01\x00") == "TLS record" and classify(b"\x00\xff") == "binary"


@pytest.mark.parametrize(
    "name", ["imaging", "pacs-export", "/srv/dicom/2023", "public", "IPC$", "Radiology_Archive", "backup24", "/"])
def test_generic_names_that_locate_data_are_kept(name):
    assert place_name(name) == name


@pytest.mark.parametrize(
    "name", ["DOE_JANE", "smith-mri", "/export/patients/Doe", "jdoe", "mrn-1234567", "a" * 80])
def test_other_names_that_locate_data_are_hashed_with_their_length(name):
    kept = place_name(name)
    assert kept.startswith("#") and kept.endswith(f"({len(name)} chars)") and kept == place_name(name)


def test_the_models_refuse_text_that_did_not_pass_the_gate():
    # A probe that copies a peer's text into a model fails, at construction and at assignment
    with pytest.raises(ValidationError):
        HttpFacts(scheme="http", server=f"Welcome {PERSON}")
    facts = HttpFacts(scheme="http")
    for field in ("server", "title", "auth_realm"):
        with pytest.raises(ValidationError):
            setattr(facts, field, f"Index of /{PERSON}/")
    with pytest.raises(ValidationError):
        ShareFacts(name=PERSON)
    with pytest.raises(ValidationError):
        TlsFacts(subject=f"CN={PERSON}")
    with pytest.raises(ValidationError):
        RepositoryFacts(access="anonymous", server=f"220 {PERSON}")
    with pytest.raises(ValidationError):
        Service(host="127.0.0.1", port=1, protocol="unknown", status="open", banner=f"hi {PERSON}")
    # What the gate gives is accepted
    facts.title = peer_text(f"Index of /{PERSON}/")
    ShareFacts(name=place_name(PERSON))


PEER_FIELDS = {
    (HttpFacts, "server"), (HttpFacts, "title"), (HttpFacts, "auth_realm"), (HttpFacts, "bucket_names"),
    (TlsFacts, "subject"), (TlsFacts, "issuer"), (TlsFacts, "alt_names"), (RepositoryFacts, "server"),
    (ShareFacts, "name"), (Service, "banner"),
}


def test_every_peer_filled_field_is_typed_by_the_gate():
    from phiwatch.models import DicomFacts

    for model, field in {*PEER_FIELDS, (DicomFacts, "implementation_version_name")}:
        annotation = str(model.model_fields[field].annotation) + str(model.model_fields[field].metadata)
        assert "_gate_shaped" in annotation or "_place_shaped" in annotation, (model.__name__, field)


def test_the_salt_is_made_once_per_installation_readable_by_its_owner_only(tmp_path):
    code = "from phiwatch.peertext import keyed_hash; print(keyed_hash('DOE'))"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "one")}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    other = subprocess.run([sys.executable, "-c", code], env={**env, "XDG_DATA_HOME": str(tmp_path / "two")},
                           capture_output=True, text=True).stdout
    assert first and first == again and first != other  # one installation matches; another cannot look it up
    salt = tmp_path / "one" / "phiwatch" / "salt"
    assert salt.stat().st_mode & 0o777 == 0o600 and len(salt.read_bytes()) == 32
    assert peertext.salt_path().name == "salt"
