"""One scan from request to outputs: targets, scanner, progress display, scan.json, store.

Everything a user can get wrong is checked before the first packet, and before the heavy
imports (the engine, the probes, the store, the report writers), so a usage error answers at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .request import ScanRequest
from .severity import Severity
from .targets import (
    LARGE_SCAN,
    TargetError,
    build_excludes,
    build_targets,
    is_list_file,
    numeric_blocks,
    parse_ports,
    read_list_file,
)

if TYPE_CHECKING:
    from rich.console import Console

    from .cluster import Shard
    from .events import Listener, ScanEvent
    from .journal import Journal
    from .models import Finding, ScanResult, TargetSummary
    from .probes.options import ProbeOptions
    from .progress import Display
    from .scanner import ScanConfig, Scanner, ScanOutcome

log = logging.getLogger("phiwatch")
__all__ = ["ScanRequest", "run_scan"]


def default_ports() -> list[int]:
    from .probes import DEFAULT_PORTS

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
        if not _valid_ae_title(title):
            raise TargetError(f"{flag} must be 1-16 printable ASCII characters without '\\'")


def _valid_ae_title(title: str) -> bool:
    """As probes.dicom_ul.valid_ae_title, without loading pynetdicom for a usage check."""
    return 0 < len(title.strip()) <= 16 and all(0x20 <= ord(c) < 0x7F and c != "\\" for c in title)


def writable_folder(path: Path, flag: str) -> None:
    """The folder exists or is made, and a file can be written in it; else one clear line."""
    if path.exists() and not path.is_dir():
        raise TargetError(f"{flag} {str(path)!r} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".phiwatch-check-"):
            pass
    except OSError as exc:
        raise TargetError(f"{flag} {str(path)!r} cannot be written: {exc.strerror or exc}") from None


def _writable_file(path: Path, flag: str) -> None:
    """The file can be opened for appending (its folder made if need be); nothing in it changes."""
    if path.is_dir():
        raise TargetError(f"{flag} {str(path)!r} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise TargetError(f"{flag} {str(path)!r} cannot be written: {exc.strerror or exc}") from None


def _preflight(request: ScanRequest) -> None:
    """Targets' spelling, then output folder, store and log file, checked before the first packet
    (a name resolved is one) and before anything is written."""
    for specs, exclude in ((request.targets, False), (request.excludes, True)):
        for spec in specs:
            for item in spec.replace(",", " ").split():
                if not is_list_file(item):
                    numeric_blocks(item, exclude)  # raises on a bad spelling; resolves nothing
    if request.output is not None:
        writable_folder(request.output, "--output")
    if request.store and not (isinstance(request.db, str) and "://" in request.db):
        from .paths import default_db_path

        _writable_file(Path(request.db or default_db_path()), "--db")
    if request.log_file is not None:
        _writable_file(request.log_file, "--log-file")


def _ae_titles(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    titles = tuple(read_list_file(path))
    bad = [t for t in titles if not _valid_ae_title(t)]
    if bad:
        raise TargetError(f"bad AE title in {str(path)!r}: {bad[0][:20]!r}")
    return titles


def _protocol_options(request: ScanRequest, options: ProbeOptions) -> ProbeOptions:
    from .probes import configure as configure_protocols

    try:
        return configure_protocols(options, request.protocol_options)
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
    from .cluster import sweep_shards
    from .models import TargetSummary

    summary = TargetSummary(specs=targets.specs[:1000], excludes=targets.exclude_specs[:1000],
                            addresses=targets.size, ports=ports)
    return _Plan(lambda size: sweep_shards(targets.blocks, size), targets.size, "addresses", summary)


def _list_plan(request: ScanRequest, ports: list[int]) -> _Plan:
    """Services from a discovery tool's output: no sweep; excludes still win."""
    from .cluster import list_shards
    from .inputs import read_services
    from .models import TargetSummary

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


def _open_store(request: ScanRequest) -> Any:
    if not request.store:  # --no-db: the journal in memory, without SQLAlchemy
        from .scratch import ScratchStore

        return ScratchStore()
    from .litestore import open_at_head

    quick = open_at_head(request.db)  # an existing SQLite store at HEAD: written without SQLAlchemy
    if quick is not None:
        return quick
    from .store import Store, StoreError

    try:
        return Store(request.db)
    except StoreError as exc:
        raise TargetError(str(exc)) from None


