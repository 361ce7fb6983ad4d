"""Exposure totals over findings: one service counted once, at the largest counts proved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from ..models import Finding


@dataclass(frozen=True)
class Counts:
    studies: int = 0
    instances: int = 0
    dicom: int = 0
    hl7: int = 0
    x12: int = 0

    def merge(self, other: Counts) -> Counts:
        return Counts(*(max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def exposure_by_service(findings: Iterable[Finding]) -> dict[tuple[str, int], Counts]:
    """Per (host, port): several findings can carry the same exposure, so take the maximum."""
    services: dict[tuple[str, int], Counts] = {}
    for finding in findings:
        seen = finding.exposure
        if seen is None:
            continue
        counts = Counts(seen.studies, seen.instances or 0, seen.files.dicom, seen.files.hl7, seen.files.x12)
        key = (finding.host, finding.port)
        services[key] = services.get(key, Counts()).merge(counts)
    return services


def total(by_service: dict[tuple[str, int], Counts]) -> Counts:
    return sum(by_service.values(), Counts())
