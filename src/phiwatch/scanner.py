"""A scan: stream (address, port) pairs through the engine, probe open ports, evaluate checks.

Workers pull from one shared iterator, so targets are never expanded into a list
and the number of workers is the number of connections open at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .checks import evaluate
from .engine import Engine, Limits, ProbeFailure
from .models import Finding, ProbeStatus, Service
from .probes.identify import ProbeOptions, service_on
from .targets import TargetSet


@dataclass
class Progress:
    total: int
    done: int = 0
    open_services: int = 0
    exposures: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


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


Listener = Callable[[str, object], None]


class Scanner:
    def __init__(self, config: ScanConfig, listener: Listener | None = None) -> None:
        self.config = config
        self.engine = Engine(config.limits)
        self.listener = listener or (lambda _event, _data: None)
        self.services: list[Service] = []
        self.findings: list[Finding] = []
        self._remaining: dict[str, int] = {}
        self._host_started: dict[str, float] = {}
        self._per_service = False
        self.progress = Progress(total=0)

    def _jobs(self, targets: TargetSet) -> Iterator[tuple[str, int]]:
        for address in targets.addresses():
            self._remaining[address] = len(self.config.ports)
            self._host_started[address] = time.monotonic()
            for port in self.config.ports:
                yield address, port

    def _listed(self, services: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
        """Services from a discovery tool's list: each one is a unit of progress."""
        for host, port in services:
            self._remaining[host] = self._remaining.get(host, 0) + 1
            self._host_started.setdefault(host, time.monotonic())
            yield host, port

    async def run(self, targets: TargetSet) -> ScanOutcome:
        """Every port of every target address; progress counts addresses."""
        return await self._run(self._jobs(targets), targets.size, targets.size * len(self.config.ports))

    async def run_services(self, services: Iterable[tuple[str, int]], total: int) -> ScanOutcome:
        """Only the listed (address, port) services, no sweep; progress counts services."""
        self._per_service = True
        return await self._run(self._listed(services), total, max(1, total))

    async def _run(self, jobs: Iterator[tuple[str, int]], total: int, job_count: int) -> ScanOutcome:
        self.progress = Progress(total=total)
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
        finally:
            self.engine.close()
        return ScanOutcome(self.services, self.findings, self.progress, complete)

    async def _worker(self, jobs: Iterator[tuple[str, int]]) -> None:
        for host, port in jobs:
            await self._scan_port(host, port)
            if self._per_service:
                self.progress.done += 1
            remaining = self._remaining[host] - 1
            if remaining:
                self._remaining[host] = remaining
                continue
            del self._remaining[host]
            del self._host_started[host]
            if not self._per_service:
                self.progress.done += 1
            self.listener("host-done", host)

    async def _scan_port(self, host: str, port: int) -> None:
        try:
            channel = await self.engine.connect(host, port)
        except ProbeFailure:
            return  # refused, filtered or unreachable: not an open service
        limits = self.config.limits
        host_left = limits.host_time - (time.monotonic() - self._host_started[host])
        try:
            if host_left <= 0:
                raise TimeoutError
            async with asyncio.timeout(min(limits.probe_time, host_left)):
                service = await service_on(self.engine, host, port, channel, self.config.probes)
        except TimeoutError:
            why = "probe time limit reached" if host_left > limits.probe_time else "host time budget spent"
            service = Service(host=host, port=port, protocol="unknown",
                              status=ProbeStatus.TIMEOUT, detail=why)
        except Exception as exc:  # a probe bug must not sink the scan; no message (may echo input)
            service = Service(host=host, port=port, protocol="unknown", status=ProbeStatus.ERROR,
                              detail=f"internal error in probe: {type(exc).__name__}")
        finally:
            await channel.close()
        findings = evaluate(service)
        self.services.append(service)
        self.findings.extend(findings)
        self.progress.open_services += 1
        if service.status is ProbeStatus.EXPOSED:
            self.progress.exposures += 1
        self.listener("service", service)
