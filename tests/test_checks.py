"""Given facts, the checks decide; the catalog describes every check and nothing else."""

from __future__ import annotations

from phiwatch.checks import all_checks, evaluate
from phiwatch.checks.metadata import load_catalog
from phiwatch.models import (
    ContextResult,
    DicomFacts,
    ProbeStatus,
    Service,
    StudyExposure,
    TlsFacts,
)


def dicom_service(status: ProbeStatus, **facts) -> Service:
    return Service(host="127.0.0.1", port=104, protocol="dicom", status=status,
                   dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH", **facts))


def ids(service: Service) -> set[str]:
    return {finding.check_id for finding in evaluate(service)}


def test_every_check_has_a_catalog_entry_and_every_entry_a_check():
    catalog = load_catalog()
    assert set(all_checks()) == {check_id for check_id, entry in catalog.items() if "scan" in entry.sources}
    for entry in catalog.values():
        assert entry.references and entry.remediation and entry.risk


def test_an_exposed_archive_is_critical_with_counts_and_names_only():
    query = StudyExposure(status="exposed", information_model="study-root-find", studies=12,
                          instances=340, phi_attributes=["PatientName"], modalities=["CT"])
    service = dicom_service(ProbeStatus.EXPOSED, association="accepted", query=query)
    [finding] = [f for f in evaluate(service) if f.check_id == "dicom_study_data_exposed"]
    assert finding.severity == "critical"
    assert finding.exposure is not None
    assert (finding.exposure.studies, finding.exposure.instances) == (12, 340)
    assert finding.exposure.phi_attributes == ["PatientName"]
    assert "12 studies" in finding.evidence and "340 instances" in finding.evidence


def test_a_refused_query_is_info_not_an_exposure():
    query = StudyExposure(status="refused", refusal="abort")
    service = dicom_service(ProbeStatus.QUERY_REFUSED, association="accepted", query=query)
    found = ids(service)
    assert "dicom_query_refused" in found
    assert "dicom_study_data_exposed" not in found


def test_a_rejected_association_yields_no_finding():
    assert ids(dicom_service(ProbeStatus.REJECTED, association="rejected")) == set()


def test_storage_and_retrieve_come_from_accepted_contexts_only():
    contexts = [
        ContextResult(name="ct-storage", abstract_syntax="1", accepted=True, result=0),
        ContextResult(name="study-root-move", abstract_syntax="2", accepted=False, result=3),
    ]
    found = ids(dicom_service(ProbeStatus.ACCEPTED, association="accepted", contexts=contexts))
    assert "dicom_storage_accepted" in found
    assert "dicom_retrieve_accepted" not in found


def test_tls_changes_the_transport_findings():
    plain = ids(dicom_service(ProbeStatus.ACCEPTED, association="accepted"))
    service = dicom_service(ProbeStatus.ACCEPTED, association="accepted", tls=True)
    service.tls = TlsFacts(self_signed=True, expired=False, subject="#0123456789ab (4 chars)")
    secured = ids(service)
    assert "dicom_no_tls" in plain and "dicom_no_tls" not in secured
    assert "dicom_tls_certificate_untrusted" in secured


def test_a_guessed_ae_title_is_its_own_finding():
    service = dicom_service(ProbeStatus.ACCEPTED, association="accepted", called_ae_guessed=True)
    found = ids(service)
    assert "dicom_default_ae_title_accepted" in found
    assert "dicom_any_called_ae_accepted" not in found


def test_an_exposure_behind_a_blank_login_is_reported_as_the_blank_login():
    from phiwatch.models import DicomWebExposure, HttpFacts

    reached = DicomWebExposure(root="/dicom-web", result="exposed", access="blank-login", studies=4,
                               instances=8, phi_attributes=["PatientName"])
    facts = HttpFacts(scheme="http", blank_login=True, auth_scheme="Basic", dicomweb=[reached])
    service = Service(host="127.0.0.1", port=8042, protocol="http", status=ProbeStatus.EXPOSED, http=facts)
    found = {f.check_id: f for f in evaluate(service)}
    assert found["web_blank_login_accepted"].severity == "critical"
    assert found["web_blank_login_accepted"].exposure.studies == 4
    assert "dicomweb_studies_exposed" not in found  # not open to anyone without the blank login
    assert "web_credentials_over_http" in found