def run_scan(request: ScanRequest, console: Console, out: Console | None = None) -> ScanResult:
    """The whole scan. Progress and the summary go to `console` (stderr); findings to `out`
    (stdout), when given."""
    if request.store or request.resume is not None:
        return _run_scan(request, console, out)
    from .peertext import scan_salt

    with scan_salt():  # --no-db writes nothing, the installation's salt included
        return _run_scan(request, console, out)


def _run_scan(request: ScanRequest, console: Console, out: Console | None = None) -> ScanResult:
    previous = None
    if request.resume is not None:
        from .journal import resumed_request

        request, previous = resumed_request(request)
    _check_numbers(request)
    if request.cluster:
        from .cluster import require_dask

        require_dask()
    ports = parse_ports(request.ports) if request.ports else default_ports()
    _preflight(request)
    _configure_logging(request.log_file)
    plan = _list_plan(request, ports) if request.from_file else _sweep_plan(request, ports)
    store = _open_store(request)
    try:
        result = _scan(request, ports, plan, store, console, out, previous)
    finally:
        store.close()
    _show(request, result, store.path if request.store else None, console, out)
    return result


def _scan(request: ScanRequest, ports: list[int], plan: _Plan, store: Any, console: Console,
          out: Console | None, previous: Any) -> ScanResult:
    from .engine import Limits
    from .journal import Journal, request_record
    from .models import ScanInfo, ScanOptions
    from .probes.options import DicomOptions, HttpOptions, ProbeOptions
    from .scanner import ScanConfig

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
    dicom_options = DicomOptions(
        called_ae=request.called_ae,
        called_ae_supplied=request.called_ae_supplied,
        calling_ae=request.calling_ae,
        guess_aet=request.guess_aet,
        extra_ae_titles=_ae_titles(request.aet_file),
        max_matches=request.max_matches,
        trust_signals=request.honeypot_signals,
        digest_key=secrets.token_bytes(16),
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
            honeypot_signals=request.honeypot_signals,
        ),
        targets=plan.summary,
    )
    log.info("scan %s: %d %s", scan_id, plan.total, plan.unit)
    probes = ProbeOptions(
        dicom=dicom_options,
        http=HttpOptions(
            try_default_logins=request.try_default_logins, max_matches=request.max_matches
        ),
    )
    probes = _protocol_options(request, probes)
    config = ScanConfig(ports=ports, limits=limits, probes=probes)
    mode = request.progress
    if mode == "auto":
        mode = "rich" if console.is_terminal else "json"
    info.complete = False
    stream = None
    if request.jsonl and out is not None:  # honeypots are known only once the whole scan is assessed
        stream = _FindingStream(out, request.severities, live=not request.exclude_honeypots)
    journal = Journal(store, info, request_record(request), request.shard_size)
    outcome = _run_shards(request, config, plan, journal, console, mode, stream)
    info.end = datetime.now(UTC)
    from .trust import assess, exclude_honeypots

    result = assess(journal.finish(info, outcome))
    if request.exclude_honeypots:
        result = exclude_honeypots(result)
    if stream is not None:
        stream.rest(result.findings)
    return result


def _show(request: ScanRequest, result: ScanResult, stored: Path | None, console: Console,
          out: Console | None) -> None:
    """Reports into --output; findings (worst first) on stdout; the summary on stderr."""
    from .reports import terminal

    shown = [f for f in result.findings if request.severities is None or f.severity in request.severities]
    written: list[Path] = []
    if request.output is not None:
        from .reports import write_reports
        from .reports.json_report import write_scan_json, write_schema

        written.append(write_scan_json(result, request.output))
        written.append(write_schema(request.output))
        reported = result if len(shown) == len(result.findings) else result.model_copy(update={"findings": shown})
        written += write_reports(reported, request.output, [f for f in request.formats if f != "json"])
    if out is not None and not request.jsonl:
        if request.verbosity > 0:
            terminal.print_services(result.services, out)
        honeypots = frozenset((s.host, s.port) for s in result.services if s.trust and s.trust.honeypot)
        terminal.print_findings(shown, out, honeypots)
    if request.store:
        log.info("scan %s stored in %s", result.scan.id, stored)
    if request.verbosity >= 0:
        for line in terminal.summary_lines(result, shown, stored, request.db is not None, written):
            console.print(line, markup=False, highlight=False)


