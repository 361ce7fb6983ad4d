"""One scan from request to outputs: targets, scanner, progress display, scan.json, store."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .cluster import Shard, list_shards, require_dask, run_on_cluster, sweep_shards
from .engine import DEFAULT_RATE, Limits
from .inputs import read_services
from .journal import Journal, ShardTracker, request_record, resumed_request
from .models import ScanInfo, ScanOptions, ScanResult, Service, TargetSummary
from .probes import dicom, http
from .probes.dicom_ul import valid_ae_title
from .probes.identify import DEFAULT_PORTS, ProbeOptions
from .probes.walk import FileOptions
from .reports import write_reports
from .reports.json_report import write_scan_json, write_schema
from .reports.totals import exposure_by_service, total
from .scanner import Progress as ScanProgress
from .scanner import ScanConfig, Scanner, ScanOutcome
from .store import Store
from .targets import (
    LARGE_SCAN,
    TargetError,
    build_excludes,
    build_targets,
    parse_ports,
    read_list_file,
)

log = logging.getLogger("phiwatch")


@dataclass
class ScanRequest:
    targets: list[str]
    ports: str | None = None
    input_lists: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    exclude_files: list[str] = field(default_factory=list)
    rate: float = DEFAULT_RATE  # the ceiling of the adaptive rate; 0 = none
    concurrency: int = 512
    per_host: int = 2
    timeout: float = 5.0
    retries: int = 1
    output: Path | None = None
    db: Path | None = None
    store: bool = True
    max_matches: int = 1000
    calling_ae: str = "PHIWATCH"
    called_ae: str = "ANY-SCP"
    called_ae_supplied: bool = False  # the user named it: accepting it is no finding
    guess_aet: bool = False
    aet_file: Path | None = None
    try_default_logins: bool = False
    from_file: Path | None = None
    from_format: str = "auto"
    byte_budget: int = 8 * 1024 * 1024
    probe_time: float = 60.0
    host_time: float = 600.0
    allow_large: bool = False
    log_file: Path | None = None
    progress: str = "auto"
    cluster: str | None = None  # a Dask scheduler, tcp://HOST:PORT; None scans in this process
    shard_size: int = 4096  # addresses (or listed services) per shard: the unit of completion
    resume: str | None = None  # id of an interrupted scan to finish
    s3_buckets: list[str] = field(default_factory=list)  # --s3-bucket names
    s3_buckets_file: Path | None = None


def default_ports() -> list[int]:
    return list(DEFAULT_PORTS)


def _check_numbers(request: ScanRequest) -> None:
    if request.rate < 0:
        raise TargetError("--rate must be 0 (unlimited) or positive")
    if not 1 <= request.concurrency <= 65_536:
        raise TargetError("--concurrency must be between 1 and 65536")
    if not 1 <= request.per_host <= 64:
        raise TargetError("--per-host must be between 1 and 64")
    if not 0.05 <= request.timeout <= 300:
        raise TargetError("--timeout must be between 0.05 and 300 seconds")
    if not 0 <= request.retries <= 5:
        raise TargetError("--retries must be between 0 and 5")
    if not 1 <= request.max_matches <= 1_000_000:
        raise TargetError("--max-matches must be between 1 and 1000000")
    if not 4096 <= request.byte_budget <= 1 << 30:
        raise TargetError("--byte-budget must be between 4096 and 1073741824")
    if not 1 <= request.probe_time <= 3600:
        raise TargetError("--probe-time must be between 1 and 3600 seconds")
    if not 1 <= request.host_time <= 86400:
        raise TargetError("--host-time must be between 1 and 86400 seconds")
    if not 1 <= request.shard_size <= 1_000_000:
        raise TargetError("--shard-size must be between 1 and 1000000")
    for title, flag in ((request.calling_ae, "--calling-ae"), (request.called_ae, "--called-ae")):
        if not valid_ae_title(title):
            raise TargetError(f"{flag} must be 1-16 printable ASCII characters without '\\'")


def _ae_titles(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    titles = tuple(read_list_file(path))
    bad = [t for t in titles if not valid_ae_title(t)]
    if bad:
        raise TargetError(f"bad AE title in {str(path)!r}: {bad[0][:20]!r}")
    return titles


def _s3_buckets(request: ScanRequest) -> tuple[str, ...]:
    if not request.s3_buckets and request.s3_buckets_file is None:
        return ()
    from .probes import s3  # botocore: only for a scan that names buckets

    try:
        return s3.bucket_names(request.s3_buckets, request.s3_buckets_file)
    except ValueError as exc:
        raise TargetError(str(exc)) from None


def _configure_logging(log_file: Path | None) -> None:
    for noisy in ("pynetdicom", "pydicom"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    log.setLevel(logging.DEBUG if log_file else logging.WARNING)
    if log_file:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise TargetError(f"cannot write the log file {log_file}: {exc.strerror}") from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)


@dataclass
class _Plan:
    """What the scanner will walk: every port of target addresses, or a list of services."""

    shards: Callable[[int], Iterator[Shard]]  # cut into shards of N addresses (or services)
    total: int
    unit: str
    summary: TargetSummary


def _sweep_plan(request: ScanRequest, ports: list[int]) -> _Plan:
    targets = build_targets(
        request.targets, request.input_lists, request.excludes, request.exclude_files
    )
    if targets.size > LARGE_SCAN and not request.allow_large:
        raise TargetError(
            f"{targets.size} addresses to scan; more than {LARGE_SCAN} needs --allow-large"
        )
    summary = TargetSummary(specs=targets.specs[:1000], excludes=targets.exclude_specs[:1000],
                            addresses=targets.size, ports=ports)
    return _Plan(lambda size: sweep_shards(targets.blocks, size), targets.size, "addresses", summary)


def _list_plan(request: ScanRequest, ports: list[int]) -> _Plan:
    """Services from a discovery tool's output: no sweep; excludes still win."""
    assert request.from_file is not None
    path, fmt = request.from_file, request.from_format
    default_port = ports[0] if request.ports and len(ports) == 1 else None
    excluded = build_excludes(request.excludes, request.exclude_files)
    scope = None
    if request.targets or request.input_lists:
        scope = build_targets(request.targets, request.input_lists)

    def wanted() -> Iterator[tuple[str, int]]:
        for host, port in read_services(path, fmt, default_port):
            if host not in excluded and (scope is None or host in scope):
                yield host, port

    total = sum(1 for _ in wanted())  # validates the whole file before any probe
    if total == 0:
        raise TargetError(f"no open TCP service to probe in {str(path)!r}")
    if total > LARGE_SCAN and not request.allow_large:
        raise TargetError(f"{total} services to probe; more than {LARGE_SCAN} needs --allow-large")
    summary = TargetSummary(specs=scope.specs[:1000] if scope else [], excludes=excluded.specs[:1000],
                            addresses=0, ports=ports, services_file=str(path), services=total)
    return _Plan(lambda size: list_shards(wanted(), size), total, "services", summary)


