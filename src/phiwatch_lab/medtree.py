"""The lab's medical file tree, served by every file-repository server (FTP, SMB, rsync, NFS, S3, HTTP).

It holds pydicom test images, the canary instance, a DICOMDIR, HL7 v2 ADT feeds and X12
837 claims carrying canary values, a folder loop through a symbolic link, and 300 small
numerically named images in an imaging folder (more than a probe sniffs per folder, so
the rest are counted by name). Folder and file names carry canary values on purpose: a
scanner must never repeat them.
"""

from __future__ import annotations

import os
import shutil
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from .canary import (
    CANARY_ACCESSION,
    CANARY_BIRTH_DATE,
    CANARY_PATIENT_ID,
    CANARY_PATIENT_NAME,
    CANARY_REFERRING_PHYSICIAN,
    canary_bytes,
)
from .datasets import sample_files

TREE_FILES: tuple[str, ...] = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")
SERIES_SIZE = 300  # IM00001 .. IM00300 in IMAGES/SE000001
PROBE_PER_FOLDER = 25  # phiwatch's default WalkLimits.per_directory, for the manifest's measured counts
HL7_FILES = 3
X12_FILES = 2
# A folder named after the canary patient, as viewers export them: it must never be reported.
CANARY_FOLDER = f"{CANARY_PATIENT_NAME.replace('^', ' ')} {CANARY_PATIENT_ID}"


def _hl7(index: int) -> bytes:
    return (
        f"MSH|^~\\&|ADT1|PWHOSP|EHR|PWHOSP|2021031410{index:02d}00||ADT^A01^ADT_A01|PWFTP{index:04d}|P|2.5.1\r"
        "EVN|A01|20210314101500\r"
        f"PID|1||{CANARY_PATIENT_ID}^^^PWHOSP^MR||{CANARY_PATIENT_NAME}||{CANARY_BIRTH_DATE}|F|||"
        "1 CANARY LANE^^PWTOWN^ST^99999||555-0100\r"
        f"PV1|1|I|W1^101^1|||||{CANARY_REFERRING_PHYSICIAN}\r"
    ).encode("ascii")


def _x12(index: int) -> bytes:
    return (
        b"ISA*00*          *00*          *ZZ*PWSUBMITTER    *ZZ*PWRECEIVER     *210314*1015*^*00501*"
        + f"{index:09d}".encode()
        + b"*0*P*:~\nGS*HC*PWSUBMITTER*PWRECEIVER*20210314*1015*1*X*005010X222A1~\n"
        b"ST*837*0001*005010X222A1~\nBHT*0019*00*PW0001*20210314*1015*CH~\n"
        + f"NM1*IL*1*PHIWATCHCANARY*ZELDA****MI*{CANARY_PATIENT_ID}~\n".encode()
        + b"N3*1 CANARY LANE~\nN4*PWTOWN*ST*99999~\n"
        + f"DMG*D8*{CANARY_BIRTH_DATE}*F~\nCLM*{CANARY_ACCESSION}*100***11:B:1*Y*A*Y*Y~\n".encode()
        + b"SE*8*0001~\nGE*1*1~\n"
        + f"IEA*1*{index:09d}~\n".encode()
    )


def _small_image() -> bytes:
    """A small synthetic Secondary Capture instance (no canary: it is copied 300 times)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.77.900")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "SYNTH^SERIES"
    ds.PatientID = "PWSYN-0900"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77.9"
    ds.Modality = "OT"
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def build_tree(root: Path) -> dict:
    """Write the anonymous tree; return what it holds (kind -> files), as the manifest states it."""
    shutil.rmtree(root, ignore_errors=True)
    dicom = root / "DICOM" / CANARY_FOLDER
    dicom.mkdir(parents=True)
    images = sample_files(TREE_FILES)
    for path in images:
        shutil.copyfile(path, dicom / path.name)
    (dicom / f"{CANARY_PATIENT_ID}.dcm").write_bytes(canary_bytes())
    dicomdir = 0
    from pydicom.data import get_testdata_file

    try:
        source = get_testdata_file("DICOMDIR", download=False)
    except Exception:  # absent from the wheel: the tree has no DICOMDIR then
        source = None
    if isinstance(source, str) and Path(source).is_file():
        shutil.copyfile(source, root / "DICOM" / "DICOMDIR")
        dicomdir = 1
    hl7 = root / "HL7"
    hl7.mkdir()
    for index in range(1, HL7_FILES + 1):
        (hl7 / f"ADT_{CANARY_PATIENT_ID}_{index}.hl7").write_bytes(_hl7(index))
    os.symlink("..", hl7 / "back")  # a folder loop: HL7/back -> /
    x12 = root / "X12"
    x12.mkdir()
    for index in range(1, X12_FILES + 1):
        (x12 / f"claims_{index}.837").write_bytes(_x12(index))
    series = root / "IMAGES" / "SE000001"
    series.mkdir(parents=True)
    image = _small_image()
    for index in range(1, SERIES_SIZE + 1):
        (series / f"IM{index:05d}").write_bytes(image)
    (root / "README.txt").write_bytes(b"Exports for the radiology department.\n")
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return {
        "files": {
            "dicom": len(images) + 1 + SERIES_SIZE, "dicomdir": dicomdir, "hl7": HL7_FILES, "x12": X12_FILES,
        },
        "dicom_outside_series": len(images) + 1,
    }


def probe_counts(tree: dict) -> dict:
    """What phiwatch's default walk (25 files sniffed per folder) counts in the tree, per kind."""
    files = tree.get("files", {})
    return {
        "dicom": {
            "verified": tree.get("dicom_outside_series", 0) + min(PROBE_PER_FOLDER, SERIES_SIZE),
            "estimated": max(0, SERIES_SIZE - PROBE_PER_FOLDER),
        },
        "dicomdir": {"verified": files.get("dicomdir", 0), "estimated": 0},
        "hl7": {"verified": files.get("hl7", 0), "estimated": 0},
        "x12": {"verified": files.get("x12", 0), "estimated": 0},
    }
