"""File repositories served over HTTP (S3-compatible endpoints, directory indexes), found on web ports.

After the HTTP probe has identified a web service, each registered probe here may look
at it (in registration order) and return what it found; the first answer wins. A probe
returns None when the service is not its kind of repository.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..engine import Engine
from ..models import HttpFacts
from .walk import FileOptions, Outcome


@dataclass
class WebRepository:
    protocol: str  # the service's protocol from now on: "s3", or "http"/"https" for a directory index
    outcome: Outcome


WebRepositoryProbe = Callable[[Engine, str, int, bool, HttpFacts, FileOptions], Awaitable[WebRepository | None]]
PROBES: list[WebRepositoryProbe] = []


def register(probe: WebRepositoryProbe) -> WebRepositoryProbe:
    PROBES.append(probe)
    return probe


async def probe(
    engine: Engine, host: str, port: int, tls: bool, facts: HttpFacts, options: FileOptions
) -> WebRepository | None:
    """The first registered probe's answer for this web service, or None."""
    for candidate in PROBES:
        found = await candidate(engine, host, port, tls, facts, options)
        if found is not None:
            return found
    return None


# Registering modules (each calls register at import).
from . import dirindex as _dirindex  # noqa: E402,F401
from . import s3 as _s3  # noqa: E402,F401
