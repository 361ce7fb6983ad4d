"""What the DICOM checks and the reports make of unknown instance counts and worklist items.

Pure: facts as the probe leaves them (tests/test_dicom_truth.py proves those against real
servers), the real checks and catalog, every report format.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from phiwatch.checks import evaluate
from phiwatch.models import (
    DicomFacts,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    StudyExposure,
    TargetSummary,
    WorklistExposure,
)
from phiwatch.reports import csv_report, html, markdown, terminal


def scan(*services: Service) -> ScanResult:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=1.0, timeout=1.0, retries=0,
                          max_matches=100, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=65536)  # fmt: skip
    info = ScanInfo(id="scan-7", start=datetime(2026, 12, 6, tzinfo=UTC), version="0", options=options,
                    targets=TargetSummary(specs=["192.0.2.0/29"], excludes=[], addresses=8, ports=[104]))
    findings = [f for service in services for f in evaluate(service)]
    return ScanResult(scan=info, services=list(services), findings=findings)


def dicom_service(port: int, facts: DicomFacts) -> Service:
    return Service(host="192.0.2.4", port=port, protocol="dicom", status=ProbeStatus.EXPOSED, dicom=facts)


PER_SERIES = DicomFacts(
    called_ae="ANY-SCP", calling_ae="PHIWATCH", association="accepted",
    query=StudyExposure(status="exposed", studies=5, instances=None, studies_without_instance_count=5,
                        responses=15, duplicate_uid_responses=10, matched_by="empty-keys",
                        phi_attributes=["PatientID", "PatientName"]),
)  # fmt: skip
WORKLIST = DicomFacts(
    called_ae="OFFIS", calling_ae="PHIWATCH", association="accepted", called_ae_supplied=True,
    worklist=WorklistExposure(status="exposed", items=11, procedure_steps=11, matched_by="empty-keys",
                              modalities=["CT", "MR"], phi_attributes=["PatientBirthDate", "PatientName"]),
)  # fmt: skip


def test_unknown_instances_are_said_unknown_in_the_evidence_and_every_report():
    result = scan(dicom_service(104, PER_SERIES))
    exposed = next(f for f in result.findings if f.check_id == "dicom_study_data_exposed")
    # Then the evidence counts studies by UID and says the instance count is unknown, never 0
    assert "5 studies in 15 responses" in exposed.evidence
    assert "an unknown number of instances" in exposed.evidence and "0 instances" not in exposed.evidence
    assert exposed.exposure is not None and exposed.exposure.instances is None
    # And every format renders it as "unknown"
    assert "5 studies, unknown instances" in markdown.render(result)
    assert terminal.count_that_matters(exposed).startswith("5 studies, unknown instances")
    rows = list(csv.DictReader(io.StringIO(csv_report.render(result))))
    assert next(r for r in rows if r["check_id"] == "dicom_study_data_exposed")["instances"] == "unknown"
    assert "<b>unknown</b> instances" in html.render(result)


def test_a_worklist_exposure_is_critical_counted_and_not_an_arbitrary_ae_finding():
    result = scan(dicom_service(105, WORKLIST))
    by_id = {f.check_id: f for f in result.findings}
    worklist = by_id["dicom_worklist_exposed"]
    assert worklist.severity.value == "critical"
    assert "11 worklist items with 11 scheduled procedure steps" in worklist.evidence
    assert worklist.exposure is not None and worklist.exposure.worklist_items == 11
    # A title the user gave (--called-ae) that the server accepts is no "any called AE" finding
    assert "dicom_any_called_ae_accepted" not in by_id
    assert "11 worklist items" in markdown.render(result)
    assert "11 worklist items" in terminal.count_that_matters(worklist)
    assert "<b>11</b> worklist items" in html.render(result)


def test_the_same_acceptance_under_the_default_title_is_a_finding():
    facts = WORKLIST.model_copy(update={"called_ae": "ANY-SCP", "called_ae_supplied": False})
    assert "dicom_any_called_ae_accepted" in {f.check_id for f in scan(dicom_service(106, facts)).findings}


def test_a_diff_says_unknown_for_an_instance_count_the_server_stopped_giving():
    from phiwatch.diff import diff_scans

    assert PER_SERIES.query is not None
    counted = PER_SERIES.query.model_copy(update={"instances": 40, "studies_without_instance_count": 0})
    before = scan(dicom_service(104, PER_SERIES.model_copy(update={"query": counted})))
    after = scan(dicom_service(104, PER_SERIES))
    changes = diff_scans(before, after).changed
    assert [c.what for c in changes if c.key[0] == "dicom_study_data_exposed"] == [["instances 40 -> unknown"]]
