"""phiwatch.content: sniffing the head of a file names its kind and PHI attributes, never a value.

Real files only: the lab canary written with pydicom, pydicom's bundled test files, hand-written
HL7 and X12 messages carrying the canary values, archives built here. Hostile inputs (garbage
after DICM, every truncation, a multi-megabyte HL7 line, a gzip bomb named .dcm, 100,000
entries in one folder, a tree deeper than max_depth, symlink loops) each end in a status, in
bounded time and memory.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import random
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import tag_for_keyword
from pydicom.filewriter import dcmwrite

from phiwatch.content import (
    DEFAULT_BUDGET,
    Sniffed,
    SniffSummary,
    kind_from_name,
    safe_entry_name,
    sniff,
    sniff_path,
)
from phiwatch.phi import DICOM_PHI_KEYWORDS
from phiwatch_lab.canary import (
    CANARY_ACCESSION,
    CANARY_BIRTH_DATE,
    CANARY_INSTITUTION,
    CANARY_NAME_TOKENS,
    CANARY_PATIENT_ID,
    CANARY_PATIENT_NAME,
    CANARY_REFERRING_PHYSICIAN,
    CANARY_STRINGS,
    build_canary_dataset,
    canary_bytes,
)

PROFILE = Path("/work/shared/data/ps3.15-confidentiality-profile.json")
CANARY_DICOM_PHI = {
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyDescription",
    "StudyDate",
}

# The compression bomb: 50 MB of zeros, gzip-compressed (about 50 KB), built once, in chunks.
_squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
BOMB = b"".join(_squeeze.compress(bytes(1 << 20)) for _ in range(50)) + _squeeze.flush()
del _squeeze


def no_canary(model: Sniffed | SniffSummary) -> str:
    """The model's JSON, after checking that no canary value (nor a reformatted name) is in it."""
    text = model.model_dump_json()
    for value in CANARY_STRINGS:
        assert value not in text, f"canary value leaked into {type(model).__name__}"
    assert "ZELDA" not in text
    return text


def pydicom_file(name: str) -> bytes:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not bundled")
    return Path(path).read_bytes()


def canary_variant(**attributes: object) -> bytes:
    ds = build_canary_dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def bare_canary(implicit: bool) -> bytes:
    """The canary dataset without preamble, DICM or meta group, as old modalities write it."""
    ds = build_canary_dataset()
    del ds.file_meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


# --- HL7 v2 and X12 samples carrying the canary ------------------------------------------------

HL7_ADT = (
    "MSH|^~\\&|ADT1|PWHOSP|EHR|PWHOSP|20210314101500||ADT^A01^ADT_A01|PWMSG0001|P|2.5.1\r"
    "EVN|A01|20210314101500\r"
    f"PID|1||{CANARY_PATIENT_ID}^^^PWHOSP^MR||{CANARY_PATIENT_NAME}||{CANARY_BIRTH_DATE}|F|||"
    "1 CANARY LANE^^PWTOWN^ST^99999||555-0100|555-0199||||PWACCT-0001|999-00-0001|PWDL-0001\r"
    "NK1|1|PHIWATCHCANARY^OTTO^QX|SPO|1 CANARY LANE^^PWTOWN^ST^99999\r"
    f"PV1|1|I|W1^101^1|||||{CANARY_REFERRING_PHYSICIAN}\r"
    "GT1|1||PHIWATCHCANARY^ZELDA^QX\r"
    "IN1|1|PWPLAN|PWINS01|PWCANARY INSURANCE\r"
    "OBX|1|TX|NOTE^Note||PHIWATCHCANARY free text result\r"
    "NTE|1||PHIWATCHCANARY comment\r"
    "MSH|^~\\&|ADT1|PWHOSP|EHR|PWHOSP|20210314101600||ADT^A08|PWMSG0002|P|2.5.1\r"
    f"PID|1||{CANARY_PATIENT_ID}^^^PWHOSP^MR||\"\"\r"
).encode("ascii")

HL7_NAMES = {
    "PID-3 patient identifier list",
    "PID-5 patient name",
    "PID-7 date of birth",
    "PID-11 patient address",
    "PID-13 home phone",
    "PID-14 business phone",
    "PID-18 patient account number",
    "PID-19 SSN",
    "PID-20 driver's licence number",
    "NK1 next of kin",
    "GT1 guarantor",
    "IN1 insurance",
    "OBX-5 observation value",
    "NTE-3 comment",
}

