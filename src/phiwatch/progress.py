"""Progress a person can read while a scan runs: services done out of services to probe, open and
exposed so far, the real rate, and which limit holds the scan back when one does.

A Rich bar on a terminal, JSON lines on stderr otherwise (`--progress json`), or nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from .events import ScanEvent

log = logging.getLogger("phiwatch")


class Counters(Protocol):
    """What the display reads: the scanner's (or the cluster's) progress."""

    @property
    def total(self) -> int: ...

    @property
    def done(self) -> int: ...

    @property
    def open_services(self) -> int: ...

    @property
    def exposures(self) -> int: ...

    @property
    def rate(self) -> float: ...


class Display:
    """Progress for one scan. `unit` is what `total` counts: ports (address and port pairs of a
    sweep) or services (of a list)."""

    def __init__(self, console: Console, mode: str, total: int, unit: str) -> None:
        self.mode = mode
        self.unit = unit
        self.last = 0.0
        self.bar: Progress | None = None
        self.held_back: str | None = None  # the limit that holds the scan back now, if one does
        if mode == "rich":
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("[bold]scanning"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} " + unit),
                TextColumn("{task.fields[open]} open, {task.fields[exposed]} exposed"),
                TextColumn("{task.fields[rate]:.0f} {task.fields[unit]}/s"),
                TimeElapsedColumn(),
                TextColumn("[yellow]{task.fields[note]}"),
                console=console,
                transient=False,
            )
            self.task = self.bar.add_task("scan", total=total, open=0, exposed=0, rate=0.0, unit=unit, note="")

    def update(self, event: ScanEvent, progress: Counters, held_back: str | None = None) -> None:
        from .events import ServiceDone

        if isinstance(event, ServiceDone):
            service = event.service
            log.debug("service %s:%d %s %s", service.host, service.port, service.protocol,
                      service.status.value)
            if self.mode == "json":
                emit({"event": "service", "host": service.host, "port": service.port,
                      "protocol": service.protocol, "status": service.status.value})
        self.held_back = held_back
        if self.bar is not None:
            note = f"held back by {held_back}" if held_back else ""
            self.bar.update(self.task, completed=progress.done, open=progress.open_services,
                            exposed=progress.exposures, rate=progress.rate, note=note)
            return
        now = time.monotonic()
        if self.mode == "json" and (now - self.last >= 1.0 or progress.done == progress.total):
            self.last = now
            record: dict[str, object] = {
                "event": "progress", "done": progress.done, "total": progress.total, "unit": self.unit,
                "open": progress.open_services, "exposed": progress.exposures,
                "rate": round(progress.rate, 1)}
            if held_back:
                record["held_back_by"] = held_back
            emit(record)


def emit(record: dict) -> None:
    sys.stderr.write(json.dumps(record) + "\n")
    sys.stderr.flush()
