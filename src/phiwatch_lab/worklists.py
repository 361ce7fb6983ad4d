"""Lab plug-ins for DICOM query semantics: dcmtk's worklist SCP and two quirky Q/R SCPs.

- wlmscpfs (offset 80): dcmtk 3.6.7's Modality Worklist SCP serving dcmtk's own example
  worklist (the ten dumps in /usr/share/doc/dcmtk/examples/wlistdb/OFFIS, made into files
  with dump2dcm) plus one item for the canary patient, under called AE title OFFIS. It
  listens on every address (no bind option), like Orthanc and dcmqrscp.
- pynetdicom-series (offset 81): one STUDY-level response per series (3 per study) and
  NumberOfStudyRelatedInstances left empty (lab/quirkscp.py).
- pynetdicom-universal (offset 82): empty matching keys match nothing; only a '*' query
  gets the studies, like the DICOMHawk honeypot.
The expected counts of these servers are not written here: tests compute them with a
real client (dcmtk's findscu) and compare them with phiwatch's scan.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from . import isolated
from .canary import (
    CANARY_ACCESSION,
    CANARY_BIRTH_DATE,
    CANARY_PATIENT_ID,
    CANARY_PATIENT_NAME,
    CANARY_REFERRING_PHYSICIAN,
    CANARY_STUDY_UID,
)
from .datasets import synthetic_studies
from .errors import LabError
from .plugins import LabServer, Prepared

WLMSCPFS = Path("/usr/bin/wlmscpfs")
DUMP2DCM = Path("/usr/bin/dump2dcm")
EXAMPLES = Path("/usr/share/doc/dcmtk/examples/wlistdb/OFFIS")
WORKLIST_AE = "OFFIS"
WORKLIST_OFFSET, SERIES_OFFSET, UNIVERSAL_OFFSET = 80, 81, 82
SERIES_PER_STUDY = 3



def worklist_dump(note: str, patient: dict[str, str]) -> str:
    """A dump2dcm text for one worklist item: a patient scheduled for a CT."""
    return f"""# phiwatch lab: {note}