class _FindingStream:
    """--jsonl: each finding as one JSON line on stdout, as soon as it is known. Not `live` (with
    --exclude-honeypots): all at the end, once the whole scan says which services look like
    honeypots (some signals compare services across hosts), so none of theirs is sent."""

    def __init__(self, out: Console, severities: frozenset[Severity] | None, live: bool = True) -> None:
        self.file = out.file
        self.severities = severities
        self.live = live
        self.sent: set[tuple[str, str, int]] = set()

    def found(self, findings: list[Finding]) -> None:
        """Findings of a service just scanned."""
        if self.live:
            self.send(findings)

    def send(self, findings: list[Finding]) -> None:
        for finding in findings:
            key = (finding.check_id, finding.host, finding.port)
            if key in self.sent or (self.severities is not None and finding.severity not in self.severities):
                continue
            self.sent.add(key)
            self.file.write(finding.model_dump_json() + "\n")
        self.file.flush()

    def rest(self, findings: list[Finding]) -> None:
        """Those a cluster's shards brought back, or any not streamed yet."""
        self.send(findings)


def _run_shards(
    request: ScanRequest, config: ScanConfig, plan: _Plan, journal: Journal, console: Console, mode: str,
    stream: _FindingStream | None,
) -> ScanOutcome:
    """The shards not yet recorded complete: on the Dask cluster, or streamed through one Scanner."""
    from .journal import ShardTracker
    from .progress import Display

    def pending() -> Iterator[Shard]:
        return journal.pending(plan.shards(request.shard_size))

    sweep = plan.unit == "addresses"
    total = sum(s.units for s in pending()) if sweep else max(0, plan.total - journal.units_before)
    if request.cluster:
        from .cluster import run_on_cluster

        display = Display(console, mode, total, plan.unit)
        with display.bar or nullcontext():
            return run_on_cluster(request.cluster, pending(), total, config, journal.shard_results,
                                  display.update)
    tracker = ShardTracker(journal)
    job = tracker.job(pending, sweep, total)
    ports = total * len(config.ports) if sweep else total
    return _run_with_progress(config, job, Display(console, mode, ports, "ports" if sweep else "services"),
                              tracker.event, stream)


class _PortView:
    """The scanner's progress as the display shows it: services (address and port pairs) done."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner

    @property
    def total(self) -> int:
        return self.scanner.progress.ports

    @property
    def done(self) -> int:
        return self.scanner.progress.ports_done

    @property
    def open_services(self) -> int:
        return self.scanner.progress.open_services

    @property
    def exposures(self) -> int:
        return self.scanner.progress.exposures

    @property
    def rate(self) -> float:
        return self.scanner.progress.port_rate


def _run_with_progress(
    config: ScanConfig,
    job: Callable[[Scanner], Coroutine[Any, Any, ScanOutcome]],
    display: Display,
    record: Listener,
    stream: _FindingStream | None,
) -> ScanOutcome:
    from .events import ServiceDone
    from .scanner import Scanner

    def listener(event: ScanEvent) -> None:
        record(event)
        if stream is not None and isinstance(event, ServiceDone):
            stream.found(event.findings)
        display.update(event, view, scanner.held_back())

    scanner = Scanner(config, listener)
    view = _PortView(scanner)
    if display.bar is None:
        return _drive(scanner, job)
    with display.bar:
        return _drive(scanner, job)


def _drive(scanner: Scanner, job: Callable[[Scanner], Coroutine[Any, Any, ScanOutcome]]) -> ScanOutcome:
    from .scanner import ScanOutcome

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        pass
    done: list[ScanOutcome] = []

    async def main() -> None:
        # The outcome is kept here, not as the task's result: on its way out asyncio.Runner
        # formats the repr of its SIGINT handler, task and result included (seconds and
        # megabytes for a scan of thousands of services).
        done.append(await job(scanner))

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            runner.run(main())
            return done[0]
        except KeyboardInterrupt:  # pragma: no cover - the scanner keeps what is done
            return ScanOutcome(scanner.services, scanner.findings, scanner.progress, complete=False)
