"""Web PACS and DICOMweb checks over HttpFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import DicomWebExposure, Exposure, HttpFacts, Service
from .base import Observation, check


def _facts(service: Service) -> HttpFacts | None:
    return service.http


def _products(facts: HttpFacts) -> str:
    versions: dict[str, str | None] = {}
    for match in facts.products:
        versions[match.product] = versions.get(match.product) or match.version
    names = [f"{name} {version}" if version else name for name, version in versions.items()]
    return ", ".join(names) or "an unidentified server"


def _exposed(facts: HttpFacts) -> list[DicomWebExposure]:
    return [d for d in facts.dicomweb if d.result == "exposed"]


def _first_exposure(facts: HttpFacts, access: str) -> DicomWebExposure | None:
    """The first DICOMweb exposure reached with this kind of access, if any."""
    return next((d for d in _exposed(facts) if d.access == access), None)


def _counts(exposure: DicomWebExposure | None) -> Exposure | None:
    if exposure is None:
        return None
    return Exposure(studies=exposure.studies, instances=exposure.instances,
                    phi_attributes=exposure.phi_attributes)


@check
def dicomweb_studies_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    first = _first_exposure(facts, "none")
    if first is None:
        return None
    how = "exactly, from the server's statistics" if first.exact else "by bounded QIDO-RS paging"
    counted = f"at least {first.studies}" if first.truncated else str(first.studies)
    phi = ", ".join(first.phi_attributes) or "none seen"
    return Observation(
        evidence=(
            f"QIDO-RS {first.root}/studies answered without authentication on {_products(facts)}: "
            f"{counted} studies and {first.instances} instances (counted {how}); "
            f"non-empty PHI attributes: {phi}."
        ),
        exposure=_counts(first),
    )


@check
def web_blank_login_accepted(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.blank_login:
        return None
    reached = _first_exposure(facts, "blank-login")
    note = f"; with it, QIDO-RS listed {reached.studies} studies" if reached else ""
    return Observation(
        evidence=f"An empty user name and password were accepted by {_products(facts)}{note}.",
        exposure=_counts(reached),
    )


@check
def web_default_login_accepted(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.default_login_user is None:
        return None
    reached = _first_exposure(facts, "default-login")
    note = f"; with it, {reached.studies} studies were listed" if reached else ""
    return Observation(
        evidence=(
            f"The well-known default login of user {facts.default_login_user!r} was accepted by "
            f"{_products(facts)} (after {facts.default_logins_tried} attempt(s)){note}."
        ),
        exposure=_counts(reached),
    )


@check
def web_pacs_open(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.open_paths:
        return None
    return Observation(
        evidence=(
            f"{_products(facts)} answered {', '.join(facts.open_paths)} without any credentials."
        )
    )


@check
def web_credentials_over_http(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.scheme != "http":
        return None
    asks = []
    if facts.auth_scheme:
        asks.append(f"HTTP {facts.auth_scheme} authentication")
    if facts.login_form:
        asks.append("a password form")
    if not asks:
        return None
    return Observation(
        evidence=f"{_products(facts)} asks for credentials ({' and '.join(asks)}) over plain HTTP."
    )


@check
def web_cors_wildcard_credentials(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.cors_wildcard_credentials:
        return None
    roots = ", ".join(d.root for d in facts.dicomweb if d.cors_wildcard)
    return Observation(
        evidence=(
            f"DICOMweb ({roots}) answers any web origin with Access-Control-Allow-Credentials: true."
        )
    )


@check
def web_known_vulnerable_version(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.vulnerabilities:
        return None
    return Observation(
        evidence=f"{_products(facts)} is a version with known flaws: {', '.join(facts.vulnerabilities)}."
    )


@check
def web_pacs_detected(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.products or facts.open_paths or facts.blank_login:
        return None
    if facts.default_login_user or _exposed(facts):
        return None
    return Observation(
        evidence=f"{_products(facts)} found; nothing was exposed to this probe without credentials."
    )
