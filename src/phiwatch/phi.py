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

# Return keys of the Modality Worklist C-FIND (PS3.4 K.6) that identify a patient or
# an encounter: at the top level, and inside each Scheduled Procedure Step item.
WORKLIST_PHI: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "RequestedProcedureDescription",
    "MedicalAlerts",
)
WORKLIST_STEP_PHI: tuple[str, ...] = (
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepStartDate",
)

# Attributes that identify a patient or encounter, by keyword (PS3.15 Annex E Basic Profile
# and the fields the published studies counted). Used to name what an answer exposed.
DICOM_PHI_KEYWORDS: frozenset[str] = frozenset(
    {
        *STUDY_QUERY_PHI,
        *WORKLIST_PHI,
        *WORKLIST_STEP_PHI,
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientBirthTime",
        "PatientAge",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientMotherBirthName",
        "MilitaryRank",
        "EthnicGroup",
        "Occupation",
        "AdditionalPatientHistory",
        "PatientComments",
        "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy",
        "OperatorsName",
        "InstitutionAddress",
        "StationName",
        "StudyID",
        "StudyTime",
        "IssuerOfPatientID",
        "PatientWeight",
        "PatientSize",
        "MedicalRecordLocator",
        "RequestingPhysician",
        "ResponsiblePerson",
    }
)
