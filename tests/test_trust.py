"""Trust: signals from facts, the score, the exposure ladder, fleets, and how reports show them.

Pure functions over facts (no server is faked: the facts are what the DICOM probe records);
the lab tests (test_trust_lab.py) run the same code against real servers and the lab honeypot.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydicom.dataset import Dataset

from phiwatch.models import (
    AnswerFacts,
    ContextResult,
    DicomFacts,
    Finding,
    HttpFacts,
    ProbeStatus,
    ProductMatch,
    RepositoryFacts,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    Severity,
    ShareFacts,
    StudyExposure,
    TargetSummary,
    TrustReason,
)
from phiwatch.models import FileKindCount as Kind
from phiwatch.probes import dicom_ul as dul
from phiwatch.probes.dicom_answers import AnswerInspector
from phiwatch.reports.csv_report import render as render_csv
from phiwatch.reports.html import render as render_html
from phiwatch.reports.markdown import render as render_md
from phiwatch.reports.sarif import build as build_sarif
from phiwatch.trust import assess, exclude_honeypots
from phiwatch.trust.fleets import clusters
from phiwatch.trust.signals import HONEYPOT_BELOW, fingerprints, score

ORTHANC_DEBIAN = ("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367")
PYNETDICOM = ("1.2.826.0.1.3680043.9.3811.3.0.4", "PYNETDICOM_304")


def contexts(accept_all: bool, unknown: bool) -> list[ContextResult]:
    rows = [ContextResult(name=name, abstract_syntax=uid, accepted=accept_all or name == "verification",
                          result=0 if accept_all or name == "verification" else 3)
            for name, uid in dul.CONTEXTS]
    name, uid = dul.UNKNOWN_SOP_CLASS
    rows.append(ContextResult(name=name, abstract_syntax=uid, accepted=unknown, result=0 if unknown else 3))
    return rows


def dicom_service(host: str, port: int = 104, uid: str | None = ORTHANC_DEBIAN[0],
                  version: str | None = ORTHANC_DEBIAN[1], accept_all: bool = False, unknown: bool = False,
                  answers: AnswerFacts | None = None, years: tuple[int, int] = (2003, 2021),
                  responses: int = 15, studies: int | None = None, unrequested: tuple[str, ...] = (),
                  matched_by: str = "empty-keys") -> Service:
    query = None
    if answers is not None:
        distinct = responses if studies is None else studies
        query = StudyExposure(status="exposed", studies=distinct, instances=distinct, responses=responses,
                              duplicate_uid_responses=responses - distinct,
                              unrequested_attributes=list(unrequested),
                              matched_by=matched_by,  # type: ignore[arg-type]
                              study_year_min=years[0], study_year_max=years[1], answers=answers,
                              phi_attributes=["PatientName"])
    facts = DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH", association="accepted",
                       implementation_class_uid=uid, implementation_version_name=version, max_pdu_length=16384,
                       contexts=contexts(accept_all, unknown), echo_status=0, query=query)
    status = ProbeStatus.EXPOSED if query else ProbeStatus.ACCEPTED
    return Service(host=host, port=port, protocol="dicom", status=status, dicom=facts)


def clean_answers(digest: str = "a" * 32) -> AnswerFacts:
    return AnswerFacts(largest_identifier_bytes=400, study_uids_digest=digest, ignores_keys=False)


def scan_of(services: list[Service], findings: list[Finding] | None = None) -> ScanResult:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0, max_matches=10,
                          calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False, byte_budget=4096)
    info = ScanInfo(id="t", start=datetime(2026, 12, 6, tzinfo=UTC), version="0", options=options,
                    targets=TargetSummary(specs=["x"], excludes=[], addresses=len(services), ports=[104]))
    return ScanResult(scan=info, services=services, findings=findings or [])


def exposed_finding(service: Service, studies: int) -> Finding:
    from phiwatch.models import Exposure

    return Finding(check_id="dicom_study_data_exposed", title="Study data exposed", severity=Severity.CRITICAL,
                   host=service.host, port=service.port, protocol="dicom", evidence="counted",
                   exposure=Exposure(studies=studies, instances=studies), remediation="fix")


def reasons_of(service: Service) -> list[TrustReason]:
    assess(scan_of([service]))
    assert service.trust is not None
    return service.trust.reasons


def test_real_toolkits_answers_give_no_reason():
    # Given Orthanc on Debian (DCMTK's class UID and version name) and pynetdicom, answering plainly
    orthanc = dicom_service("10.0.0.1", answers=clean_answers())
    scp = dicom_service("10.0.0.2", uid=PYNETDICOM[0], version=PYNETDICOM[1], answers=clean_answers("b" * 32),
                        responses=5)
    result = assess(scan_of([orthanc, scp]))
    # Then neither has a reason to doubt it
    assert [s.trust.reasons for s in result.services if s.trust] == [[], []]
    assert all(s.trust is not None and s.trust.score == 1.0 and not s.trust.honeypot for s in result.services)


def test_orthanc_version_name_on_a_dcmtk_uid_is_no_contradiction_but_on_pynetdicom_it_is():
    assert TrustReason.VERSION_CONTRADICTS_CLASS_UID not in reasons_of(
        dicom_service("10.0.0.1", version="ORTHANC_1_10"))
    assert TrustReason.VERSION_CONTRADICTS_CLASS_UID in reasons_of(
        dicom_service("10.0.0.1", uid="1.2.826.0.1.3680043.9.3811.2.0.1", version="ORTHANC"))


def test_a_permissive_real_scp_keeps_a_high_score():
    # Given a pynetdicom SCP that accepts every context phiwatch proposes but not the unknown SOP class
    reasons = reasons_of(dicom_service("10.0.0.1", uid=PYNETDICOM[0], version=PYNETDICOM[1], accept_all=True))
    assert reasons == [TrustReason.ACCEPTS_EVERY_CONTEXT]
    assert score(reasons) >= 0.8


def test_a_dicompot_like_accept_is_a_honeypot_from_the_association_alone():
    # Given no implementation class UID and every context accepted, the unknown SOP class too
    service = dicom_service("10.0.0.1", uid=None, version=None, accept_all=True, unknown=True)
    reasons = reasons_of(service)
    assert {TrustReason.NO_IMPLEMENTATION_CLASS_UID, TrustReason.ACCEPTS_NONSENSE_SYNTAX,
            TrustReason.KNOWN_HONEYPOT_FINGERPRINT} <= set(reasons)
    assert service.trust is not None and service.trust.honeypot and service.trust.score < HONEYPOT_BELOW


def test_canned_answers_give_their_reasons():
    answers = AnswerFacts(largest_identifier_bytes=524_580, pixel_data=True, dated_today=7,
                          study_uids_digest="c" * 32, ignores_keys=True)
    reasons = reasons_of(dicom_service("10.0.0.1", answers=answers, years=(2026, 2026), responses=7, studies=3,
                                       unrequested=("PixelData", "Rows"), matched_by="universal"))
    assert set(reasons) == {
        TrustReason.UNREQUESTED_ELEMENTS, TrustReason.PIXEL_DATA_IN_ANSWERS, TrustReason.OVERSIZED_ANSWERS,
        TrustReason.DUPLICATE_STUDY_UIDS, TrustReason.ALL_STUDIES_ONE_YEAR, TrustReason.ALL_STUDIES_TODAY,
        TrustReason.UNIVERSAL_MATCH_ONLY, TrustReason.IGNORES_QUERY_KEYS}


def test_series_identifiers_with_repeated_study_uids_are_explained_not_suspicious():
    # Given a server answering once per series: Study UIDs repeat and each answer names its series
    reasons = reasons_of(dicom_service("10.0.0.1", answers=clean_answers(), responses=15, studies=5,
                                       unrequested=("SeriesInstanceUID",)))
    assert reasons == [TrustReason.DUPLICATE_STUDY_UIDS]
    # But the same attribute with every Study UID distinct was not asked for
    assert TrustReason.UNREQUESTED_ELEMENTS in reasons_of(
        dicom_service("10.0.0.1", answers=clean_answers(), unrequested=("SeriesInstanceUID",)))


def test_private_elements_nobody_asked_for_are_no_signal():
    reasons = reasons_of(dicom_service("10.0.0.1", answers=clean_answers(), unrequested=("(0009,1001)",)))
    assert reasons == []


def test_the_same_study_set_on_two_hosts_is_a_scan_level_signal_but_not_on_two_ports_of_one_host():
    shared = "d" * 32
    a, b = dicom_service("10.0.0.1", answers=clean_answers(digest=shared)), dicom_service(
        "10.0.0.2", answers=clean_answers(digest=shared))
    assess(scan_of([a, b]))
    assert a.trust and TrustReason.STUDY_UIDS_SHARED_ACROSS_HOSTS in a.trust.reasons
    c, d = dicom_service("10.0.0.3", 104, answers=clean_answers(digest="e" * 32)), dicom_service(
        "10.0.0.3", 11112, answers=clean_answers(digest="e" * 32))
    assess(scan_of([c, d]))
    assert c.trust and c.trust.reasons == []


def test_a_persona_contradicted_by_the_same_hosts_web_port():
    persona = dicom_service("10.0.0.1", version="ORTHANC")
    web = Service(host="10.0.0.1", port=80, protocol="http", status=ProbeStatus.OPEN,
                  http=HttpFacts(scheme="http", status_code=200,
                                 products=[ProductMatch(product="Horos Web Portal", path="/", kind="login")]))
    assess(scan_of([persona, web]))
    assert persona.trust and persona.trust.reasons == [TrustReason.PERSONA_CONTRADICTED_BY_WEB]
    orthanc_web = web.model_copy(deep=True)
    assert orthanc_web.http is not None
    orthanc_web.http.products = [ProductMatch(product="Orthanc", path="/system", kind="api")]
    assess(scan_of([persona, orthanc_web]))
    assert persona.trust and persona.trust.reasons == []


def test_fleets_are_shared_fingerprints_only():
    one, two = dicom_service("10.0.0.1"), dicom_service("10.0.0.2")
    other = dicom_service("10.0.0.3", uid=PYNETDICOM[0], version=PYNETDICOM[1])
    silent = Service(host="10.0.0.4", port=104, protocol="dicom", status=ProbeStatus.TIMEOUT,
                     dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH"))
    ids = clusters([one, two, other, silent])
    assert ids[("10.0.0.1", 104)] == ids[("10.0.0.2", 104)] and ids[("10.0.0.1", 104)].startswith("fleet-")
    assert ("10.0.0.3", 104) not in ids and ("10.0.0.4", 104) not in ids


def test_the_ladder_counts_each_step_raw_and_filtered():
    honeypot = dicom_service("10.0.0.9", uid=None, version=None, accept_all=True, unknown=True,
                             answers=clean_answers("f" * 32), responses=5)
    real = dicom_service("10.0.0.1", answers=clean_answers())
    rejected = Service(host="10.0.0.2", port=104, protocol="dicom", status=ProbeStatus.REJECTED,
                       dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH", association="rejected"))
    share = ShareFacts(name="imaging", readable=True, files={"dicom": Kind(verified=3)})
    ftp = Service(host="10.0.0.3", port=21, protocol="ftp", status=ProbeStatus.EXPOSED,
                  repository=RepositoryFacts(access="anonymous", shares=[share]))
    result = assess(scan_of([honeypot, real, rejected, ftp],
                            [exposed_finding(honeypot, 5), exposed_finding(real, 15)]))
    assert result.summary is not None
    dicom = {s.step: (s.raw, s.filtered) for s in result.summary.ladder["dicom"]}
    assert dicom == {"tcp_open": (3, 2), "association_accepted": (2, 1), "any_called_ae": (2, 1),
                     "echo_answered": (2, 1), "query_answered": (2, 1), "studies_exposed": (2, 1), "tls": (0, 0)}
    files = {s.step: (s.raw, s.filtered) for s in result.summary.ladder["files"]}
    assert files == {"reachable": (1, 1), "anonymous_access": (1, 1), "listing": (1, 1),
                     "medical_files_verified": (1, 1)}
    assert [s.step for s in result.summary.ladder["web"]] == [
        "reachable", "product_identified", "unauthenticated_api", "data_listed"]
    assert (result.summary.raw.studies, result.summary.filtered.studies) == (20, 15)
    assert result.summary.likely_honeypots == 1


def test_a_called_ae_title_the_user_gave_or_guessed_is_not_any_called_ae():
    given, guessed, anyone = (dicom_service(f"10.0.0.{n}") for n in (1, 2, 3))
    assert given.dicom is not None and guessed.dicom is not None
    given.dicom.called_ae_supplied = True
    guessed.dicom.called_ae_guessed = True
    result = assess(scan_of([given, guessed, anyone]))
    assert result.summary is not None
    dicom = {s.step: s.raw for s in result.summary.ladder["dicom"]}
    assert (dicom["association_accepted"], dicom["any_called_ae"]) == (3, 1)


def test_exclude_honeypots_drops_their_services_and_findings_but_keeps_the_ladder():
    honeypot = dicom_service("10.0.0.9", uid=None, version=None, accept_all=True, unknown=True,
                             answers=clean_answers("f" * 32), responses=5)
    real = dicom_service("10.0.0.1", answers=clean_answers())
    result = assess(scan_of([honeypot, real], [exposed_finding(honeypot, 5), exposed_finding(real, 15)]))
    kept = exclude_honeypots(result)
    assert [s.host for s in kept.services] == ["10.0.0.1"] and [f.host for f in kept.findings] == ["10.0.0.1"]
    assert kept.summary is not None and kept.summary.honeypots_excluded
    assert kept.summary.raw.studies == 20 and kept.summary.filtered.studies == 15


def test_every_report_shows_the_ladder_before_the_findings_and_marks_honeypots():
    honeypot = dicom_service("10.0.0.9", uid=None, version=None, accept_all=True, unknown=True,
                             answers=clean_answers("f" * 32), responses=5)
    real = dicom_service("10.0.0.1", answers=clean_answers())
    result = assess(scan_of([honeypot, real], [exposed_finding(honeypot, 5), exposed_finding(real, 15)]))
    html = render_html(result)
    # the ladder right after the summary's counts, before the services to fix first and every finding
    assert (html.index('id="summary"') < html.index('id="ladder"') < html.index('id="fix-first"')
            < html.index('id="findings"'))
    assert 'data-step="studies_exposed"><td>Studies exposed</td><td class="num" data-raw>2</td>' in html
    assert "likely honeypot 0.14: no-implementation-class-uid" in html
    markdown = render_md(result)
    assert markdown.index("## Summary") < markdown.index("## Exposure ladder") < markdown.index("## Findings")
    assert "| Studies exposed | 2 | 1 |" in markdown and "**Trust:** likely honeypot" in markdown
    rows = render_csv(result).splitlines()
    assert rows[0].endswith("trust_score,likely_honeypot,trust_reasons,cluster")
    assert any(",yes,no-implementation-class-uid;" in row for row in rows)
    sarif = build_sarif(result)
    assert sarif["runs"][0]["properties"]["summary"]["likely_honeypots"] == 1
    marks = {r["locations"][0]["logicalLocations"][0]["name"]: r["properties"]["trust"]["honeypot"]
             for r in sarif["runs"][0]["results"]}
    assert marks == {"10.0.0.9:104/dicom": True, "10.0.0.1:104/dicom": False}


def test_the_schema_carries_the_ladder_and_trust():
    from phiwatch.reports.json_report import schema

    document = schema()
    assert "summary" in document["properties"] and "LadderStep" in document["$defs"]
    assert set(document["$defs"]["TrustReason"]["enum"]) == {r.value for r in TrustReason}


def test_the_answer_inspector_keeps_names_sizes_and_a_keyed_digest_only():
    today = datetime.now(UTC).strftime("%Y%m%d")
    answers = []
    for index in (1, 2, 2):
        ds = Dataset()
        ds.StudyInstanceUID = f"1.2.3.{index}"
        ds.StudyDate = today
        ds.PatientName = "SECRET^VALUE"
        ds.PixelData = b"\0" * 16
        answers.append(ds)
    inspector = AnswerInspector(b"key-1")
    for ds in answers:
        inspector.add(ds)
    facts = inspector.facts()
    assert facts.dated_today == 3 and facts.pixel_data and 16 < facts.largest_identifier_bytes < 200
    text = facts.model_dump_json()
    assert "SECRET" not in text and "1.2.3." not in text
    assert hashlib.sha256(b"1.2.3.1").hexdigest()[:32] != facts.study_uids_digest
    # the same set under the same key gives the same digest; another key another one
    again = AnswerInspector(b"key-1")
    other = AnswerInspector(b"key-2")
    for ds in [*reversed(answers), answers[0]]:
        again.add(ds)
        other.add(ds)
    assert again.facts().study_uids_digest == facts.study_uids_digest != other.facts().study_uids_digest


def test_the_unknown_sop_class_is_proposed_last_and_only_with_the_signals():
    with_signals = dul.association_request("ANY-SCP", "PHIWATCH", True)
    without = dul.association_request("ANY-SCP", "PHIWATCH", False)
    uid = dul.UNKNOWN_SOP_CLASS[1].encode()
    assert uid in with_signals and uid not in without
    assert len(with_signals) > len(without)


def test_the_fingerprint_rows_load_and_name_their_project():
    rows = fingerprints()
    assert {"dicompot", "dicomhawk-orthanc-persona"} <= {r.id for r in rows}
    assert all(r.project for r in rows)
