"""A scan's journal in the store, and `scan --resume`.

While a scan runs, each open service and its findings is recorded as soon as it is
found (committed in small batches: every BATCH services, every INTERVAL seconds,
and at each shard's end), and each shard is marked complete once every address
(or listed service) in it was scanned. A shard's row carries a digest of its
content.

Resume rebuilds the request stored with the scan, cuts the same shards again and
skips exactly those recorded complete with the same digest (a target that
resolves differently now, or a changed list, makes its shard run again). Services
already recorded stay; those of unfinished shards are recorded again, replacing
the earlier row of the same host and port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cluster import Shard
from .events import HostDone, ScanEvent, ServiceDone
from .models import Finding, ScanInfo, ScanResult, Service
from .scanner import Scanner, ScanOutcome
from .targets import TargetError, TargetSet

if TYPE_CHECKING:
    from .request import ScanRequest
    from .scratch import ScratchStore
    from .store import Store

BATCH = 64
INTERVAL = 1.0
# Taken from the command that resumes, never from the stored request: they change
# where results go and how progress shows, not what is scanned.
LOCAL_FIELDS = ("output", "db", "store", "log_file", "progress", "cluster", "resume", "formats", "jsonl",
                "verbosity", "severities")


def request_record(request: ScanRequest) -> dict:
    """The request as JSON, for the store."""
    record = {}
    for item in dataclasses.fields(request):
        value = getattr(request, item.name)
        if item.name in LOCAL_FIELDS:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        record[item.name] = value
    return record


def resumed_request(request: ScanRequest) -> tuple[ScanRequest, ScanInfo]:
    """The stored request of scan `request.resume`, with this command's output and progress
    settings; and the stored scan info (its id and start are kept)."""
    if not request.store:
        raise TargetError("--resume needs the store; drop --no-db")
    if request.targets or request.input_lists or request.from_file:
        raise TargetError("--resume takes the targets and options of the stored scan; give no targets")
    scan_id = request.resume or ""
    from .store import Store

    store = Store(request.db)
    try:
        stored = store.plan(scan_id)
    finally:
        store.close()
    if stored is None:
        raise TargetError(f"no resumable scan {scan_id[:80]!r} in {str(store.path)!r}")
    info, record, _ = stored
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(request):
        if item.name in LOCAL_FIELDS or item.name not in record:
            continue
        value = record[item.name]
        kind = str(item.type)
        if isinstance(value, str) and "Path" in kind:
            value = Path(value)
        elif isinstance(value, list) and kind.startswith("tuple"):
            value = tuple(value)
        changes[item.name] = value
    return dataclasses.replace(request, **changes), info


class Journal:
    """Records one scan in the store as it runs; the final result is read back from it."""

    def __init__(self, store: Store | ScratchStore, info: ScanInfo, request: dict, shard_size: int) -> None:
        self.store = store
        self.scan_id = info.id
        self.buffer: list[tuple[Service, list[Finding]]] = []
        self.last_flush = time.monotonic()
        self.done = store.shards(info.id)
        self.units_before = sum(units for _, units in self.done.values())
        self.skipped: dict[int, int] = {}  # shard -> units, of the shards pending() left out
        store.begin(info, request, shard_size)

    def pending(self, shards: Iterator[Shard]) -> Iterator[Shard]:
        """The shards not yet recorded complete (with this very content)."""
        for shard in shards:
            if self.done.get(shard.index, ("", 0))[0] != shard.digest:
                yield shard
            else:
                self.skipped[shard.index] = shard.units

    def service(self, done: ServiceDone) -> None:
        """A service and the findings its checks made in the scanner (they are not run again)."""
        self.buffer.append((done.service, done.findings))
        if len(self.buffer) >= BATCH or time.monotonic() - self.last_flush >= INTERVAL:
            self.flush()

    def flush(self, shard: Shard | None = None) -> None:
        if not self.buffer and shard is None:
            return
        found, self.buffer = self.buffer, []
        self.store.record(self.scan_id, found, _shard_key(shard))
        self.last_flush = time.monotonic()

    def shard_done(self, shard: Shard) -> None:
        self.flush(shard)

    def shard_results(self, shard: Shard, done: list[ServiceDone]) -> None:
        """A shard scanned elsewhere: its services, findings and completion, in one transaction."""
        self.store.record(self.scan_id, [(d.service, d.findings) for d in done], _shard_key(shard))

    async def ticking(self) -> None:
        """Flush at least every INTERVAL seconds while a scan runs in this event loop."""
        while True:
            await asyncio.sleep(INTERVAL)
            self.flush()

    def finish(self, info: ScanInfo, outcome: ScanOutcome) -> ScanResult:
        """Mark the scan's end and read the whole result back from the store."""
        self.flush()
        info.complete = outcome.complete
        info.addresses_done = sum(self.skipped.values()) + outcome.progress.done
        self.store.finish(info)
        outcome.services.clear()  # stored already: one copy in memory at a time (peak RSS)
        outcome.findings.clear()
        loaded = self.store.load(self.scan_id)
        assert loaded is not None
        return ScanResult(scan=info, services=loaded.services, findings=loaded.findings)


def _shard_key(shard: Shard | None) -> tuple[int, str, int] | None:
    return None if shard is None else (shard.index, shard.digest, shard.units)


class ShardTracker:
    """The local path: one streaming Scanner over the pending shards; a shard is complete when
    the scanner reported every address (or listed host) of it done."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.left: dict[int, tuple[Shard, int]] = {}
        self.hosts: dict[str, dict[int, int]] = {}

    def _note(self, host: str, shard: Shard) -> None:
        counts = self.hosts.setdefault(host, {})
        counts[shard.index] = counts.get(shard.index, 0) + 1

    def addresses(self, shards: Iterator[Shard]) -> Iterator[str]:
        for shard in shards:
            self.left[shard.index] = (shard, shard.units)
            for block in shard.blocks:
                for address in block.addresses():
                    self._note(address, shard)
                    yield address

    def services(self, shards: Iterator[Shard]) -> Iterator[tuple[str, int]]:
        for shard in shards:
            self.left[shard.index] = (shard, shard.units)
            for host, port in shard.services:
                self._note(host, shard)
                yield host, port

    def event(self, event: ScanEvent) -> None:
        """The scanner's listener: record services; a host done finishes what was handed out for it."""
        if isinstance(event, ServiceDone):
            self.journal.service(event)
        elif isinstance(event, HostDone):
            for index, count in self.hosts.pop(event.host, {}).items():
                shard, left = self.left[index]
                if left > count:
                    self.left[index] = (shard, left - count)
                else:
                    del self.left[index]
                    self.journal.shard_done(shard)

    def job(
        self, shards: Callable[[], Iterator[Shard]], sweep: bool, total: int
    ) -> Callable[[Scanner], Coroutine[Any, Any, ScanOutcome]]:
        """The scanner's job over the pending shards, with the journal flushed every second."""

        async def job(scanner: Scanner) -> ScanOutcome:
            ticker = asyncio.create_task(self.journal.ticking())
            try:
                if sweep:
                    return await scanner.run(_PendingTargets(self, shards, total))
                return await scanner.run_services(self.services(shards()), total)
            finally:
                ticker.cancel()

        return job


class _PendingTargets(TargetSet):
    """The addresses of the pending shards, streamed; shards are cut as the scanner pulls."""

    def __init__(self, tracker: ShardTracker, shards: Callable[[], Iterator[Shard]], size: int) -> None:
        super().__init__()
        self._tracker = tracker
        self._shards = shards
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def addresses(self) -> Iterator[str]:
        return self._tracker.addresses(self._shards())