ISA = b"ISA*00*          *00*          *ZZ*PWSUBMITTER    *ZZ*PWRECEIVER     *210314*1015*^*00501*000000001*0*P*:~"
X12_837 = (
    ISA
    + b"\nGS*HC*PWSUBMITTER*PWRECEIVER*20210314*1015*1*X*005010X222A1~\n"
    b"ST*837*0001*005010X222A1~\n"
    b"BHT*0019*00*PW0001*20210314*1015*CH~\n"
    b"NM1*41*2*PW BILLING*****46*PW123~\n"
    + f"NM1*IL*1*PHIWATCHCANARY*ZELDA****MI*{CANARY_PATIENT_ID}~\n".encode()
    + b"N3*1 CANARY LANE~\nN4*PWTOWN*ST*99999~\n"
    + f"DMG*D8*{CANARY_BIRTH_DATE}*F~\n".encode()
    + b"REF*SY*999000001~\n"
    + f"CLM*{CANARY_ACCESSION}*100***11:B:1*Y*A*Y*Y~\n".encode()
    + b"DTP*472*D8*20210314~\nSE*11*0001~\nGE*1*1~\nIEA*1*000000001~\n"
)
X12_835 = (
    ISA.replace(b"*P*:~", b"*P*>|")
    + b"GS*HP*PWPAYER*PWPROVIDER*20210314*1015*2*X*005010X221A1|"
    b"ST*835*0002|BPR*I*80*C*ACH|TRN*1*PW12345*1|"
    + f"CLP*{CANARY_ACCESSION}*1*100*80**12*PWCLAIM1|".encode()
    + f"NM1*QC*1*PHIWATCHCANARY*ZELDA****MI*{CANARY_PATIENT_ID}|".encode()
    + f"REF*EA*{CANARY_PATIENT_ID}|".encode()
    + b"SE*7*0002|GE*1*2|IEA*1*000000001|"
)


# --- DICOM ------------------------------------------------------------------------------------


def test_canary_part10_names_phi_without_values():
    found = sniff(canary_bytes(), "IM00001")
    assert (found.kind, found.verified, found.status, found.truncated) == ("dicom", True, "ok", False)
    assert CANARY_DICOM_PHI <= set(found.phi_attributes)
    assert set(found.phi_attributes) <= DICOM_PHI_KEYWORDS
    assert "CT Image Storage" in (found.detail or "") and "modality CT" in (found.detail or "")
    no_canary(found)


@pytest.mark.parametrize("implicit", [False, True])
def test_dicom_without_preamble(implicit):
    data = bare_canary(implicit)
    assert data[128:132] != b"DICM"
    found = sniff(data, "")
    assert (found.kind, found.verified, found.status) == ("dicom", True, "ok")
    assert CANARY_DICOM_PHI <= set(found.phi_attributes)
    assert ("Implicit" if implicit else "Explicit") in (found.detail or "")
    no_canary(found)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("CT_small.dcm", "Explicit VR Little Endian"),
        ("MR_small_implicit.dcm", "Implicit VR Little Endian"),
        ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
        ("image_dfl.dcm", "Deflated Explicit VR Little Endian"),
        ("ExplVR_LitEndNoMeta.dcm", "no preamble"),
        ("ExplVR_BigEndNoMeta.dcm", "no preamble"),
        ("zipMR.gz", "gzip-compressed"),
    ],
)
def test_pydicom_test_files(name, expected):
    found = sniff(pydicom_file(name), name)
    assert (found.kind, found.verified, found.status) == ("dicom", True, "ok")
    assert expected in (found.detail or "")
    assert found.phi_attributes and set(found.phi_attributes) <= DICOM_PHI_KEYWORDS


def test_file_that_is_itself_truncated_is_malformed_not_a_crash():
    data = pydicom_file("rtplan_truncated.dcm")
    found = sniff(data, complete=True)
    assert (found.kind, found.status, found.truncated) == ("dicom", "malformed", False)
    assert "ends inside" in (found.detail or "")


