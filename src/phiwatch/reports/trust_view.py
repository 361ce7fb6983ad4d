"""The exposure ladder and trust, as every report shows them (before the findings).

One view for all writers: the ladder per protocol family with raw and filtered counts,
exposure totals side by side, and per service its trust mark. Reports never compute
trust themselves; they read `ScanResult.summary` and `Service.trust`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ScanResult, Service, Trust

FAMILY_TITLES = {"dicom": "DICOM", "web": "Web PACS and DICOMweb", "files": "File repositories"}
STEP_TITLES = {
    "tcp_open": "TCP port open",
    "association_accepted": "Association accepted",
    "any_called_ae": "Any called AE title accepted",
    "echo_answered": "C-ECHO answered",
    "query_answered": "Query answered",
    "studies_exposed": "Studies exposed",
    "tls": "TLS spoken",
    "reachable": "Reachable",
    "product_identified": "Product identified",
    "unauthenticated_api": "Unauthenticated API",
    "data_listed": "Data listed",
    "anonymous_access": "Anonymous access",
    "listing": "Listing",
    "medical_files_verified": "Medical files verified",
}


@dataclass
class LadderRow:
    step: str
    title: str
    raw: int
    filtered: int


@dataclass
class LadderFamily:
    id: str
    title: str
    rows: list[LadderRow]


@dataclass
class TrustView:
    families: list[LadderFamily]
    honeypots: int
    fleets: int
    excluded: bool
    totals: list[tuple[str, int, int]]  # label, raw, filtered


def trust_view(result: ScanResult) -> TrustView | None:
    summary = result.summary
    if summary is None:
        return None
    families = [
        LadderFamily(family, FAMILY_TITLES.get(family, family),
                     [LadderRow(s.step, STEP_TITLES.get(s.step, s.step), s.raw, s.filtered) for s in steps])
        for family, steps in summary.ladder.items()
    ]
    raw, filtered = summary.raw, summary.filtered
    totals = [
        ("Exposed services", raw.exposed_services, filtered.exposed_services),
        ("Studies", raw.studies, filtered.studies),
        ("Instances", raw.instances, filtered.instances),
        ("DICOM files", raw.files.dicom, filtered.files.dicom),
        ("HL7 files", raw.files.hl7, filtered.files.hl7),
        ("X12 files", raw.files.x12, filtered.files.x12),
    ]
    return TrustView(families, summary.likely_honeypots, summary.fleets, summary.honeypots_excluded, totals)


def trust_of(result: ScanResult) -> dict[tuple[str, int], Trust]:
    return {(s.host, s.port): s.trust for s in result.services if s.trust is not None}


def mark(trust: Trust | None) -> str:
    """One short text: 'likely honeypot (0.12: reason, reason)' or 'trust 0.90 (reason)' or ''."""
    if trust is None or (not trust.reasons and trust.cluster is None):
        return ""
    parts = []
    if trust.reasons:
        label = "likely honeypot" if trust.honeypot else "trust"
        parts.append(f"{label} {trust.score:.2f}: {', '.join(r.value for r in trust.reasons)}")
    if trust.cluster:
        parts.append(f"cluster {trust.cluster}")
    return "; ".join(parts)


def service_mark(service: Service) -> str:
    return mark(service.trust)


def summary_line(result: ScanResult) -> str:
    summary = result.summary
    if summary is None:
        return "no exposure ladder in this scan"
    raw, filtered = summary.raw, summary.filtered
    excluded = " (left out of these reports)" if summary.honeypots_excluded else ""
    return (f"likely honeypots: {summary.likely_honeypots}{excluded}; exposed services raw {raw.exposed_services}"
            f" / filtered {filtered.exposed_services}; studies raw {raw.studies} / filtered {filtered.studies}")
