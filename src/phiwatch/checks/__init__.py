"""Checks: pure functions over a Service's facts, plus a validated catalog of metadata.

A check returns None (nothing to report) or an `Observation` (evidence and, for data
exposures, the exposure counts). The catalog supplies title, severity, risk,
remediation and references, so checks never format reports and reports never
re-derive a severity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..models import Exposure, Finding, Service
from .metadata import CatalogEntry, load_catalog


@dataclass(frozen=True)
class Observation:
    evidence: str
    exposure: Exposure | None = None


CheckFunction = Callable[[Service], Observation | None]
REGISTRY: dict[str, CheckFunction] = {}


def check(func: CheckFunction) -> CheckFunction:
    """Register a check under its function name, which is its catalog id."""
    if func.__name__ in REGISTRY:
        raise ValueError(f"check {func.__name__} registered twice")
    REGISTRY[func.__name__] = func
    return func


def evaluate(service: Service) -> list[Finding]:
    catalog = load_catalog()
    findings: list[Finding] = []
    for check_id, func in REGISTRY.items():
        entry: CatalogEntry = catalog[check_id]
        if service.protocol not in entry.protocols:
            continue
        observation = func(service)
        if observation is None:
            continue
        findings.append(
            Finding(
                check_id=check_id,
                title=entry.title,
                severity=entry.severity,
                host=service.host,
                port=service.port,
                protocol=service.protocol,
                evidence=observation.evidence,
                exposure=observation.exposure,
                remediation=entry.remediation,
                references=entry.references,
            )
        )
    return findings


# Registering modules: one per protocol.
from . import dicom as _dicom  # noqa: E402,F401
from . import dirindex as _dirindex  # noqa: E402,F401
from . import ftp as _ftp  # noqa: E402,F401
from . import http as _http  # noqa: E402,F401
from . import nfs as _nfs  # noqa: E402,F401
from . import rsync as _rsync  # noqa: E402,F401
from . import s3 as _s3  # noqa: E402,F401
from . import smb as _smb  # noqa: E402,F401
