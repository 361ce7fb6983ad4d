"""The truth about a DICOM server, told by dcmtk's findscu, not by phiwatch.

findscu (/usr/bin/findscu, never the venv's pynetdicom script of the same name) asks the
server; every response it receives is written to a file (-X) and read back here with
pydicom. Studies are the distinct Study Instance UIDs among those responses, instances
the sum of NumberOfStudyRelatedInstances when the server filled it (None otherwise),
worklist items the responses to a Modality Worklist query. Values are only compared
and counted, never printed.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread

from phiwatch.phi import STUDY_QUERY_PHI, WORKLIST_PHI, WORKLIST_STEP_PHI

FINDSCU = "/usr/bin/findscu"
HOST = "127.0.0.1"
STEP = "ScheduledProcedureStepSequence[0]"


@dataclass
class Truth:
    # "answered"; "not-offered": the context or the whole association was rejected; "refused": the
    # association was accepted but the query aborted or failed
    state: str
    responses: int = 0
    studies: int = 0
    instances: int | None = None
    items: int = 0
    steps: int = 0
    phi: set[str] = field(default_factory=set)
    wildcard: bool = False  # the answer came from the '*' query


def _findscu(port: int, called: str, calling: str, mode: str, keys: list[str], tls: bool) -> tuple[int, str, list]:
    with tempfile.TemporaryDirectory() as folder:
        argv = [FINDSCU, mode, "-X", "-od", folder, "-aet", calling, "-aec", called, "-to", "10", "-ta", "10",
                "-td", "10", *(["+tla", "-ic"] if tls else [])]
        for key in keys:
            argv += ["-k", key]
        result = subprocess.run([*argv, HOST, str(port)], capture_output=True, text=True, timeout=60, check=False)
        responses = [dcmread(path) for path in sorted(Path(folder).glob("rsp*.dcm"))]
    return result.returncode, result.stdout + result.stderr, responses


def _state(code: int, log: str, responses: list) -> str:
    if responses:
        return "answered"
    if "No Acceptable Presentation Contexts" in log or "Association Rejected" in log:
        return "not-offered"
    return "answered" if code == 0 and "Abort" not in log and "abort" not in log else "refused"


def _filled(ds, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is not None and str(value).strip("\x00 ") != ""


def studies(port: int, called: str, calling: str = "TRUTHSCU", tls: bool = False) -> Truth:
    """STUDY-level C-FIND with empty keys; if nothing comes back, the same with PatientName=*."""
    for wildcard in (False, True):
        keys = ["QueryRetrieveLevel=STUDY", "StudyInstanceUID=", "NumberOfStudyRelatedInstances=",
                *(f"{k}=" for k in STUDY_QUERY_PHI if k != "PatientName"),
                "PatientName=*" if wildcard else "PatientName="]
        code, log, responses = _findscu(port, called, calling, "-S", keys, tls)
        state = _state(code, log, responses)
        if state != "answered" or responses:
            break
    truth = Truth(state=state, responses=len(responses), wildcard=wildcard and bool(responses))
    per_study: dict[str, int | None] = {}
    for ds in responses:
        uid = str(ds.get("StudyInstanceUID", ""))
        count = ds.get("NumberOfStudyRelatedInstances")
        known = int(count) if count not in (None, "") else None
        if per_study.get(uid) is None:
            per_study[uid] = known
        truth.phi |= {k for k in STUDY_QUERY_PHI if _filled(ds, k)}
    truth.studies = len(per_study)
    known_counts = [n for n in per_study.values() if n is not None]
    truth.instances = sum(known_counts) if known_counts else None
    return truth


def worklist(port: int, called: str, calling: str = "TRUTHSCU", tls: bool = False) -> Truth:
    """Modality Worklist C-FIND with empty keys; if nothing comes back, the same with PatientName=*."""
    for wildcard in (False, True):
        keys = [*(f"{k}=" for k in WORKLIST_PHI if k != "PatientName"),
                "PatientName=*" if wildcard else "PatientName=",
                *(f"{STEP}.{k}=" for k in ("Modality", *WORKLIST_STEP_PHI))]
        code, log, responses = _findscu(port, called, calling, "-W", keys, tls)
        state = _state(code, log, responses)
        if state != "answered" or responses:
            break
    truth = Truth(state=state, responses=len(responses), items=len(responses))
    truth.wildcard = wildcard and bool(responses)
    for ds in responses:
        truth.phi |= {k for k in WORKLIST_PHI if _filled(ds, k)}
        steps = ds.get("ScheduledProcedureStepSequence") or []
        truth.steps += max(1, len(steps))
        for step in steps:
            truth.phi |= {k for k in WORKLIST_STEP_PHI if _filled(step, k)}
    return truth
