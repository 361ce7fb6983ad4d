"""Canary values planted in the lab so that tests can prove no PHI leaks.

Every string here is unique on purpose: grep any phiwatch output (reports, logs,
databases) for ``CANARY_STRINGS``; a hit means patient data was copied.
"""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

CANARY_PATIENT_NAME = "PHIWATCHCANARY^ZELDA^QX"
CANARY_PATIENT_ID = "PWCANARY-7Q3Z-0001"
CANARY_BIRTH_DATE = "19010203"
CANARY_INSTITUTION = "PHIWATCH CANARY HOSPITAL QX"
CANARY_REFERRING_PHYSICIAN = "PWCANARYREF^OTTO^QX"
CANARY_ACCESSION = "PWCANARYACC1"
CANARY_STUDY_DESCRIPTION = "PWCANARY STUDY CT QX"
# The family-name tokens catch a name that a tool reformats ("ZELDA PHIWATCHCANARY").
CANARY_NAME_TOKENS = ("PHIWATCHCANARY", "PWCANARYREF")

# Deterministic UIDs: the same canary in every lab, on every machine.
CANARY_STUDY_UID = generate_uid(entropy_srcs=["phiwatch-lab-canary-study"])
CANARY_SERIES_UID = generate_uid(entropy_srcs=["phiwatch-lab-canary-series"])
CANARY_SOP_UID = generate_uid(entropy_srcs=["phiwatch-lab-canary-instance"])
CANARY_STUDY_DATE = "20210314"

CANARY_STRINGS: list[str] = [
    CANARY_PATIENT_NAME,
    CANARY_PATIENT_ID,
    CANARY_BIRTH_DATE,
    CANARY_INSTITUTION,
    CANARY_REFERRING_PHYSICIAN,
    CANARY_ACCESSION,
    CANARY_STUDY_DESCRIPTION,
    *CANARY_NAME_TOKENS,
]

# Study-level attributes of the canary, as a query/retrieve SCP would return them.
CANARY_STUDY: dict[str, str | int | list[str]] = {
    "PatientName": CANARY_PATIENT_NAME,
    "PatientID": CANARY_PATIENT_ID,
    "PatientBirthDate": CANARY_BIRTH_DATE,
    "PatientSex": "F",
    "StudyInstanceUID": CANARY_STUDY_UID,
    "StudyDate": CANARY_STUDY_DATE,
    "StudyTime": "101500",
    "StudyID": "PWC1",
    "AccessionNumber": CANARY_ACCESSION,
    "ReferringPhysicianName": CANARY_REFERRING_PHYSICIAN,
    "InstitutionName": CANARY_INSTITUTION,
    "StudyDescription": CANARY_STUDY_DESCRIPTION,
    "ModalitiesInStudy": ["CT"],
    "NumberOfStudyRelatedInstances": 1,
}


def build_canary_dataset() -> Dataset:
    """A small, valid CT image (8x8, 16 bit) that carries every canary value."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = CANARY_SOP_UID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = CANARY_SOP_UID
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
        "InstitutionName",
        "StudyDescription",
    ):
        setattr(ds, keyword, CANARY_STUDY[keyword])
    ds.Modality = "CT"
    ds.SeriesInstanceUID = CANARY_SERIES_UID
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SeriesDate = CANARY_STUDY_DATE
    ds.ContentDate = CANARY_STUDY_DATE
    ds.Manufacturer = "PHIWATCH LAB"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["phiwatch-lab-canary-frame"])
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 8
    ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(128))
    return ds


def canary_bytes() -> bytes:
    """The canary as a DICOM Part 10 file (preamble, meta header, dataset)."""
    from io import BytesIO

    buffer = BytesIO()
    build_canary_dataset().save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
