"""Checks: pure functions over a Service's facts, plus a validated catalog of metadata.

A check returns None (nothing to report) or an `Observation` (evidence and, for data
exposures, the exposure counts). Which checks apply to a service comes from the protocol
table (phiwatch.probes.PROTOCOLS: each row names its check modules). The catalog supplies
title, severity, risk, remediation and references, so checks never format reports and
reports never re-derive a severity.
"""

from __future__ import annotations

import importlib
from functools import cache

from ..models import Finding, Service
from ..probes import PROTOCOLS, check_modules
from .base import CheckFunction, Observation, check, is_check
from .metadata import load_catalog

__all__ = ["CheckFunction", "Observation", "all_checks", "check", "checks_for", "evaluate"]


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
    catalog = load_catalog()
    findings: list[Finding] = []
    for func in checks_for(service.protocol):
        entry = catalog[func.__name__]
        if service.protocol not in entry.protocols:
            continue
        observation = func(service)
        if observation is None:
            continue
        findings.append(
            Finding(
                check_id=entry.id,
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
