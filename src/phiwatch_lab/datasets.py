"""The data the lab serves: pydicom's bundled test images and synthetic studies.

pydicom's test files hold synthetic patients only. Nothing here is ever printed:
callers report counts.
"""

from __future__ import annotations

from pathlib import Path

from .canary import CANARY_STUDY

# The AE title of the lab's pynetdicom SCP (it accepts any called AE title anyway).
ANY_SCP_AE_TITLE = "ANY-SCP"

# Real images from the pydicom wheel that Orthanc 1.10 stores; each has its own SOP
# Instance UID. Files missing from the wheel or refused by a server are skipped.
SAMPLE_FILES: tuple[str, ...] = (
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose_rle.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "liver_1frame.dcm",
    "examples_overlay.dcm",
    "image_dfl.dcm",
    "JPEG-lossy.dcm",
    "SC_rgb_small_odd.dcm",
    "693_J2KI.dcm",
)

# The few files dcmqrscp indexes (plus the canary).
DCMQR_FILES: tuple[str, ...] = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")


def sample_files(names: tuple[str, ...] = SAMPLE_FILES) -> list[Path]:
    """Paths of the named pydicom test files that are present in the installed wheel."""
    from pydicom.data import get_testdata_file

    found: list[Path] = []
    for name in names:
        try:
            path = get_testdata_file(name, download=False)
        except Exception:  # a missing or unreadable file is simply skipped
            path = None
        if isinstance(path, str) and Path(path).is_file():
            found.append(Path(path))
    return found


Study = dict[str, str | int | list[str]]


def synthetic_studies() -> list[Study]:
    """Five synthetic studies in different years; the last one is the canary."""
    rows = [
        ("SYNTH^ALICE", "PWSYN-0001", "19700101", "F", "20090412", ["CT"], 120, "CT CHEST"),
        ("SYNTH^BORIS", "PWSYN-0002", "19820715", "M", "20140923", ["MR"], 64, "MR BRAIN"),
        ("SYNTH^CARLA", "PWSYN-0003", "19951130", "F", "20180105", ["CR", "DX"], 3, "XR HAND"),
        ("SYNTH^DENIS", "PWSYN-0004", "19600228", "M", "20230618", ["US"], 12, "US ABDOMEN"),
    ]
    studies: list[Study] = []
    for index, (name, pid, birth, sex, date, mods, count, desc) in enumerate(rows, start=1):
        studies.append(
            {
                "PatientName": name,
                "PatientID": pid,
                "PatientBirthDate": birth,
                "PatientSex": sex,
                "StudyInstanceUID": f"1.2.826.0.1.3680043.8.498.77.{index}",
                "StudyDate": date,
                "StudyTime": "093000",
                "StudyID": f"S{index}",
                "AccessionNumber": f"PWSYNACC{index}",
                "ReferringPhysicianName": "SYNTH^REFERRER",
                "InstitutionName": "PHIWATCH SYNTHETIC CLINIC",
                "StudyDescription": desc,
                "ModalitiesInStudy": mods,
                "NumberOfStudyRelatedInstances": count,
            }
        )
    studies.append(dict(CANARY_STUDY))
    return studies
