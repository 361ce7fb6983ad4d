"""FTP repository checks over RepositoryFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import exposure, files, medical_evidence, walk_note


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "ftp" else None


@check
def ftp_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous" or not files(facts.shares):
        return None
    return Observation(
        evidence=medical_evidence(f"Anonymous FTP login as {facts.login!r}", facts.shares),
        exposure=exposure(facts.shares),
    )


@check
def ftp_anonymous_access(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous" or files(facts.shares):
        return None
    readable = any(share.readable for share in facts.shares)
    entries = sum(share.entries for share in facts.shares)
    seen = f"{entries} entries listed, no medical file seen" if readable else "the root could not be listed"
    return Observation(
        evidence=f"Anonymous FTP login as {facts.login!r} was accepted ({seen}; {walk_note(facts.shares)})."
    )


@check
def ftp_no_tls(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.tls_offered is not False or facts.access not in ("anonymous", "denied"):
        return None
    how = "accepted an anonymous login" if facts.access == "anonymous" else "takes user names and passwords"
    return Observation(
        evidence=(
            f"The FTP server {how} but does not offer AUTH TLS (FEAT): credentials and files "
            "cross the network in clear text."
        )
    )