@pytest.mark.parametrize("name", ["DICOMDIR", "DICOMDIR-implicit", "DICOMDIR-bigEnd"])
def test_dicomdir_records_counted(name):
    found = sniff(pydicom_file(name), "DICOMDIR")
    assert (found.kind, found.verified, found.status) == ("dicomdir", True, "ok")
    assert found.records == 52
    assert "2 PATIENT" in (found.detail or "") and "6 STUDY" in (found.detail or "")
    assert "13 SERIES" in (found.detail or "") and "31 IMAGE" in (found.detail or "")
    assert {"PatientName", "PatientID"} <= set(found.phi_attributes)


def test_dicomdir_counted_within_the_budget():
    data = pydicom_file("DICOMDIR")
    counts = []
    for budget in (1000, 3000, 6000, 9000):
        found = sniff(data[:budget], "DICOMDIR", budget=budget)
        assert (found.kind, found.status, found.truncated) == ("dicomdir", "truncated", True)
        counts.append(found.records or 0)
    assert counts == sorted(counts) and 0 < counts[-1] < 52


def test_burned_in_annotation_is_flagged():
    found = sniff(canary_variant(BurnedInAnnotation="YES"))
    assert "BurnedInAnnotation" in found.phi_attributes
    assert "BurnedInAnnotation YES" in (found.detail or "")
    assert "BurnedInAnnotation" not in sniff(canary_variant(BurnedInAnnotation="NO")).phi_attributes


def test_blank_phi_is_not_named_and_long_phi_is():
    found = sniff(canary_variant(PatientName="", PatientID="  ", PatientComments="PWCANARY " * 600))
    assert "PatientName" not in found.phi_attributes and "PatientID" not in found.phi_attributes
    assert "PatientComments" in found.phi_attributes  # longer than the defer size: present, never read
    no_canary(found)


def test_dicm_then_garbage_ends_in_a_status():
    rng = random.Random(15)
    for _ in range(300):
        data = b"\x00" * 128 + b"DICM" + rng.randbytes(rng.randint(0, 4000))
        found = sniff(data, "x.dcm")
        assert found.kind in ("dicom", "dicomdir")
        assert found.status in ("malformed", "truncated", "ok")
    found = sniff(b"\x00" * 128 + b"DICM" + b"\xff" * 2000)
    assert (found.kind, found.verified, found.status) == ("dicom", False, "malformed")


def test_every_truncation_of_the_canary_ends_in_a_status():
    data = canary_bytes()
    for cut in range(0, len(data) + 1):
        for complete in (False, True):
            found = sniff(data[:cut], "IM00001", complete=complete)
            assert found.status != "error", (cut, complete)
            if cut >= 132:
                assert found.kind == "dicom"
            if found.truncated:
                assert not complete and found.status == "truncated"
            no_canary(found)


def test_mutated_dicom_never_crashes_nor_leaks():
    rng = random.Random(7)
    bases = [canary_bytes(), pydicom_file("DICOMDIR"), bare_canary(True)]
    for _ in range(1500):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        found = sniff(bytes(data), "IM00001")
        assert found.status != "error"
        no_canary(found)


