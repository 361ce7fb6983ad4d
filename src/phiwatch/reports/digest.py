"""What a reader needs first, shared by the HTML and Markdown reports: the services to fix first
and the findings grouped by check. Plain selections over the scan; each writer escapes and formats."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Exposure, Finding, ScanResult, Service, Severity
from ..targets import address_order
from .totals import merged_exposure, scan_counts


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Worst first; then by address, port and check (the console's order)."""
    return sorted(findings, key=lambda f: (-f.severity.rank, address_order(f.host), f.port, f.check_id))


@dataclass
class FixItem:
    host: str
    port: int
    protocol: str
    service: Service | None
    worst: Finding | None  # None: data came back but no finding names it
    exposure: Exposure | None
    findings: int
    exposed: bool


def _weight(exposure: Exposure | None) -> int:
    """How much a service gives away, to order services of the same worst severity."""
    if exposure is None:
        return 0
    files = exposure.files
    return exposure.studies + exposure.worklist_items + files.dicom + files.hl7 + files.x12


def _likely_honeypot(service: Service | None) -> bool:
    return service is not None and service.trust is not None and service.trust.honeypot


def fix_first(result: ScanResult) -> list[FixItem]:
    """Every exposed service and every service with a critical or high finding: worst finding
    first, likely honeypots after the real services of the same severity, then the service that
    gives away most, then by address."""
    exposed = scan_counts(result).exposed_keys
    services = {(s.host, s.port): s for s in result.services}
    by_service: dict[tuple[str, int], list[Finding]] = {}
    for finding in ordered(result.findings):
        by_service.setdefault((finding.host, finding.port), []).append(finding)
    items = []
    for key in set(by_service) | set(exposed):
        found = by_service.get(key, [])
        worst = found[0] if found else None
        if key not in exposed and (worst is None or worst.severity.rank < Severity.HIGH.rank):
            continue
        service = services.get(key)
        protocol = service.protocol if service else (worst.protocol if worst else "")
        items.append(FixItem(key[0], key[1], str(protocol), service, worst, merged_exposure(found), len(found),
                             key in exposed))
    items.sort(key=lambda i: (-(i.worst.severity.rank if i.worst else -1), _likely_honeypot(i.service),
                              -_weight(i.exposure), address_order(i.host), i.port))
    return items


def by_check(findings: Iterable[Finding]) -> list[list[Finding]]:
    """Findings grouped by check, each group in address order: the worst checks first, then the
    check that gives away most, then the one on most services."""
    groups: dict[str, list[Finding]] = {}
    for finding in ordered(findings):
        groups.setdefault(finding.check_id, []).append(finding)
    return sorted(groups.values(), key=lambda g: (-g[0].severity.rank, -sum(_weight(f.exposure) for f in g),
                                                  -len(g), g[0].check_id))
