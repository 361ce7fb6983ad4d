"""Compliance mappings are data: every check is mapped, every mapped id is a check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from phiwatch.checks import Observation, make_finding
from phiwatch.checks.metadata import load_catalog
from phiwatch.compliance import (
    CUT_SHORT,
    INFO_ONLY,
    NOT_OBSERVABLE,
    Framework,
    frameworks,
    requirements_for,
    summarise,
)
from phiwatch.models import (
    Exposure,
    Finding,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Severity,
    TargetSummary,
)


def finding(check_id: str, host: str = "203.0.113.5", port: int = 104,
            exposure: Exposure | None = None) -> Finding:
    entry = load_catalog()[check_id]
    return make_finding(entry, host, port, entry.protocols[0], Observation("observed", exposure))


def scan(findings: list[Finding]) -> ScanResult:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=1.0, timeout=1.0, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=65536)
    info = ScanInfo(id="scan-1", start=datetime(2025, 1, 1, tzinfo=UTC), version="0.1.0", options=options,
                    targets=TargetSummary(specs=["203.0.113.0/24"], excludes=[], addresses=256, ports=[104]))
    return ScanResult(scan=info, findings=findings)


def test_two_frameworks_load_and_validate():
    loaded = {f.framework: f for f in frameworks()}
    assert set(loaded) == {"HIPAA", "GDPR"}
    assert all(isinstance(f, Framework) for f in loaded.values())
    hipaa = {r.id for r in loaded["HIPAA"].requirements}
    gdpr = {r.id for r in loaded["GDPR"].requirements}
    assert {"164.312(a)(1)", "164.312(a)(2)(iv)", "164.312(b)", "164.312(c)(1)", "164.312(d)",
            "164.312(e)(1)", "164.308(a)(1)(ii)(B)"} <= hipaa
    assert {"Art. 32(1)(a)", "Art. 32(1)(b)", "Art. 32(1)(d)", "Art. 32(2)", "Art. 33", "Art. 5(1)(f)"} <= gdpr


@pytest.mark.parametrize("check_id", sorted(load_catalog()))
def test_every_catalog_check_is_mapped_in_every_framework(check_id):
    mapped = requirements_for(check_id)
    assert set(mapped) == {"HIPAA", "GDPR"}
    for framework, ids in mapped.items():
        assert ids, f"{check_id} is not mapped to any {framework} requirement"


def test_every_mapped_id_is_a_catalog_check():
    catalog = set(load_catalog())
    for framework in frameworks():
        for requirement in framework.requirements:
            unknown = set(requirement.checks) - catalog
            assert not unknown, f"{framework.framework} {requirement.id} maps unknown checks {unknown}"


def test_frameworks_are_never_named_inside_checks_code():
    import inspect

    from phiwatch.checks import dicom, http

    for module in (dicom, http):
        source = inspect.getsource(module)
        assert "164.3" not in source and "Art. 3" not in source


def test_an_unknown_check_maps_to_nothing():
    assert requirements_for("no_such_check") == {"HIPAA": [], "GDPR": []}


def test_summary_counts_on_a_small_scan():
    result = scan([
        finding("dicom_study_data_exposed", exposure=Exposure(studies=3, instances=9)),
        finding("dicom_no_tls"),
        finding("dicom_no_tls", host="203.0.113.6"),
        finding("web_pacs_detected", port=443),
    ])
    summaries = {s.framework: s for s in summarise(result.findings)}
    hipaa = {r.id: r for r in summaries["HIPAA"].requirements}

    access = hipaa["164.312(a)(1)"]  # study_data_exposed (critical) + pacs_detected (info)
    assert access.status == "fail"
    assert access.findings[Severity.CRITICAL] == 1 and access.findings[Severity.INFO] == 1
    assert access.checks == ["dicom_study_data_exposed", "web_pacs_detected"]

    transmission = hipaa["164.312(e)(1)"]
    assert transmission.status == "fail" and transmission.findings[Severity.MEDIUM] == 2

    assert hipaa["164.312(c)(1)"].status == "pass"  # nothing about integrity fired
    # informational findings alone neither fail nor pass a requirement: a person has to look
    review = hipaa["164.308(a)(1)(ii)(A)"]
    assert review.status == "not-assessed" and review.reason == INFO_ONLY
    assert review.findings[Severity.INFO] == 1
    assert hipaa["164.312(a)(2)(iv)"].status == "not-assessed"
    assert hipaa["164.312(a)(2)(iv)"].reason == NOT_OBSERVABLE

    statuses = [r.status for r in summaries["HIPAA"].requirements]
    assert summaries["HIPAA"].failing == statuses.count("fail")
    assert summaries["HIPAA"].passing == statuses.count("pass")
    assert summaries["HIPAA"].not_assessed == statuses.count("not-assessed") == 2
    assert summaries["HIPAA"].failing + summaries["HIPAA"].passing + 2 == len(statuses)

    gdpr = {r.id: r for r in summaries["GDPR"].requirements}
    assert gdpr["Art. 33"].status == "fail" and gdpr["Art. 33"].findings[Severity.CRITICAL] == 1
    assert gdpr["Art. 32(1)(a)"].findings[Severity.MEDIUM] == 2
    # GDPR Art. 32(1)(d) saw only web_pacs_detected (info): never a pass
    assert gdpr["Art. 32(1)(d)"].status == "not-assessed" and gdpr["Art. 32(1)(d)"].reason == INFO_ONLY


def test_an_empty_scan_passes_everything_it_can_assess():
    for summary in summarise([]):
        assert summary.failing == 0
        assert summary.passing + summary.not_assessed == len(summary.requirements)


def test_a_scan_cut_short_never_passes_a_requirement():
    from phiwatch.compliance import fully_observed
    from phiwatch.models import ProbeStatus, Service

    # Given a scan with one exposure whose other probe was interrupted
    result = scan([finding("dicom_study_data_exposed", exposure=Exposure(studies=3, instances=9))])
    result.services.append(Service(host="203.0.113.5", port=11112, protocol="unknown",
                                   status=ProbeStatus.INTERRUPTED, detail="scan interrupted"))
    assert not fully_observed(result)
    # When its compliance is summarised as partial
    for summary in summarise(result.findings, complete=fully_observed(result)):
        statuses = {r.status for r in summary.requirements}
        # Then what fired still fails, and nothing passes
        assert summary.partial and summary.passing == 0 and "pass" not in statuses
        assert summary.failing >= 1
        assert {r.reason for r in summary.requirements if r.status == "not-assessed"} >= {CUT_SHORT}
    result.services.pop()
    assert fully_observed(result)
    result.scan.complete = False
    assert not fully_observed(result)