def test_no_canary_in_logs_or_warnings(caplog, recwarn):
    caplog.set_level(logging.DEBUG)
    rng = random.Random(3)
    samples = [canary_bytes(), bare_canary(False), HL7_ADT, X12_837, gzip.compress(canary_bytes())]
    for data in list(samples):
        for _ in range(200):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            samples.append(bytes(mutated))
    for data in samples:
        sniff(data, "IM00001")
        sniff(data[: len(data) // 2], "IM00001", complete=False)
    logged = caplog.text + " ".join(str(warning.message) for warning in recwarn)
    for value in CANARY_STRINGS:
        assert value not in logged


def test_pydicom_never_logs_what_it_reads_during_a_sniff(caplog, recwarn):
    """pydicom logs a Specific Character Set it does not know; a hostile file can put a name there."""
    planted = canary_variant(SpecificCharacterSet=["ISO_IR 100", CANARY_NAME_TOKENS[0]])
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pydicom")  # a scan in this process silences it
    caplog.clear()
    recwarn.clear()
    found = sniff(planted, "IM00001")
    assert (found.kind, found.status) == ("dicom", "ok")
    assert CANARY_NAME_TOKENS[0] not in caplog.text
    assert not [warning for warning in recwarn if CANARY_NAME_TOKENS[0] in str(warning.message)]
    logging.getLogger("pydicom").warning("outside a sniff")
    assert "outside a sniff" in caplog.text  # the filter is scoped to sniffing


def test_hostile_lengths_and_nesting_stay_bounded():
    meta = canary_bytes()[:132]
    meta_group = canary_bytes()[132:]
    end_of_meta = meta_group.index(b"\x08\x00")  # first dataset element
    header = meta + meta_group[:end_of_meta]
    # PatientName claiming 4 GB; a private OB of 1 GB; 4000 nested undefined-length sequences.
    huge_name = header + struct.pack("<HH2sHL", 0x0010, 0x0010, b"UN", 0, 0xFFFFFFF0) + b"PWCANARY" * 8
    huge_ob = header + struct.pack("<HH2sHL", 0x0009, 0x0010, b"OB", 0, 1 << 30) + bytes(64)
    nested = header + (struct.pack("<HH2sHL", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
    )) * 3000
    tracemalloc.start()
    try:
        for data in (huge_name, huge_ob, nested):
            started = time.monotonic()
            found = sniff(data, "x.dcm", budget=DEFAULT_BUDGET, complete=False)
            assert time.monotonic() - started < 5
            assert found.kind == "dicom" and found.status in ("truncated", "malformed")
            no_canary(found)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


def test_confidentiality_profile_never_keeps_our_phi_keywords():
    """Every DICOM_PHI_KEYWORDS attribute in PS3.15 table E.1-1 has a Basic Profile action other than K."""
    if not PROFILE.is_file():
        pytest.skip("PS3.15 reference data not present (e.g. in CI)")
    rows = json.loads(PROFILE.read_text(encoding="utf-8"))
    actions = {row["id"].lower(): row.get("basicProfile", "") for row in rows}
    checked = 0
    for keyword in sorted(DICOM_PHI_KEYWORDS):
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        action = actions.get(f"{tag:08x}")
        if action is None:
            continue
        checked += 1
        assert action and action != "K", f"{keyword}: basic profile action {action!r}"
    assert checked >= len(DICOM_PHI_KEYWORDS) // 2


# --- HL7 v2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
@pytest.mark.parametrize("mllp", [False, True])
def test_hl7_adt(ending, mllp):
    data = HL7_ADT.replace(b"\r", ending)
    if mllp:
        first, second = data.split(b"MSH", 2)[1:]
        data = b"\x0bMSH" + first + b"\x1c\r\x0bMSH" + second + b"\x1c\r"
    found = sniff(data, "feed.hl7")
    assert (found.kind, found.verified, found.status) == ("hl7", True, "ok")
    assert found.records == 2
    assert found.hl7_message_types == ["ADT^A01", "ADT^A08"]
    assert set(found.phi_attributes) == HL7_NAMES | {"PV1-8 referring doctor"}
    assert "v2.5.1" in (found.detail or "")
    no_canary(found)


def test_hl7_other_separators_and_bad_header():
    data = HL7_ADT.replace(b"|", b"#").replace(b"^~\\&", b"$~\\%").replace(b"^", b"$")
    found = sniff(data)
    assert (found.kind, found.verified) == ("hl7", True)
    assert "PID-5 patient name" in found.phi_attributes
    bad = sniff(b"MSHA^~\\&AB\rPID|1||X\r")
    assert (bad.kind, bad.verified, bad.status, bad.records) == ("hl7", False, "malformed", 0)


def test_hl7_multi_megabyte_single_line_is_linear():
    """8 MB with no segment end at all, then the same with one: a few copies, no quadratic work."""
    header = b"MSH|^~\\&|A|B|C|D|20210314||ORU^R01|1|P|2.3\rPID|1||" + CANARY_PATIENT_ID.encode() + b"||"
    timings = []
    tracemalloc.start()
    try:
        for size in (2_000_000, 8_000_000):
            line = header + b"PHIWATCHCANARY^" * (size // 30) + b"|" * (size // 2)
            started = time.perf_counter()
            found = sniff(line, budget=len(line) + 1)
            timings.append(time.perf_counter() - started)
            assert (found.kind, found.status) == ("hl7", "ok")
            assert {"PID-3 patient identifier list", "PID-5 patient name"} <= set(found.phi_attributes)
            no_canary(found)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert timings[1] < 5
    assert peak < 8 * 8_000_000
    cut = sniff(header + b"X" * 100_000, budget=50_000)
    assert (cut.kind, cut.truncated, cut.status) == ("hl7", True, "truncated")


# --- X12 --------------------------------------------------------------------------------------


def test_x12_837():
    assert len(ISA) == 106
    found = sniff(X12_837, "claims.837")
    assert (found.kind, found.verified, found.status) == ("x12", True, "ok")
    assert (found.transaction_set, found.records) == ("837", 1)
    assert set(found.phi_attributes) == {
        "NM1*IL subscriber name and member id",
        "N3 address",
        "N4 city, state and postal code",
        "DMG birth date and sex",
        "REF*SY social security number",
        "CLM01 patient control number",
        "DTP dates",
    }
    assert "005010X222A1" in (found.detail or "") and "health care claim" in (found.detail or "")
    no_canary(found)


def test_x12_835_other_terminator():
    found = sniff(X12_835, "remit.835")
    assert (found.kind, found.verified, found.status, found.transaction_set) == ("x12", True, "ok", "835")
    assert set(found.phi_attributes) == {"NM1*QC patient name and id", "REF*EA medical record number"}
    no_canary(found)


def test_x12_unpadded_isa_and_truncation():
    unpadded = X12_837.replace(b"*          *", b"**").replace(b"PWSUBMITTER    ", b"PWSUBMITTER")
    found = sniff(unpadded)
    assert (found.kind, found.verified, found.transaction_set) == ("x12", True, "837")
    assert "without fixed-width padding" in (found.detail or "")
    cut = sniff(X12_837[:300], budget=300)
    assert (cut.kind, cut.status, cut.truncated) == ("x12", "truncated", True)
    assert sniff(b"ISA*00*").status in ("truncated", "malformed")
    no_canary(cut)


# --- archives ---------------------------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_entry_names_are_masked():
    data = _zip(
        {
            f"{CANARY_PATIENT_NAME} {CANARY_PATIENT_ID}/IM00001.dcm": canary_bytes(),
            "DICOM/SE000001/00000002": canary_bytes(),
            "DICOMDIR": b"x",
            f"{CANARY_INSTITUTION}.hl7": HL7_ADT,
        }
    )
    found = sniff(data, "export.zip")
    assert (found.kind, found.verified, found.status) == ("archive", True, "ok")
    assert found.entries == ["*/IM#####.dcm", "DICOM/SE######/########", "DICOMDIR", "*.hl7"]
    assert "central directory" in (found.detail or "") and "2 dicom" in (found.detail or "")
    no_canary(found)


def test_zip_central_directory_beyond_the_budget_is_said():
    data = _zip({f"DICOM/IM{index:05d}.dcm": canary_bytes() + bytes(4000) for index in range(40)})
    found = sniff(data[:20_000], "export.zip", budget=20_000)
    assert (found.kind, found.status, found.truncated) == ("archive", "truncated", True)
    assert "central directory is beyond the byte budget" in (found.detail or "")
    assert found.entries and 0 < len(found.entries) < 40


def test_tar_gz_entries_and_gzip_of_one_dicom():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in (f"{CANARY_PATIENT_NAME}/IM00001.dcm", "ST000000/SE000000/IM00002", "msg.hl7"):
            info = tarfile.TarInfo(name)
            info.size = len(canary_bytes())
            archive.addfile(info, io.BytesIO(canary_bytes()))
    found = sniff(buffer.getvalue(), "export.tgz")
    assert (found.kind, found.status) == ("archive", "ok")
    assert found.entries == ["*/IM#####.dcm", "ST######/SE######/IM#####", "*.hl7"]
    no_canary(found)
    single = sniff(gzip.compress(canary_bytes()), "IM00001.dcm.gz")
    assert (single.kind, single.verified) == ("dicom", True) and "gzip-compressed" in (single.detail or "")
    assert CANARY_DICOM_PHI <= set(single.phi_attributes)
    no_canary(single)


def test_compression_bomb_named_dcm_stays_bounded(tmp_path):
    assert len(BOMB) < DEFAULT_BUDGET  # the whole bomb fits the budget: only max_length bounds it
    tracemalloc.start()
    try:
        found = sniff(BOMB, "IM00001.dcm")
        bomb = tmp_path / "IM00001.dcm"
        bomb.write_bytes(BOMB)
        summary = sniff_path(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (found.kind, found.status) == ("archive", "ok")
    assert f"{DEFAULT_BUDGET} bytes decompressed (bounded by the byte budget)" in (found.detail or "")
    assert summary.kinds["archive"].verified == 1 and summary.bytes_read <= len(BOMB)
    assert peak < 4 * DEFAULT_BUDGET + 2 * len(BOMB) + 1024 * 1024


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kind",
    [
        ("scan.dcm", "dicom"),
        ("SCAN.DICOM", "dicom"),
        ("DICOMDIR", "dicomdir"),
        ("export/dicomdir", "dicomdir"),
        ("IM00001", "dicom"),
        ("DICOM/PT000000/ST000000/SE000000/IM00000J", "dicom"),
        ("DICOM/00000001", "dicom"),
        ("77654033/MR700/4648", "dicom"),
        ("00000001", None),
        ("reports/00000001", None),
        ("feed.hl7", "hl7"),
        ("claims.edi", "x12"),
        ("batch.x12", "x12"),
        ("claim.837", "x12"),
        ("remit.835", "x12"),
        ("backup.tar.gz", "archive"),
        ("IM#####.dcm", "dicom"),
        ("DICOM/########", "dicom"),
        ("notes.txt", None),
        ("", None),
    ],
)
def test_kind_from_name(name, kind):
    assert kind_from_name(name) == kind


def test_safe_entry_name_keeps_shape_not_identity():
    assert safe_entry_name(f"{CANARY_PATIENT_NAME} 12345/IM00001.dcm") == "*/IM#####.dcm"
    assert safe_entry_name("77654033/MR700/4648") == "########/MR###/####"
    assert safe_entry_name("1.2.840.113619.2.55.3.604688119/x.SMITH") == "*/*"
    assert safe_entry_name(b"DICOM\\\xff\xfe.dcm") == "DICOM/*.dcm"


# --- walking a local tree ---------------------------------------------------------------------


def make_tree(root: Path) -> None:
    series = root / "DICOM" / "PT000000" / "ST000000" / "SE000000"
    series.mkdir(parents=True)
    for index in range(5):
        (series / f"IM{index:05d}").write_bytes(canary_bytes())
    (root / "DICOM" / "DICOMDIR").write_bytes(pydicom_file("DICOMDIR"))
    (root / "DICOM" / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 300)
    (root / "DICOM" / "IM99999").write_bytes(b"")  # empty: the name alone says DICOM
    (root / "feeds").mkdir()
    (root / "feeds" / "adt.hl7").write_bytes(HL7_ADT)
    (root / "feeds" / "claims.837").write_bytes(X12_837)
    (root / "export.zip").write_bytes(_zip({"DICOM/IM00001.dcm": canary_bytes()}))
    (root / "readme.txt").write_text("nothing here\n")


def test_sniff_path_tree(tmp_path):
    make_tree(tmp_path)
    summary = sniff_path(tmp_path)
    assert (summary.target, summary.status) == ("directory", "ok")
    assert summary.files_seen == summary.files_sniffed == 12
    assert summary.kinds["dicom"].verified == 5 and summary.kinds["dicom"].unverified == 1
    assert summary.kinds["dicom"].estimated == 1
    assert summary.kinds["dicomdir"].verified == 1 and summary.records["dicomdir"] == 52
    assert summary.kinds["hl7"].verified == 1 and summary.records["hl7"] == 2
    assert summary.kinds["x12"].verified == 1 and summary.transaction_sets == ["837"]
    assert summary.kinds["archive"].verified == 1
    assert CANARY_DICOM_PHI <= set(summary.phi_attributes["dicom"])
    assert "PID-5 patient name" in summary.phi_attributes["hl7"]
    assert summary.hl7_message_types == ["ADT^A01", "ADT^A08"]
    assert summary.content_statuses["malformed"] == 1
    assert 0 < summary.bytes_read < 12 * DEFAULT_BUDGET
    text = no_canary(summary)
    assert str(tmp_path) not in text and "PT000000" not in text and "adt" not in text
    json.loads(text)
    SniffSummary.model_json_schema()


def test_sniff_path_single_file_and_missing(tmp_path):
    (tmp_path / "IM00001").write_bytes(canary_bytes())
    one = sniff_path(tmp_path / "IM00001")
    assert (one.target, one.files_sniffed, one.kinds["dicom"].verified) == ("file", 1, 1)
    missing = sniff_path(tmp_path / "nope")
    assert (missing.target, missing.status) == ("missing", "error")


def test_sniff_path_reads_at_most_the_budget(tmp_path):
    big = canary_variant(Rows=256, Columns=256, PixelData=bytes(256 * 256 * 2))
    (tmp_path / "big.dcm").write_bytes(big)
    (tmp_path / "blob.bin").write_bytes(os.urandom(300_000))
    summary = sniff_path(tmp_path, byte_budget=4096)
    assert summary.bytes_read <= 2 * 4096
    assert summary.kinds["dicom"].verified == 1


def test_symlinks_are_never_followed_and_loops_are_reported(tmp_path):
    make_tree(tmp_path)
    os.symlink(".", tmp_path / "DICOM" / "loop")  # back to an ancestor
    os.symlink("ping", tmp_path / "pong")
    os.symlink("pong", tmp_path / "ping")  # a chain that never ends: ELOOP
    os.symlink("feeds/adt.hl7", tmp_path / "adt-link.hl7")
    os.symlink("/nonexistent/target", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo.dcm")  # opening it would block: it must never be opened
    summary = sniff_path(tmp_path)
    assert summary.symlink_loops == 3
    assert summary.symlinks_skipped == 2
    assert summary.special_files == 1
    assert summary.files_sniffed == 12 and summary.kinds["hl7"].verified == 1
    no_canary(summary)


def test_tree_deeper_than_max_depth(tmp_path):
    deep = tmp_path
    for level in range(40):
        deep = deep / f"SE{level:06d}"
    deep.mkdir(parents=True)
    (deep / "IM00001").write_bytes(canary_bytes())
    (tmp_path / "SE000000" / "IM00002").write_bytes(canary_bytes())
    summary = sniff_path(tmp_path, max_depth=20)
    assert summary.status == "limited"
    assert summary.directories_beyond_depth == 1
    assert summary.files_sniffed == 1 and summary.kinds["dicom"].verified == 1
    assert sniff_path(tmp_path, max_depth=50).files_sniffed == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_status(tmp_path):
    secret = tmp_path / "IM00001"
    secret.write_bytes(canary_bytes())
    secret.chmod(0)
    summary = sniff_path(tmp_path)
    assert summary.errors == {"permission-denied": 1}
    assert summary.error_samples[0].status == "permission-denied"
    assert summary.kinds["dicom"].estimated == 1


def test_hundred_thousand_entries_bounded_in_time_and_memory(tmp_path):
    folder = tmp_path / "DICOM"
    folder.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    started = time.monotonic()
    for index in range(100_000):
        os.close(os.open(folder / f"IM{index:06d}", flags, 0o600))
    (folder / "IM000000").write_bytes(canary_bytes())
    created = time.monotonic() - started
    print(f"created in {created:.1f} s")
    tracemalloc.start()
    try:
        started = time.monotonic()
        cpu_started = time.process_time()
        summary = sniff_path(tmp_path, max_files=10_000)
        cpu = time.process_time() - cpu_started
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"walked in {elapsed:.1f} s ({cpu:.1f} s of CPU), peak {peak / 1e6:.1f} MB")
    assert summary.status == "limited" and summary.file_limit_reached
    assert summary.files_seen == 100_000
    assert summary.files_sniffed == 10_000 and summary.files_estimated_by_name == 90_000
    dicom = summary.kinds["dicom"]
    assert dicom.verified + dicom.estimated == 100_000
    # The walk's own CPU time (user + system), not the wall clock: creating 100,000 files took 15-88 s
    # and the walk 8-17 s of wall time on a loaded machine (other processes' CPU and disk), while the
    # walk's CPU time stays ~2 s under tracemalloc (0.4 s without). 10 s still catches a walk that
    # turns quadratic or reads more than its bounds.
    assert cpu < 10
    assert peak < 32 * 1024 * 1024
    listed = sniff_path(tmp_path, max_files=10, max_listed=1_000)
    assert listed.listing_limit_reached and listed.files_seen < 1_000
