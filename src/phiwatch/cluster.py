"""Shards of a scan, and a scan spread over a Dask cluster.

A shard is plain data: a contiguous run of at most N addresses of the target set
(as address blocks, excludes already subtracted) or a chunk of at most N listed
services. Shards are cut while streaming, so the target space is never expanded.

With `--cluster tcp://HOST:PORT` the coordinator submits shards to the Dask
scheduler, a bounded number at a time; each worker task runs the same Scanner
on its shard in a fresh event loop, under the scan's limits (per task: run
workers with `--nthreads 1` to make them per worker), and returns the shard's
services and findings as JSON. The coordinator records each shard as it
completes, so a worker killed mid-shard loses only that shard, which Dask
reschedules (or a later `--resume` redoes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .events import ScanEvent, ServiceDone, ShardDone
from .models import UNFINISHED, Finding, ProbeStatus, Service
from .scanner import Progress, ScanConfig, Scanner, ScanOutcome
from .targets import Block, TargetError, TargetSet

log = logging.getLogger("phiwatch")

RETRIES = 2  # a shard whose task fails is submitted again this many times, then left for --resume
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class Shard:
    """One unit of work and of completion: address blocks (a sweep) or listed services."""

    index: int
    blocks: tuple[Block, ...] = ()
    services: tuple[tuple[str, int], ...] = ()
    digest: str = field(default="", compare=False)

    @property
    def units(self) -> int:
        """Addresses of a sweep shard, or services of a list shard: what progress counts."""
        return sum(b.size for b in self.blocks) if self.blocks else len(self.services)

    @property
    def is_sweep(self) -> bool:
        return bool(self.blocks)


def _digest(content: object) -> str:
    return hashlib.sha256(repr(content).encode()).hexdigest()[:32]


def _shard(index: int, blocks: list[Block] | None = None, services: list[tuple[str, int]] | None = None) -> Shard:
    sweep, listed = tuple(blocks or ()), tuple(services or ())
    return Shard(index, sweep, listed, _digest(sweep or listed))


def sweep_shards(blocks: Iterable[Block], size: int) -> Iterator[Shard]:
    """Runs of `size` addresses of the blocks, in order; a run may span several blocks."""
    index, room, current = 0, size, []
    for block in blocks:
        first = block.first
        while first <= block.last:
            last = min(block.last, first + room - 1)
            current.append(Block(first, last, block.version))
            room -= last - first + 1
            first = last + 1
            if room == 0:
                yield _shard(index, blocks=current)
                index, room, current = index + 1, size, []
    if current:
        yield _shard(index, blocks=current)


def list_shards(services: Iterable[tuple[str, int]], size: int) -> Iterator[Shard]:
    """Chunks of `size` listed services, in the list's order."""
    index, current = 0, []
    for pair in services:
        current.append(pair)
        if len(current) == size:
            yield _shard(index, services=current)
            index, current = index + 1, []
    if current:
        yield _shard(index, services=current)


@dataclass(frozen=True)
class ShardResult:
    """What a worker sends back: small, JSON only."""

    index: int
    services: list[dict]
    findings: list[dict]
    complete: bool


def scan_shard(shard: Shard, config: ScanConfig) -> ShardResult:
    """A worker task: scan one shard in a fresh event loop with its own engine, and its share of the
    limits: a worker started with --nthreads N runs N shards at once, each with 1/N of the limits."""
    for noisy in ("pynetdicom", "pydicom"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    scanner = Scanner(_share(config, _threads()))

    async def job() -> ScanOutcome:
        if shard.is_sweep:
            return await scanner.run(TargetSet(blocks=list(shard.blocks)))
        return await scanner.run_services(iter(shard.services), len(shard.services))

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:  # a fresh loop in the worker's thread
        outcome = runner.run(job())
    return ShardResult(
        shard.index,
        [s.model_dump(mode="json") for s in outcome.services],
        [f.model_dump(mode="json") for f in outcome.findings],
        outcome.complete,
    )


def _threads() -> int:
    """Shards this worker runs at once (its --nthreads); 1 outside a Dask worker."""
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError):
        return 1


