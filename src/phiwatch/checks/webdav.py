"""WebDAV share checks over RepositoryFacts (listing "webdav"). Pure: no sockets.

A WebDAV share rides on a web port: its services keep the name http or https."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import exposure, files, medical_evidence, walk_note


def _facts(service: Service) -> RepositoryFacts | None:
    facts = service.repository
    if service.protocol not in ("http", "https") or facts is None or facts.listing != "webdav":
        return None
    return facts if facts.access == "anonymous" else None


def _where(facts: RepositoryFacts) -> str:
    return "Orthanc's WebDAV tree (/webdav/)" if facts.dialect == "orthanc" else "a WebDAV share"


@check
def webdav_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not files(facts.shares):
        return None
    return Observation(
        evidence=medical_evidence(f"Anonymous PROPFIND listings of {_where(facts)}", facts.shares),
        exposure=exposure(facts.shares),
    )


@check
def webdav_anonymous_listing(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or files(facts.shares):
        return None
    entries = sum(share.entries for share in facts.shares)
    folders = sum(share.directories for share in facts.shares)
    return Observation(
        evidence=(
            f"{_where(facts).capitalize()} answers PROPFIND without credentials: {entries} entries in "
            f"{folders} folder(s) listed, no medical file seen ({walk_note(facts.shares)})."
        )
    )