(0008,0005) CS  [ISO_IR 100]
(0008,0050) SH  [{patient["AccessionNumber"]}]
(0010,0010) PN  [{patient["PatientName"]}]
(0010,0020) LO  [{patient["PatientID"]}]
(0010,0030) DA  [{patient["PatientBirthDate"]}]
(0010,0040) CS  [{patient["PatientSex"]}]
(0020,000d) UI  [{patient["StudyInstanceUID"]}]
(0032,1032) PN  [{patient["ReferringPhysicianName"]}]
(0032,1060) LO  [CT CHEST]
(0040,0100) SQ
(fffe,e000) -
(0008,0060) CS  [CT]
(0040,0001) AE  [CT01]
(0040,0002) DA  [20261207]
(0040,0003) TM  [090000]
(0040,0006) PN  [{patient["ReferringPhysicianName"]}]
(0040,0007) LO  [CT CHEST]
(0040,0009) SH  [PWSPS1]
(fffe,e00d) -
(fffe,e0dd) -
(0040,1001) SH  [PWRP1]
"""


CANARY_WORKLIST_DUMP = worklist_dump(
    "the canary patient scheduled for a CT",
    {
        "AccessionNumber": CANARY_ACCESSION, "PatientName": CANARY_PATIENT_NAME, "PatientID": CANARY_PATIENT_ID,
        "PatientBirthDate": CANARY_BIRTH_DATE, "PatientSex": "F", "StudyInstanceUID": CANARY_STUDY_UID,
        "ReferringPhysicianName": CANARY_REFERRING_PHYSICIAN,
    },
)  # fmt: skip


def check_installed() -> None:
    for path in (WLMSCPFS, DUMP2DCM):
        if not path.is_file():
            raise LabError(f"{path.name} is not installed: install the Debian package 'dcmtk' (make deps)")


def build_worklist(folder: Path) -> int:
    """dcmtk's example worklist plus the canary item under folder/OFFIS; number of items.

    Where the example dumps are missing (an image that drops /usr/share/doc), synthetic
    patients' items stand in for them.
    """
    target = folder / WORKLIST_AE
    target.mkdir(parents=True, exist_ok=True)
    (target / "lockfile").touch()
    dumps = sorted(EXAMPLES.glob("*.dump")) if EXAMPLES.is_dir() else []
    if not dumps:
        for index, patient in enumerate(synthetic_studies()[:-1], start=1):  # the last one is the canary
            dumps.append(folder / f"synthetic{index}.dump")
            synthetic = {key: str(value) for key, value in patient.items()}
            dumps[-1].write_text(worklist_dump(f"synthetic patient {index}", synthetic))
    canary = folder / "canary.dump"
    canary.write_text(CANARY_WORKLIST_DUMP)
    for dump in (*dumps, canary):
        result = subprocess.run(
            [str(DUMP2DCM), "-q", str(dump), str(target / f"{dump.stem}.wl")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise LabError(f"dump2dcm failed on {dump.name} (exit {result.returncode})")
    return len(dumps) + 1


def prepare_worklist(folder: Path, base: int) -> Prepared:
    items = build_worklist(folder / "worklist")
    argv = [str(WLMSCPFS), "-dhl", "-dfp", str(folder / "worklist"), str(base + WORKLIST_OFFSET)]
    # wlmscpfs listens on every address: on 127.0.0.1 only through the isolating wrapper
    return Prepared(argv=isolated.command([base + WORKLIST_OFFSET], argv), facts={"items": items}, python=True)


def _quirk(offset: int, *flags: str) -> Any:
    def prepare(folder: Path, base: int) -> Prepared:
        argv = [sys.executable, "-m", "phiwatch_lab.quirkscp", "--port", str(base + offset), *flags]
        return Prepared(argv=argv, python=True)

    return prepare


def _entry(name: str, port: int, description: str, expected: dict[str, Any], called_ae: str) -> dict[str, Any]:
    return {
        "name": name, "process": name, "port": port, "protocol": "dicom", "tls": False,
        "called_ae": called_ae, "description": description, "expected": expected,
    }  # fmt: skip


def worklist_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _entry(
            "wlmscpfs",
            base + WORKLIST_OFFSET,
            "dcmtk 3.6.7 wlmscpfs: Modality Worklist SCP with dcmtk's example worklist and a canary "
            f"item under called AE {WORKLIST_AE}; any other called AE is rejected (reason 7).",
            {"association": "accepted", "worklist": "exposed", "items_present": facts.get("items", 0),
             "canary": True, "called_ae_checked": True},
            WORKLIST_AE,
        )
    ]


def series_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _entry(
            "pynetdicom-series",
            base + SERIES_OFFSET,
            f"pynetdicom SCP answering a STUDY-level C-FIND with one response per series "
            f"({SERIES_PER_STUDY} per study) and NumberOfStudyRelatedInstances left empty.",
            {"association": "accepted", "query": "exposed", "studies": 5,
             "responses": 5 * SERIES_PER_STUDY, "instances": None, "canary": True},
            "QUIRKSCP",
        )
    ]


def universal_services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _entry(
            "pynetdicom-universal",
            base + UNIVERSAL_OFFSET,
            "pynetdicom SCP that matches nothing with empty matching keys and everything with '*'.",
            {"association": "accepted", "query": "exposed", "studies": 5, "matched_by": "universal",
             "canary": True},
            "QUIRKSCP",
        )
    ]


SERVERS: tuple[LabServer, ...] = (
    LabServer(
        name="wlmscpfs",
        offsets=(WORKLIST_OFFSET,),
        check_installed=check_installed,
        prepare=prepare_worklist,
        services=worklist_services,
        canary=("wlmscpfs",),
    ),
    LabServer(
        name="pynetdicom-series",
        offsets=(SERIES_OFFSET,),
        check_installed=lambda: None,
        prepare=_quirk(SERIES_OFFSET, "--per-series", str(SERIES_PER_STUDY), "--no-instance-counts"),
        services=series_services,
        canary=("pynetdicom-series",),
    ),
    LabServer(
        name="pynetdicom-universal",
        offsets=(UNIVERSAL_OFFSET,),
        check_installed=lambda: None,
        prepare=_quirk(UNIVERSAL_OFFSET, "--universal-only"),
        services=universal_services,
        canary=("pynetdicom-universal",),
    ),
)
