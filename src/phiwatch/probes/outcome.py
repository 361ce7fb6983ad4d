"""What every probe is given and what every probe ends with: one signature for all protocols.

    async def probe(engine: Engine, peer: Peer, options: ProbeOptions) -> Outcome | None

`peer` says where (host, port, TLS or not, the sweep's open connection when it is handed
over, and for a probe that rides on HTTP the facts the HTTP probe gathered there). The
probe answers with an `Outcome`: a status from the closed vocabulary, its protocol's facts
and a short detail. None means "not my protocol" (a web service that is no S3 endpoint).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..models import HttpFacts, ProbeStatus, TlsFacts

if TYPE_CHECKING:
    from ..engine import Channel, Engine
    from .options import ProbeOptions

F = TypeVar("F")


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    tls: bool = False
    channel: Channel | None = None  # the sweep's connection, for a probe that speaks first on it
    http: HttpFacts | None = None  # what the HTTP probe saw, for a probe that rides on HTTP


@dataclass
class Outcome(Generic[F]):
    """What a probe ends with; `facts` is its protocol's facts model."""

    status: ProbeStatus
    facts: F
    detail: str | None = None
    tls: TlsFacts | None = None


Probe = Callable[["Engine", Peer, "ProbeOptions"], Awaitable["Outcome[Any] | None"]]