def run_scan(request: ScanRequest, console: Console) -> ScanResult:
    previous = None
    if request.resume is not None:
        request, previous = resumed_request(request)
    _check_numbers(request)
    if request.cluster:
        require_dask()
    ports = parse_ports(request.ports) if request.ports else default_ports()
    plan = _list_plan(request, ports) if request.from_file else _sweep_plan(request, ports)
    if request.output is not None and request.output.exists() and not request.output.is_dir():
        raise TargetError(f"--output {str(request.output)!r} is not a directory")
    _configure_logging(request.log_file)
    limits = Limits(
        concurrency=request.concurrency,
        per_host=request.per_host,
        rate=request.rate,
        timeout=request.timeout,
        retries=request.retries,
        byte_budget=request.byte_budget,
        probe_time=request.probe_time,
        host_time=request.host_time,
    )
    dicom_options = dicom.DicomOptions(
        called_ae=request.called_ae,
        called_ae_supplied=request.called_ae_supplied,
        calling_ae=request.calling_ae,
        guess_aet=request.guess_aet,
        extra_ae_titles=_ae_titles(request.aet_file),
        max_matches=request.max_matches,
    )
    started = datetime.now(UTC)
    scan_id = started.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    if previous is not None:
        started, scan_id = previous.start, previous.id
    info = ScanInfo(
        id=scan_id,
        start=started,
        version=__version__,
        options=ScanOptions(
            ports=ports,
            concurrency=limits.concurrency,
            per_host=limits.per_host,
            rate=limits.rate,
            timeout=limits.timeout,
            retries=limits.retries,
            max_matches=dicom_options.max_matches,
            calling_ae=dicom_options.calling_ae,
            called_ae=dicom_options.called_ae,
            guess_aet=dicom_options.guess_aet,
            aet_file=str(request.aet_file) if request.aet_file else None,
            try_default_logins=request.try_default_logins,
            byte_budget=limits.byte_budget,
        ),
        targets=plan.summary,
    )
    log.info("scan %s: %d %s", scan_id, plan.total, plan.unit)
    probes = ProbeOptions(
        dicom=dicom_options,
        http=http.HttpOptions(
            try_default_logins=request.try_default_logins, max_matches=request.max_matches
        ),
        files=FileOptions(s3_buckets=_s3_buckets(request)),
    )
    config = ScanConfig(ports=ports, limits=limits, probes=probes)
    mode = request.progress
    if mode == "auto":
        mode = "rich" if console.is_terminal else "json"
    info.complete = False
    store = Store(request.db) if request.store else Store(memory=True)
    try:
        journal = Journal(store, info, request_record(request), request.shard_size)
        outcome = _run_shards(request, config, plan, journal, console, mode)
        info.end = datetime.now(UTC)
        result = journal.finish(info, outcome)
    finally:
        store.close()
    if request.output is not None:
        path = write_scan_json(result, request.output)
        write_schema(request.output)
        console.print(f"scan.json written to {path}", markup=False)
        [html] = write_reports(result, request.output, ["html"])
        console.print(f"report.html written to {html}", markup=False)
    if request.store:
        log.info("scan %s stored in %s", scan_id, store.path)
    _summary(result, console)
    return result


