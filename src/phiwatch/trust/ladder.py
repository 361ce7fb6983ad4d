"""The exposure ladder: each step of exposure counted on its own, per protocol family.

A service counts on every step it reached; "filtered" leaves out likely honeypots. The
steps' names are the published vocabulary of exposure studies, so a count can be quoted
with the step it belongs to (open port, accepted association, listed studies ...).
"""

from __future__ import annotations

from collections.abc import Callable

from ..models import LadderStep, ProbeStatus, Service

Step = tuple[str, Callable[[Service], bool]]


def _dicom(service: Service) -> bool:
    return service.protocol == "dicom" and service.dicom is not None


def _accepted(service: Service) -> bool:
    return service.dicom is not None and service.dicom.association == "accepted"


def _query(service: Service, *results: str) -> bool:
    facts = service.dicom
    return facts is not None and facts.query is not None and facts.query.status in results


def _any_query(service: Service, *results: str) -> bool:
    """The study query or the worklist query (a worklist that answers anyone exposes patients)."""
    facts = service.dicom
    return _query(service, *results) or (
        facts is not None and facts.worklist is not None and facts.worklist.status in results)


DICOM_STEPS: list[Step] = [
    ("tcp_open", _dicom),
    ("association_accepted", _accepted),
    ("any_called_ae", lambda s: _accepted(s) and s.dicom is not None
     and not (s.dicom.called_ae_guessed or s.dicom.called_ae_supplied)),
    ("echo_answered", lambda s: s.dicom is not None and s.dicom.echo_status == 0),
    ("query_answered", lambda s: _any_query(s, "empty", "exposed")),
    ("studies_exposed", lambda s: _query(s, "exposed")),
    ("tls", lambda s: s.dicom is not None and s.dicom.tls and s.status is not ProbeStatus.TLS_ERROR),
]


def _web(service: Service) -> bool:
    """A web service; one that is a file repository (S3, a directory index, WebDAV) counts here
    too only when it also shows a web PACS product or DICOMweb (Orthanc with its WebDAV)."""
    facts = service.http
    if facts is None or facts.status_code is None:
        return False
    return service.repository is None or bool(facts.products or facts.dicomweb)


def _unauthenticated_api(service: Service) -> bool:
    facts = service.http
    if facts is None:
        return False
    return bool(facts.open_paths or facts.blank_login or facts.default_login_user
                or any(d.result in ("exposed", "empty") for d in facts.dicomweb))


WEB_STEPS: list[Step] = [
    ("reachable", _web),
    ("product_identified", lambda s: _web(s) and s.http is not None and bool(s.http.products)),
    ("unauthenticated_api", lambda s: _web(s) and _unauthenticated_api(s)),
    ("data_listed", lambda s: _web(s) and s.http is not None
     and any(d.result == "exposed" for d in s.http.dicomweb)),
]


def _verified(service: Service) -> bool:
    facts = service.repository
    return facts is not None and any(
        count.verified > 0 for share in facts.shares for count in share.files.values()
    )


FILE_STEPS: list[Step] = [
    ("reachable", lambda s: s.repository is not None),
    ("anonymous_access", lambda s: s.repository is not None and s.repository.access in ("anonymous", "guest")),
    ("listing", lambda s: s.repository is not None and any(share.readable for share in s.repository.shares)),
    ("medical_files_verified", _verified),
]

FAMILIES: dict[str, list[Step]] = {"dicom": DICOM_STEPS, "web": WEB_STEPS, "files": FILE_STEPS}


def ladder(services: list[Service], honeypot: Callable[[Service], bool]) -> dict[str, list[LadderStep]]:
    result: dict[str, list[LadderStep]] = {}
    for family, steps in FAMILIES.items():
        rows = []
        for name, reached in steps:
            hits = [s for s in services if reached(s)]
            rows.append(LadderStep(step=name, raw=len(hits), filtered=sum(1 for s in hits if not honeypot(s))))
        result[family] = rows
    return result
