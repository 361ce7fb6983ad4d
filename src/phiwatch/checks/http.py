"""Web PACS and DICOMweb checks over HttpFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import DicomWebExposure, Exposure, HttpFacts, Service
from . import Observation, check


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


@check
def dicomweb_studies_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    exposed = [d for d in _exposed(facts) if d.access == "none"]
    if not exposed:
        return None
    first = exposed[0]
    how = "exactly, from the server's statistics" if first.exact else "by bounded QIDO-RS paging"
    counted = f"at least {first.studies}" if first.truncated else str(first.studies)
    phi = ", ".join(first.phi_attributes) or "none seen"
    return Observation(
        evidence=(
            f"QIDO-RS {first.root}/studies answered without authentication on {_products(facts)}: "
            f"{counted} studies and {first.instances} instances (counted {how}); "
            f"non-empty PHI attributes: {phi}."
        ),
        exposure=Exposure(studies=first.studies, instances=first.instances,
                          phi_attributes=first.phi_attributes),
    )


@check
def web_blank_login_accepted(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.blank_login:
        return None
    exposed = [d for d in _exposed(facts) if d.access == "blank-login"]
    exposure = None
    note = ""
    if exposed:
        exposure = Exposure(studies=exposed[0].studies, instances=exposed[0].instances,
                            phi_attributes=exposed[0].phi_attributes)
        note = f"; with it, QIDO-RS listed {exposed[0].studies} studies"
    return Observation(
        evidence=f"An empty user name and password were accepted by {_products(facts)}{note}.",
        exposure=exposure,
    )


@check
def web_default_login_accepted(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.default_login_user is None:
        return None
    exposed = [d for d in _exposed(facts) if d.access == "default-login"]
    exposure = None
    note = ""
    if exposed:
        exposure = Exposure(studies=exposed[0].studies, instances=exposed[0].instances,
                            phi_attributes=exposed[0].phi_attributes)
        note = f"; with it, {exposed[0].studies} studies were listed"
    return Observation(
        evidence=(
            f"The well-known default login of user {facts.default_login_user!r} was accepted by "
            f"{_products(facts)} (after {facts.default_logins_tried} attempt(s)){note}."
        ),
        exposure=exposure,
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
