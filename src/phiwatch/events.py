"""What a running scan tells its listeners (the journal, the progress display, the cluster's
coordinator): typed events, the same whether the scan runs here or on a Dask worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .models import Finding, Service


@dataclass(frozen=True)
class ServiceDone:
    """One open service probed, with the findings its checks made (checks ran once, here)."""

    service: Service
    findings: list[Finding]


@dataclass(frozen=True)
class HostDone:
    """Every port of one address (or every listed service of one host) handed out is done."""

    host: str


@dataclass(frozen=True)
class ShardDone:
    """A shard scanned on the cluster came back complete and was recorded."""

    index: int


ScanEvent = ServiceDone | HostDone | ShardDone
Listener = Callable[[ScanEvent], None]