def _run_shards(
    request: ScanRequest, config: ScanConfig, plan: _Plan, journal: Journal, console: Console, mode: str
) -> ScanOutcome:
    """The shards not yet recorded complete: on the Dask cluster, or streamed through one Scanner."""

    def pending() -> Iterator[Shard]:
        return journal.pending(plan.shards(request.shard_size))

    sweep = plan.unit == "addresses"
    total = sum(s.units for s in pending()) if sweep else max(0, plan.total - journal.units_before)
    if request.cluster:
        display = _Display(console, mode, total, plan.unit)
        with display.bar or nullcontext():
            return run_on_cluster(request.cluster, pending(), total, config, journal, display.update)
    tracker = ShardTracker(journal)
    job = tracker.job(pending, sweep, total)
    return _run_with_progress(config, job, total, plan.unit, console, mode, tracker.event)


class _Display:
    """Progress for one scan: a Rich bar on a terminal, JSON lines on stderr otherwise, or none."""

    def __init__(self, console: Console, mode: str, total: int, unit: str) -> None:
        self.mode = mode
        self.last = 0.0
        self.bar: Progress | None = None
        if mode == "rich":
            self.bar = Progress(
                TextColumn("[bold]scanning"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} " + unit),
                TextColumn("{task.fields[open]} open, {task.fields[exposed]} exposed"),
                TextColumn("{task.fields[rate]:.0f}/s"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self.task = self.bar.add_task("scan", total=total, open=0, exposed=0, rate=0.0)

    def update(self, event: str, data: object, progress: ScanProgress) -> None:
        if event == "service":
            service: Service = data  # type: ignore[assignment]
            _log_service(service)
            if self.mode == "json":
                _emit({"event": "service", "host": service.host, "port": service.port,
                       "protocol": service.protocol, "status": service.status.value})
        if self.bar is not None:
            self.bar.update(self.task, completed=progress.done, open=progress.open_services,
                            exposed=progress.exposures, rate=progress.rate)
            return
        now = time.monotonic()
        if self.mode == "json" and (now - self.last >= 1.0 or progress.done == progress.total):
            self.last = now
            _emit({"event": "progress", "done": progress.done, "total": progress.total,
                   "open": progress.open_services, "exposed": progress.exposures,
                   "rate": round(progress.rate, 1)})


def _run_with_progress(
    config: ScanConfig,
    job: Callable[[Scanner], Coroutine[Any, Any, ScanOutcome]],
    total: int,
    unit: str,
    console: Console,
    mode: str,
    record: Callable[[str, object], None],
) -> ScanOutcome:
    display = _Display(console, mode, total, unit)

    def listener(event: str, data: object) -> None:
        record(event, data)
        display.update(event, data, scanner.progress)

    scanner = Scanner(config, listener)
    if display.bar is None:
        return _drive(scanner, job)
    with display.bar:
        return _drive(scanner, job)


def _emit(record: dict) -> None:
    sys.stderr.write(json.dumps(record) + "\n")
    sys.stderr.flush()


def _log_service(service: Service) -> None:
    log.debug("service %s:%d %s %s", service.host, service.port, service.protocol,
              service.status.value)


def _drive(scanner: Scanner, job: Callable[[Scanner], Coroutine[Any, Any, ScanOutcome]]) -> ScanOutcome:
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            return runner.run(job(scanner))
        except KeyboardInterrupt:  # pragma: no cover - the scanner keeps what is done
            return ScanOutcome(scanner.services, scanner.findings, scanner.progress, complete=False)


def _summary(result: ScanResult, console: Console) -> None:
    exposed = exposure_by_service(result.findings)
    sums = total(exposed)
    file_text = ""
    if sums.dicom or sums.hl7 or sums.x12:
        file_text = f", files: {sums.dicom} DICOM, {sums.hl7} HL7, {sums.x12} X12"
    by_severity: dict[str, int] = {}
    for finding in result.findings:
        by_severity[finding.severity.value] = by_severity.get(finding.severity.value, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in by_severity.items()) or "none"
    state = "complete" if result.scan.complete else "interrupted (partial results kept)"
    console.print(
        f"scan {result.scan.id} {state}: {len(result.services)} open services, "
        f"findings: {counts}; {len(exposed)} exposures, {sums.studies} studies, "
        f"{sums.instances} instances{file_text}",
        markup=False,
    )
