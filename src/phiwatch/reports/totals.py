"""The numbers every summary shows (terminal, HTML, Markdown), computed in one place.

Exposure totals count one service once, at the largest counts its findings proved.
`scan_counts` is the single source of the open/exposed service counts and the findings by
severity, so the console's summary line and the reports' summaries always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from ..models import UNFINISHED, Exposure, FileCounts, Finding, ProbeStatus, ScanResult
from ..severity import Severity


@dataclass(frozen=True)
class Counts:
    studies: int = 0
    instances: int = 0
    dicom: int = 0
    hl7: int = 0
    x12: int = 0
    worklist_items: int = 0

    def merge(self, other: Counts) -> Counts:
        return Counts(*(max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def files(self) -> int:
        return self.dicom + self.hl7 + self.x12

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


def counts_of(seen: Exposure) -> Counts:
    return Counts(seen.studies, seen.instances or 0, seen.files.dicom, seen.files.hl7, seen.files.x12,
                  seen.worklist_items)


def exposure_by_service(findings: Iterable[Finding]) -> dict[tuple[str, int], Counts]:
    """Per (host, port): several findings can carry the same exposure, so take the maximum."""
    services: dict[tuple[str, int], Counts] = {}
    for finding in findings:
        seen = finding.exposure
        if seen is None:
            continue
        key = (finding.host, finding.port)
        services[key] = services.get(key, Counts()).merge(counts_of(seen))
    return services


def total(by_service: dict[tuple[str, int], Counts]) -> Counts:
    return sum(by_service.values(), Counts())


@dataclass(frozen=True)
class ScanCounts:
    """What the summary says. Open services: every service found open, except probes that did not
    finish (cut short or failed on our side), which say nothing about the target. Exposed: a probe
    that got data back, or a service a finding proved counts for."""

    open: int
    exposed: int
    interrupted: int
    probe_errors: int
    exposed_keys: frozenset[tuple[str, int]]
    findings: int
    by_severity: dict[Severity, int]
    exposure: Counts
    unknown_instances: int  # exposed DICOM services that did not say how many instances they hold

    @property
    def unfinished(self) -> int:
        return self.interrupted + self.probe_errors


def scan_counts(result: ScanResult, findings: Iterable[Finding] | None = None) -> ScanCounts:
    """The one source of every summary's numbers; `findings` narrows the findings counted
    (a --severity filter), the services are always the scan's."""
    shown = list(result.findings if findings is None else findings)
    unfinished = [s for s in result.services if s.status in UNFINISHED]
    proved = {key for key, counts in exposure_by_service(result.findings).items() if counts}
    exposed = frozenset(proved | {(s.host, s.port) for s in result.services if s.status is ProbeStatus.EXPOSED})
    by_service = {key: counts for key, counts in exposure_by_service(shown).items() if counts}
    unknown = {(f.host, f.port) for f in shown
               if f.exposure is not None and f.exposure.studies and f.exposure.instances is None}
    return ScanCounts(
        open=len(result.services) - len(unfinished),
        exposed=len(exposed),
        interrupted=sum(s.status is ProbeStatus.INTERRUPTED for s in unfinished),
        probe_errors=sum(s.status is ProbeStatus.PROBE_ERROR for s in unfinished),
        exposed_keys=exposed,
        findings=len(shown),
        by_severity={s: sum(f.severity is s for f in shown) for s in Severity},
        exposure=total(by_service),
        unknown_instances=len(unknown),
    )


def merged_exposure(findings: Iterable[Finding]) -> Exposure | None:
    """One service's exposure over its findings: the largest counts proved (an instance count only
    when a finding that listed studies gave one; unknown when none did)."""
    seen = [f.exposure for f in findings if f.exposure is not None]
    if not seen:
        return None
    studies = max(e.studies for e in seen)
    known = [e.instances for e in seen if e.instances is not None and (e.studies or e.instances)]
    listed = [e for e in seen if e.studies]
    instances = max(known) if known else (None if listed else 0)
    return Exposure(
        studies=studies,
        instances=instances,
        worklist_items=max(e.worklist_items for e in seen),
        files=FileCounts(dicom=max(e.files.dicom for e in seen), hl7=max(e.files.hl7 for e in seen),
                         x12=max(e.files.x12 for e in seen)),
        phi_attributes=sorted({name for e in seen for name in e.phi_attributes}),
    )


def count_parts(exposure: Exposure | None) -> list[tuple[str, str]]:
    """The counts that matter, as (number, what): studies and instances where studies were listed
    (DICOM, DICOMweb), worklist items, files by kind (file repositories). Zeros are left out, so a
    file repository never reads "0 studies"; an instance count the server did not give is "unknown"."""
    if exposure is None:
        return []
    parts: list[tuple[str, str]] = []
    if exposure.studies or exposure.instances:
        parts.append((f"{exposure.studies:,}", "studies"))
        parts.append(("unknown" if exposure.instances is None else f"{exposure.instances:,}", "instances"))
    if exposure.worklist_items:
        parts.append((f"{exposure.worklist_items:,}", "worklist items"))
    files = exposure.files
    parts += [(f"{n:,}", f"{kind} files") for kind, n in (("DICOM", files.dicom), ("HL7", files.hl7),
                                                          ("X12", files.x12)) if n]
    return parts