def _share(config: ScanConfig, threads: int) -> ScanConfig:
    """The scan's limits split over the shards one worker runs at once, so that they hold per worker."""
    if threads == 1:
        return config
    limits = config.limits
    split = dataclasses.replace(limits, concurrency=max(1, limits.concurrency // threads),
                                rate=limits.rate / threads, threads=max(1, limits.threads // threads))
    return dataclasses.replace(config, limits=split)


Update = Callable[[ScanEvent, Progress], None]
ShardRecorder = Callable[["Shard", list[ServiceDone]], None]  # the journal's shard_results

DASK_HINT = "--cluster needs Dask, an optional part of phiwatch: pip install 'phiwatch[cluster]'"


def require_dask() -> None:
    """Say in one line how to install Dask when --cluster is used without it."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None or importlib.util.find_spec("dask") is None:
        raise TargetError(DASK_HINT)


def run_on_cluster(
    address: str, shards: Iterator[Shard], total: int, config: ScanConfig, record: ShardRecorder, update: Update
) -> ScanOutcome:
    """Submit every shard to the cluster, at most a few per worker thread in flight; record each
    shard's results as it completes. Complete only when every shard came back complete."""
    from dask.distributed import Client, as_completed

    progress = Progress(total=total)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise TargetError(f"cannot reach the Dask scheduler at {address!r} ({type(exc).__name__})") from exc
    complete = True
    waiting: dict[object, tuple[Shard, int]] = {}
    try:
        running = as_completed(loop=client.loop)

        def submit(shard: Shard, attempt: int = 0) -> None:
            future = client.submit(scan_shard, shard, config, pure=False)
            waiting[future] = (shard, attempt)
            running.add(future)

        def refill() -> None:
            """Keep two shards per worker thread in flight (workers may come and go)."""
            limit = max(2, 2 * sum(client.nthreads().values()))
            while len(waiting) < limit:
                shard = next(shards, None)
                if shard is None:
                    return
                submit(shard)

        refill()
        for future in running:  # as_completed takes futures added while it is iterated
            shard, attempt = waiting.pop(future)
            result, failure = _result(future)
            if result is not None:
                _record(shard, result, record, progress, update)
            elif attempt < RETRIES:
                submit(shard, attempt + 1)
            else:
                complete = False  # left unfinished: a later --resume runs it again
                log.warning("shard %d failed %d times (%s); left for --resume", shard.index,
                            attempt + 1, failure)
            refill()
    except KeyboardInterrupt:
        complete = False
        for future in waiting:
            future.cancel()  # type: ignore[attr-defined]
    finally:
        client.close()
    return ScanOutcome([], [], progress, complete)


def _result(future: object) -> tuple[ShardResult | None, str]:
    """The shard's result, or None and why (an exception's type only: its text may quote input)."""
    try:
        result = future.result()  # type: ignore[attr-defined]
    except Exception as exc:  # a worker died more often than Dask allows, or the task broke
        return None, type(exc).__name__
    if not isinstance(result, ShardResult) or not result.complete:
        return None, "incomplete"
    return result, ""


def _record(shard: Shard, result: ShardResult, record: ShardRecorder, progress: Progress, update: Update) -> None:
    services = [Service.model_validate(s) for s in result.services]
    findings = [Finding.model_validate(f) for f in result.findings]
    by_service: dict[tuple[str, int], list[Finding]] = {(s.host, s.port): [] for s in services}
    for finding in findings:
        by_service.setdefault((finding.host, finding.port), []).append(finding)
    done = [ServiceDone(s, by_service[(s.host, s.port)]) for s in services]
    record(shard, done)
    for event in done:
        progress.open_services += event.service.status not in UNFINISHED
        progress.exposures += event.service.status is ProbeStatus.EXPOSED
        update(event, progress)
    progress.done += shard.units  # after the services: the display ends once, with the last shard
    update(ShardDone(shard.index), progress)
