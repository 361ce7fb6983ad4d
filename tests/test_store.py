"""Given a scan result, the store keeps it whole for later comparison."""

from __future__ import annotations

from datetime import UTC, datetime

from phiwatch.models import (
    DicomFacts,
    Exposure,
    Finding,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    Severity,
    TargetSummary,
)
from phiwatch.store import Store
from phiwatch.trust import assess


def a_result(scan_id: str) -> ScanResult:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP",
                          guess_aet=False, byte_budget=4096)
    info = ScanInfo(id=scan_id, start=datetime.now(UTC), version="0", options=options,
                    targets=TargetSummary(specs=["127.0.0.1"], excludes=[], addresses=1,
                                          ports=[104]))
    service = Service(host="127.0.0.1", port=104, protocol="dicom", status=ProbeStatus.EXPOSED,
                      dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH"))
    finding = Finding(check_id="dicom_study_data_exposed", title="t", severity=Severity.CRITICAL,
                      host="127.0.0.1", port=104, protocol="dicom", evidence="e",
                      exposure=Exposure(studies=3, instances=9, phi_attributes=["PatientName"]),
                      remediation="r")
    return ScanResult(scan=info, services=[service], findings=[finding])


def test_a_saved_scan_loads_back_equal(tmp_path):
    store = Store(tmp_path / "phiwatch.db")
    first, second = a_result("scan-1"), a_result("scan-2")
    store.save(first)
    store.save(second)
    assert [row.id for row in store.scans()] == ["scan-1", "scan-2"]
    # trust and the exposure ladder are computed from the stored facts when a scan is loaded
    assert store.load("scan-1") == assess(first)
    assert store.load("missing") is None
