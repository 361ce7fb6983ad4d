"""The journal's store for a scan that writes nothing (`scan --no-db`): this process's memory.

It keeps what `Store` would keep, in the same form (each service and finding as its JSON
dump, a service recorded again replacing the earlier record of the same host and port) and
gives it back in the same order, without SQLAlchemy: a scan without the store starts without
importing it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .litestore import stored_result
from .models import Finding, ScanInfo, ScanResult, Service


class ScratchStore:
    path = ":memory:"

    def __init__(self) -> None:
        self.info: dict | None = None
        self.found: dict[tuple[str, int], tuple[dict, list[dict]]] = {}
        self.done: dict[int, tuple[str, int]] = {}

    def begin(self, info: ScanInfo, request: dict, shard_size: int) -> None:
        self.info = info.model_dump(mode="json")

    def record(self, scan_id: str, found: Iterable[tuple[Service, list[Finding]]],
               shard: tuple[int, str, int] | None = None) -> None:
        for service, findings in found:
            key = (service.host, service.port)
            self.found.pop(key, None)  # as the store does: the earlier record goes, the new one comes last
            self.found[key] = (service.model_dump(mode="json"), [f.model_dump(mode="json") for f in findings])
        if shard is not None:
            index, digest, units = shard
            self.done[index] = (digest, units)

    def finish(self, info: ScanInfo) -> None:
        self.info = info.model_dump(mode="json")

    def shards(self, scan_id: str) -> dict[int, tuple[str, int]]:
        return dict(self.done)

    def load(self, scan_id: str) -> ScanResult | None:
        if self.info is None:
            return None
        return stored_result(self.info, [service for service, _ in self.found.values()],
                             [finding for _, findings in self.found.values() for finding in findings])

    def close(self) -> None:
        self.found.clear()
