"""Names of attributes that reveal who a patient is. Names only: values are never kept."""

from __future__ import annotations

# Return keys of the STUDY-level C-FIND that identify a patient or an encounter.
STUDY_QUERY_PHI: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "InstitutionName",
    "StudyDescription",
    "AccessionNumber",
    "StudyDate",
)
