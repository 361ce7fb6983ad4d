"""A scan: stream (address, port) pairs through the engine, probe open ports, evaluate checks.

Workers pull from one shared iterator, so targets are never expanded into a list
and the number of workers is the number of connections open at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .checks import evaluate
from .engine import Channel, Engine, Limits
from .events import HostDone, Listener, ServiceDone
from .models import UNFINISHED, Finding, ProbeStatus, Service
from .probes import bucket_names
from .probes.identify import ProbeOptions, service_on
from .targets import TargetSet


@dataclass
class Progress:
    total: int  # addresses of a sweep, or listed services
    done: int = 0
    open_services: int = 0  # services found open and probed to the end (not cut short)
    exposures: int = 0
    started: float = field(default_factory=time.monotonic)
    ports: int = 0  # services to try: (address, port) pairs of a sweep, or listed services
    ports_done: int = 0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def port_rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.ports_done / elapsed if elapsed > 0 else 0.0


@dataclass
class ScanConfig:
    ports: list[int]
    limits: Limits = field(default_factory=Limits)
    probes: ProbeOptions = field(default_factory=ProbeOptions)


@dataclass
class ScanOutcome:
    services: list[Service]
    findings: list[Finding]
    progress: Progress
    complete: bool


_PROVEN = frozenset({ProbeStatus.EXPOSED, ProbeStatus.EMPTY, ProbeStatus.QUERY_REFUSED})


def _cut_short(service: Service) -> Service:
    """A probe that returned, or failed, while its task was being cancelled (Ctrl-C) may have failed
    because of it: unless its facts prove something, it says interrupted, neither the target's
    error nor a failure of ours."""
    task = asyncio.current_task()
    if task is None or not task.cancelling() or service.status in _PROVEN:
        return service
    if service.status is ProbeStatus.INTERRUPTED:
        return service
    detail = "scan interrupted" + (f"; {service.detail}" if service.detail else "")
    return service.model_copy(update={"status": ProbeStatus.INTERRUPTED, "detail": detail[:300]})
_YIELD_EVERY = 32  # jobs a worker runs without giving the loop a turn, when none waited


class Scanner:
    def __init__(self, config: ScanConfig, listener: Listener | None = None) -> None:
        self.config = config
        self.engine = Engine(config.limits)
        self.listener: Listener = listener or (lambda _event: None)
        self.services: list[Service] = []
        self.findings: list[Finding] = []
        self._hosts: dict[str, list[float]] = {}  # host -> [jobs left, started]; only hosts in flight
        self._per_service = False
        # S3 endpoints that serve anonymous requests but read no bucket, held back until their host is
        # done, and the bucket names that host's other services gave (probes.bucket_names).
        self._held: dict[str, list[Service]] = {}
        self._names: dict[str, list[str]] = {}
        self.progress = Progress(total=0)

    def _jobs(self, targets: TargetSet) -> Iterator[tuple[str, int]]:
        ports = self.config.ports
        hosts = self._hosts
        for address in targets.addresses():
            hosts[address] = [len(ports), time.monotonic()]
            for port in ports:
                yield address, port

    def _listed(self, services: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        """Services from a discovery tool's list: each one is a unit of progress."""
        hosts = self._hosts
        for host, port in services:
            record = hosts.get(host)
            if record is None:
                hosts[host] = [1, time.monotonic()]
            else:
                record[0] += 1
            yield host, port

    async def run(self, targets: TargetSet) -> ScanOutcome:
        """Every port of every target address; progress counts addresses."""
        return await self._run(self._jobs(targets), targets.size, targets.size * len(self.config.ports))

    async def run_services(self, services: Iterable[tuple[str, int]], total: int) -> ScanOutcome:
        """Only the listed (address, port) services, no sweep; progress counts services."""
        self._per_service = True
        return await self._run(self._listed(services), total, max(1, total))

    async def _run(self, jobs: Iterator[tuple[str, int]], total: int, job_count: int) -> ScanOutcome:
        self.progress = Progress(total=total, ports=job_count)
        workers = max(1, min(self.config.limits.concurrency, job_count))
        tasks = [asyncio.create_task(self._worker(jobs)) for _ in range(workers)]
        complete = True
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            complete = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for held in self._held.values():  # endpoints held back for names: as first seen
                for service in held:
                    self._record(service)
            self._held.clear()
        finally:
            self.engine.close()
        return ScanOutcome(self.services, self.findings, self.progress, complete)

    async def _worker(self, jobs: Iterator[tuple[str, int]]) -> None:
        hosts, progress, connect = self._hosts, self.progress, self.engine.try_connect
        per_service = self._per_service
        since_yield = 0
        for host, port in jobs:
            channel = await connect(host, port)
            if channel is not None:
                await self._probe(host, port, channel)
                since_yield = 0
            elif since_yield == _YIELD_EVERY:
                await asyncio.sleep(0)  # closed ports may answer at once: let the loop breathe
                since_yield = 0
            else:
                since_yield += 1
            progress.ports_done += 1
            if per_service:
                progress.done += 1
            record = hosts[host]
            if record[0] > 1:
                record[0] -= 1
                continue
            del hosts[host]
            await self._revisit(host)
            if not per_service:
                progress.done += 1
            self.listener(HostDone(host))

    def held_back(self) -> str | None:
        """The limit connections are queued behind right now, as its option: per-host or rate."""
        limits = self.config.limits
        if self.engine.hosts.waiting():
            return f"--per-host {limits.per_host}"
        rate = self.engine.rate
        if rate.holding_back():
            ceiling = f", --rate {limits.rate:g} its ceiling" if limits.rate and rate.rate >= limits.rate else ""
            return f"the connection rate ({rate.rate:.0f}/s{ceiling})"
        return None

    async def _probe(self, host: str, port: int, channel: Channel) -> None:
        limits = self.config.limits
        host_left = limits.host_time - (time.monotonic() - self._hosts[host][1])
        # A probe cut short on our side (a time limit, Ctrl-C) or failing by our own bug says so:
        # such a service is neither an open service nor an error of the target.
        try:
            if host_left <= 0:
                raise TimeoutError
            async with asyncio.timeout(min(limits.probe_time, host_left)):
                with self.engine.service() as meter:  # one byte budget for all of its connections
                    channel.charge_to(meter)
                    service = await service_on(self.engine, host, port, channel, self.config.probes)
        except TimeoutError:
            why = "probe time limit reached" if host_left > limits.probe_time else "host time budget spent"
            service = Service(host=host, port=port, protocol="unknown",
                              status=ProbeStatus.INTERRUPTED, detail=why)
        except asyncio.CancelledError:
            self._record(Service(host=host, port=port, protocol="unknown",
                                 status=ProbeStatus.INTERRUPTED, detail="scan interrupted"))
            raise
        except Exception as exc:  # a probe bug must not sink the scan; no message (may echo input)
            service = Service(host=host, port=port, protocol="unknown", status=ProbeStatus.PROBE_ERROR,
                              detail=f"internal error in probe: {type(exc).__name__}")
        finally:
            await channel.close()
        service = _cut_short(service)
        if bucket_names.wants_names(service):
            self._held.setdefault(host, []).append(service)
            return
        self._names.setdefault(host, []).extend(bucket_names.from_service(service))
        self._record(service)

    async def _revisit(self, host: str) -> None:
        """The host's held-back S3 endpoints, probed again with the bucket names its other services gave."""
        held, names = self._held.pop(host, []), self._names.pop(host, [])
        for service in held:
            try:
                async with asyncio.timeout(self.config.limits.probe_time):
                    service = await bucket_names.revisit(self.engine, service, names, self.config.probes.files)
            except TimeoutError:
                pass  # the first visit stands
            self._record(service)

    def _record(self, service: Service) -> None:
        findings = evaluate(service)
        self.services.append(service)
        self.findings.extend(findings)
        if service.status not in UNFINISHED:
            self.progress.open_services += 1
        if service.status is ProbeStatus.EXPOSED:
            self.progress.exposures += 1
        self.listener(ServiceDone(service, findings))
