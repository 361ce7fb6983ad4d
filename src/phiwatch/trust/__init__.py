"""Trust in every count: the exposure ladder, honeypot signals, a score per service, fleets.

`assess(result)` runs once a scan's services are all known (it needs the whole scan:
some signals compare hosts). It is a pure function of the facts, so a stored scan gets
the same trust when its reports are rendered again.
"""

from __future__ import annotations

from ..models import ExposureTotals, FileCounts, ProbeStatus, ScanResult, ScanSummary, Service, Trust
from ..reports.totals import exposure_by_service, total
from .fleets import clusters
from .ladder import ladder
from .signals import HONEYPOT_BELOW, scan_signals, score, service_signals


def assess(result: ScanResult) -> ScanResult:
    """The result with `trust` on every service and `summary` filled in."""
    shared = scan_signals(result.services)
    fleet = clusters(result.services)
    for service in result.services:
        key = (service.host, service.port)
        reasons = list(dict.fromkeys(service_signals(service) + shared.get(key, [])))
        value = score(reasons)
        service.trust = Trust(score=value, honeypot=value < HONEYPOT_BELOW, reasons=reasons,
                              cluster=fleet.get(key))
    result.summary = summarise(result)
    return result


def is_honeypot(service: Service) -> bool:
    return service.trust is not None and service.trust.honeypot


def honeypot_keys(result: ScanResult) -> set[tuple[str, int]]:
    return {(s.host, s.port) for s in result.services if is_honeypot(s)}


def _totals(result: ScanResult, leave_out: set[tuple[str, int]]) -> ExposureTotals:
    findings = [f for f in result.findings if (f.host, f.port) not in leave_out]
    exposure = {k: c for k, c in exposure_by_service(findings).items() if any(vars(c).values())}
    exposed = set(exposure) | {
        (s.host, s.port) for s in result.services
        if s.status is ProbeStatus.EXPOSED and (s.host, s.port) not in leave_out
    }
    sums = total(exposure)
    return ExposureTotals(exposed_services=len(exposed), studies=sums.studies, instances=sums.instances,
                          files=FileCounts(dicom=sums.dicom, hl7=sums.hl7, x12=sums.x12))


def summarise(result: ScanResult) -> ScanSummary:
    leave_out = honeypot_keys(result)
    return ScanSummary(
        ladder=ladder(result.services, is_honeypot),
        likely_honeypots=len(leave_out),
        fleets=len({s.trust.cluster for s in result.services if s.trust is not None and s.trust.cluster}),
        raw=_totals(result, set()),
        filtered=_totals(result, leave_out),
        honeypots_excluded=result.summary.honeypots_excluded if result.summary else False,
    )


def exclude_honeypots(result: ScanResult) -> ScanResult:
    """The same scan without the services marked honeypot and their findings; the summary
    keeps the full ladder (raw and filtered) and says that they were excluded."""
    if result.summary is None:
        assess(result)
    leave_out = honeypot_keys(result)
    assert result.summary is not None
    summary = result.summary.model_copy(update={"honeypots_excluded": True})
    return result.model_copy(update={
        "services": [s for s in result.services if (s.host, s.port) not in leave_out],
        "findings": [f for f in result.findings if (f.host, f.port) not in leave_out],
        "summary": summary,
    })
