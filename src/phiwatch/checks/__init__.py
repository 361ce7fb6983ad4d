"""Checks: pure functions over a Service's facts, plus a validated catalog of metadata.

A check returns None (nothing to report) or an `Observation` (evidence and, for data
exposures, the exposure counts). Which checks apply to a service comes from the protocol
table (phiwatch.probes.PROTOCOLS: each row names its check modules). The catalog supplies
title, severity, risk, remediation and references, so checks never format reports and
reports never re-derive a severity.
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
from functools import cache
from importlib import resources
from urllib.parse import quote

from .. import __version__
from ..compliance import FILES as COMPLIANCE_FILES
from ..compliance import requirements_for
from ..models import Finding, Protocol, Service
from ..probes import PROTOCOLS, check_modules
from .base import CheckFunction, Observation, check, is_check
from .metadata import CatalogEntry, load_catalog

__all__ = ["CheckFunction", "Observation", "all_checks", "catalog_version", "check", "checks_for", "evaluate",
           "location", "make_finding"]


@cache
def _module_checks(name: str) -> tuple[CheckFunction, ...]:
    module = importlib.import_module(f"{__package__}.{name}")
    return tuple(value for value in vars(module).values()
                 if is_check(value) and getattr(value, "__module__", None) == module.__name__)


@cache
def checks_for(protocol: str) -> tuple[CheckFunction, ...]:
    """The checks that apply to a service of this protocol, from the protocol table."""
    return tuple(func for name in check_modules(protocol) for func in _module_checks(name))


def all_checks() -> dict[str, CheckFunction]:
    """Every check any row of the protocol table names, by catalog id."""
    found: dict[str, CheckFunction] = {}
    for spec in PROTOCOLS:
        for name in spec.checks:
            for func in _module_checks(name):
                if found.setdefault(func.__name__, func) is not func:
                    raise ValueError(f"check {func.__name__} defined twice")
    return found


def evaluate(service: Service) -> list[Finding]:
    """Every check that applies to the service, run once; each finding made complete here."""
    catalog = load_catalog()
    findings: list[Finding] = []
    for func in checks_for(service.protocol):
        entry = catalog[func.__name__]
        if service.protocol not in entry.protocols:
            continue
        observation = func(service)
        if observation is not None:
            findings.append(make_finding(entry, service.host, service.port, service.protocol, observation))
    return findings


def make_finding(entry: CatalogEntry, host: str, port: int, protocol: str, observation: Observation) -> Finding:
    """The one place a finding gets what every output shows: the catalog's texts, the compliance
    requirements it bears on, its location and the catalog's version. Stored with the scan."""
    return Finding(
        check_id=entry.id,
        title=entry.title,
        severity=entry.severity,
        host=host,
        port=port,
        protocol=Protocol(protocol),
        uri=location(host, port, protocol) if host else "",
        evidence=observation.evidence,
        exposure=observation.exposure,
        description=entry.description,
        risk=entry.risk,
        remediation=entry.remediation,
        references=list(entry.references),
        categories=list(entry.categories),
        compliance={framework: ids for framework, ids in requirements_for(entry.id).items() if ids},
        catalog_version=catalog_version(),
    )


def location(host: str, port: int, protocol: str) -> str:
    """The service as a URI (for SARIF and the reports): http(s)://, dicom://, else tcp://."""
    try:
        ip = ipaddress.ip_address(host)
        where = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        where = quote(host, safe="")
    if protocol in ("http", "https"):
        return f"{protocol}://{where}:{port}/"
    if protocol == "dicom":
        return f"dicom://{where}:{port}"
    return f"tcp://{where}:{port}"


@cache
def catalog_version() -> str:
    """phiwatch's version and a digest of the catalog and the compliance mappings, e.g. 0.1.0+3f2a9c1d04be."""
    digest = hashlib.sha256()
    folders = ((resources.files(__name__).joinpath("catalog"), None),
               (resources.files("phiwatch.compliance"), COMPLIANCE_FILES))
    for folder, names in folders:
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if (names is None and item.name.endswith(".yaml")) or (names is not None and item.name in names):
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"
