"""Compliance mappings as data: which framework requirements each check id bears on.

Checks never name a framework; the JSON files here map check ids to requirement ids.
Each finding carries the requirement ids it bore on when it was made (checks.make_finding),
and summaries count those. A requirement fails when a finding of severity low or above maps
to it; informational findings are counted but neither fail nor pass it (only informational
findings: "not assessed", a person has to look). A requirement no check maps to is "not
assessed" (a network scan cannot observe it). A scan that was cut short (interrupted, or with
probes that did not finish) never passes a requirement: what it did not see is "not assessed".
Each "not assessed" says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..models import UNFINISHED, Finding, ScanResult, Severity

FILES = ("hipaa.json", "gdpr.json")
NOT_OBSERVABLE = "a network scan cannot observe it"
INFO_ONLY = "only informational findings: review them"
CUT_SHORT = "the scan was cut short"


class ComplianceError(Exception):
    pass


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=2)
    title: str = Field(min_length=3)
    description: str = Field(min_length=10)
    checks: list[str] = []

    @model_validator(mode="after")
    def _unique_checks(self) -> Requirement:
        if len(set(self.checks)) != len(self.checks):
            raise ValueError(f"{self.id}: a check id is listed twice")
        return self


class Framework(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str = Field(min_length=2)
    name: str
    version: str
    requirements: list[Requirement] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_requirements(self) -> Framework:
        ids = [r.id for r in self.requirements]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.framework}: a requirement id is listed twice")
        return self


class RequirementSummary(BaseModel):
    id: str
    title: str
    status: Literal["fail", "pass", "not-assessed"]
    findings: dict[Severity, int] = Field(description="Findings mapped to this requirement, by severity")
    checks: list[str] = Field([], description="Check ids that fired against this requirement")
    reason: str = Field("", description="Why a requirement is not assessed")


class FrameworkSummary(BaseModel):
    framework: str
    name: str
    version: str
    failing: int
    passing: int
    not_assessed: int
    requirements: list[RequirementSummary]
    partial: bool = Field(False, description="The scan was cut short: no requirement can pass")


@cache
def frameworks_by_id() -> dict[str, Framework]:
    folder = resources.files(__name__)
    loaded: dict[str, Framework] = {}
    for filename in FILES:
        try:
            framework = Framework.model_validate(json.loads(folder.joinpath(filename).read_text("utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ComplianceError(f"{filename}: {exc}") from exc
        if framework.framework in loaded:
            raise ComplianceError(f"{filename}: duplicate framework {framework.framework}")
        loaded[framework.framework] = framework
    return loaded


def frameworks() -> list[Framework]:
    return list(frameworks_by_id().values())


@cache
def _index() -> dict[str, dict[str, list[str]]]:
    index: dict[str, dict[str, list[str]]] = {}
    for framework in frameworks():
        for requirement in framework.requirements:
            for check_id in requirement.checks:
                index.setdefault(check_id, {}).setdefault(framework.framework, []).append(requirement.id)
    return index


def requirements_for(check_id: str) -> dict[str, list[str]]:
    """Framework id (e.g. "HIPAA") -> requirement ids this check maps to; every framework listed."""
    mapped = _index().get(check_id, {})
    return {framework.framework: list(mapped.get(framework.framework, [])) for framework in frameworks()}


def _fails(severity: Severity) -> bool:
    return severity.rank >= Severity.LOW.rank


def fully_observed(result: ScanResult) -> bool:
    """The scan ended complete and every probe it began finished: only then can a requirement pass."""
    return result.scan.complete and not any(s.status in UNFINISHED for s in result.services)


def summarise(findings: Iterable[Finding], *, complete: bool = True) -> list[FrameworkSummary]:
    """Each framework's requirements; with `complete` False (a partial scan) none passes."""
    findings = list(findings)
    summaries = []
    for framework in frameworks():
        rows = []
        for requirement in framework.requirements:
            mapped = set(requirement.checks)  # today's mapping: only to tell "not assessed"
            hits = [f for f in findings if requirement.id in f.compliance.get(framework.framework, ())]
            counts = {severity: 0 for severity in Severity}
            for finding in hits:
                counts[finding.severity] += 1
            reason = ""
            status: Literal["fail", "pass", "not-assessed"] = "not-assessed"
            if not mapped:
                reason = NOT_OBSERVABLE
            elif any(_fails(f.severity) for f in hits):
                status = "fail"
            elif hits:
                reason = INFO_ONLY  # informational findings alone prove nothing either way
            elif not complete:
                reason = CUT_SHORT
            else:
                status = "pass"
            fired = sorted({f.check_id for f in hits})
            rows.append(RequirementSummary(id=requirement.id, title=requirement.title, status=status,
                                           findings=counts, checks=fired, reason=reason))
        summaries.append(FrameworkSummary(
            framework=framework.framework,
            name=framework.name,
            version=framework.version,
            failing=sum(r.status == "fail" for r in rows),
            passing=sum(r.status == "pass" for r in rows),
            not_assessed=sum(r.status == "not-assessed" for r in rows),
            requirements=rows,
            partial=not complete,
        ))
    return summaries
