"""What `phiwatch scan` was asked to do: plain data, stored with the scan so that a resume repeats it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .severity import Severity


@dataclass
class ScanRequest:
    targets: list[str]
    ports: str | None = None
    input_lists: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    exclude_files: list[str] = field(default_factory=list)
    rate: float = 50_000.0  # engine.DEFAULT_RATE, the ceiling of the adaptive rate; 0 = none
    concurrency: int = 512
    per_host: int = 8  # one host's ports in parallel, few enough for a fragile device
    timeout: float = 5.0
    retries: int = 1
    output: Path | None = None
    db: Path | str | None = None  # a SQLite file or a SQLAlchemy URL
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
    formats: list[str] = field(default_factory=lambda: ["json", "html"])  # written with --output
    jsonl: bool = False  # findings streamed to stdout as JSON lines
    verbosity: int = 0  # -1 findings only, 0 findings and summary, 1 also services
    severities: frozenset[Severity] | None = None  # shown and reported; the store keeps all
    honeypot_signals: bool = True  # propose an unknown SOP class, inspect answers, control query
    exclude_honeypots: bool = False  # leave likely honeypots out of scan.json, reports and counts
    # Per-protocol options from the protocol table, by key (s3_bucket: [...], s3_buckets_file: "...")
    protocol_options: dict[str, Any] = field(default_factory=dict)
