"""The watcher's YAML configuration, validated with pydantic; every error names its line.

    store: sqlite:///path/watch.db          # any SQLAlchemy URL; postgresql://... too
    jobs:
      - name: pacs-segment
        targets: [10.20.0.0/24]             # everything `phiwatch scan` accepts, excludes too
        ports: [104, 4242, 8042]
        every: 1h                           # or a cron expression
        options: {timeout: 5}               # any scan option
    alerts:
      - type: webhook                       # also: slack, teams, smtp, syslog
        url: http://127.0.0.1:9009/hook
        secret_env: PHIWATCH_WEBHOOK_SECRET # HMAC key, read from the environment
        events: [new, fixed, reopened]
        min_severity: high
    dashboard:
      listen: 127.0.0.1:8765
      token_env: PHIWATCH_TOKEN
"""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..severity import Severity

EVENT_NAMES = ("new", "fixed", "reopened", "changed", "acknowledged", "accepted_risk", "risk_expired")
EventName = Literal["new", "fixed", "reopened", "changed", "acknowledged", "accepted_risk", "risk_expired"]
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Scan options a job may not set: the watcher owns the store, the output streams and resuming.
_OWN_OPTIONS = {"targets", "ports", "excludes", "db", "store", "resume", "jsonl", "progress", "verbosity",
                "from_file", "input_lists", "exclude_files"}


class ConfigError(ValueError):
    """A configuration that cannot be used: one line per problem, each with its line number."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_every(text: str) -> timedelta | str:
    """"1h", "30m", "90s", "1d", "2w": a period; anything else must be a cron expression."""
    match = _DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 10:
            raise ValueError("a period shorter than 10s is not allowed")
        return timedelta(seconds=seconds)
    from croniter import croniter

    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is neither a period (30m, 1h, 1d) nor a cron expression")
    return text


def next_time(every: str, after: datetime) -> datetime:
    """When a job with this schedule runs next after `after` (aware, UTC)."""
    period = parse_every(every)
    if isinstance(period, timedelta):
        return after + period
    from croniter import croniter

    return croniter(period, after).get_next(datetime)  # type: ignore[no-any-return]


class Job(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    targets: list[str] = Field(min_length=1)
    excludes: list[str] = []
    ports: list[int | str] | str | None = None  # None: phiwatch's default ports
    every: str = "1h"
    options: dict[str, Any] = {}
    digest: bool = False  # one alert per sink with all of a run's events

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_every(value)
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ..request import ScanRequest

        known = {f.name for f in dataclasses.fields(ScanRequest)} - _OWN_OPTIONS
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown scan option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        from pydantic import TypeAdapter

        from ..run import _check_numbers
        from ..targets import TargetError

        try:
            request = TypeAdapter(ScanRequest).validate_python({"targets": [], **value})
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"scan option {where}: {first['msg']}") from None
        try:
            _check_numbers(request)
        except TargetError as exc:
            raise ValueError(f"scan option: {exc}") from None
        return value

    def port_spec(self) -> str | None:
        if self.ports is None:
            return None
        if isinstance(self.ports, str):
            return self.ports
        return ",".join(str(p) for p in self.ports)


class Alert(Strict):
    type: Literal["webhook", "slack", "teams", "smtp", "syslog"]
    name: str | None = None  # default: type and position, e.g. webhook-1
    url: str | None = None  # http(s):// for webhook, slack, teams; smtp://HOST:PORT; udp|tcp|tls://HOST:PORT
    secret_env: str | None = None  # webhook: the HMAC key's environment variable
    events: list[EventName] = ["new", "fixed", "reopened", "changed"]
    min_severity: Severity = Severity.INFO
    jobs: list[str] | None = None  # None: every job
    digest: bool | None = None  # None: the job's digest setting
    timeout: float = Field(5.0, gt=0, le=60)
    # smtp
    mail_from: str | None = None
    mail_to: list[str] = []
    starttls: bool = True
    username_env: str | None = None
    password_env: str | None = None
    # syslog
    format: Literal["rfc5424", "cef"] = "rfc5424"
    facility: int = Field(16, ge=0, le=23)  # local0
    # TLS of smtp STARTTLS and syslog over TLS: a CA file to trust (default: the system's)
    ca_file: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Alert:
        schemes = {"webhook": ("http", "https"), "slack": ("http", "https"), "teams": ("http", "https"),
                   "smtp": ("smtp",), "syslog": ("udp", "tcp", "tls")}[self.type]
        if not self.url or self.url.split("://", 1)[0] not in schemes or "://" not in self.url:
            raise ValueError(f"a {self.type} alert needs url: {' or '.join(s + '://...' for s in schemes)}")
        if self.type == "smtp" and (not self.mail_from or not self.mail_to):
            raise ValueError("an smtp alert needs mail_from and mail_to")
        return self


class Dashboard(Strict):
    listen: str = "127.0.0.1:8765"
    token_env: str = "PHIWATCH_TOKEN"
    allow_remote: bool = False  # a non-loopback listen address needs this and TLS
    tls_cert: str | None = None
    tls_key: str | None = None


class WatchConfig(Strict):
    store: str | None = None  # SQLAlchemy URL or SQLite file; default: phiwatch's store
    jobs: list[Job] = Field(min_length=1)
    alerts: list[Alert] = []
    dashboard: Dashboard | None = None
    fixed_after: int = Field(2, ge=1, le=100)  # complete runs without a finding before it is fixed
    change_ratio: float = Field(0.1, ge=0)  # studies or files up by more than this share: changed
    deliver_timeout: float = Field(30.0, gt=0, le=3600)  # --once: how long to keep trying receivers

    @model_validator(mode="after")
    def _unique(self) -> WatchConfig:
        names = [job.name for job in self.jobs]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"two jobs are named {duplicate!r}")
        for index, alert in enumerate(self.alerts, 1):
            alert.name = alert.name or f"{alert.type}-{index}"
            unknown = [j for j in alert.jobs or [] if j not in names]
            if unknown:
                raise ValueError(f"alert {alert.name!r} names no job {unknown[0]!r}")
        sinks = [alert.name for alert in self.alerts]
        if len(set(sinks)) != len(sinks):
            raise ValueError("two alerts have the same name")
        return self


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the value at `loc` in a composed YAML document (or its nearest parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                return line
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def load(path: Path) -> WatchConfig:
    """Read and validate a configuration file; ConfigError with every problem and its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read {str(path)!r}: {reason}") from None
    return parse(text, str(path))


def parse(text: str, name: str = "<config>") -> WatchConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or "syntax"
        raise ConfigError(f"{name}: {where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: line 1: the configuration must be a mapping with store, jobs, alerts")
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            shown_loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "list["))))
            at_line = _line(node, shown_loc)
            dotted = ".".join(str(p) for p in shown_loc) or "(top)"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: line {at_line}: {dotted}: {message}")
        raise ConfigError("\n".join(lines)) from None


def secret(env: str | None) -> str | None:
    """A secret's value from the environment; never logged, never stored."""
    return os.environ.get(env) if env else None
