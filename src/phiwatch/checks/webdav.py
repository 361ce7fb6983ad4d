"""WebDAV share checks over RepositoryFacts (listing "webdav"). Pure: no sockets.

A WebDAV share rides on a web port: its services keep the name http or https."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import listing_observation, medical_observation, web_listing


def _where(facts: RepositoryFacts) -> str:
    return "Orthanc's WebDAV tree (/webdav/)" if facts.dialect == "orthanc" else "a WebDAV share"


@check
def webdav_medical_files_exposed(service: Service) -> Observation | None:
    facts = web_listing(service, "webdav")
    if facts is None:
        return None
    return medical_observation(facts, f"Anonymous PROPFIND listings of {_where(facts)}")


@check
def webdav_anonymous_listing(service: Service) -> Observation | None:
    facts = web_listing(service, "webdav")
    if facts is None:
        return None
    return listing_observation(facts, f"{_where(facts).capitalize()} answers PROPFIND without credentials")
