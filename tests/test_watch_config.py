"""The watcher's YAML configuration: the issue's example as written, and clear line-numbered errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from phiwatch.watch.config import ConfigError, next_time, parse
from phiwatch.watch.runner import scan_request

EXAMPLE = """\
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


def test_the_issue_example_is_valid_as_written():
    config = parse(EXAMPLE)
    (job,) = config.jobs
    assert job.name == "pacs-segment" and job.port_spec() == "104,4242,8042" and job.options == {"timeout": 5}
    (alert,) = config.alerts
    assert alert.type == "webhook" and alert.events == ["new", "fixed", "reopened"]
    assert alert.min_severity.value == "high" and alert.name == "webhook-1"
    assert config.dashboard is not None and config.dashboard.listen == "127.0.0.1:8765"
    assert config.fixed_after == 2


def test_a_job_becomes_the_normal_scan_request():
    config = parse(EXAMPLE)

    class FakeStore:
        url = "sqlite:///x.db"

    request = scan_request(config.jobs[0], FakeStore())  # type: ignore[arg-type]
    assert request.targets == ["10.20.0.0/24"] and request.ports == "104,4242,8042"
    assert request.timeout == 5.0 and request.db == "sqlite:///x.db" and request.store


@pytest.mark.parametrize(("change", "line", "words"), [
    (("every: 1h", "every: sometimes"), 6, "jobs.0.every"),
    (("options: {timeout: 5}", "options: {timeout: 5, no_such: 1}"), 7, "unknown scan option 'no_such'"),
    (("min_severity: high", "min_severity: extreme"), 13, "alerts.0.min_severity"),
    (("options: {timeout: 5}", "options: {timeout: soon}"), 7, "scan option timeout: Input should be a valid"),
    (("options: {timeout: 5}", "options: {timeout: 900}"), 7, "--timeout must be between"),
    (("events: [new, fixed, reopened]", "events: [new, burned]"), 12, "alerts.0.events.1"),
    (("    url: http://127.0.0.1:9009/hook\n", ""), 9, "needs url"),
    (("  token_env: PHIWATCH_TOKEN", "  token_env: PHIWATCH_TOKEN\n  colour: red"), 17, "dashboard.colour"),
])
def test_errors_name_their_line(change, line, words):
    with pytest.raises(ConfigError) as error:
        parse(EXAMPLE.replace(*change), "watch.yaml")
    text = str(error.value)
    assert f"watch.yaml: line {line}:" in text and words in text, text


def test_yaml_syntax_and_duplicate_jobs():
    with pytest.raises(ConfigError, match=r"line 3: not valid YAML"):
        parse("jobs:\n  - name: a\n   targets: [x\n", "c.yaml")
    twice = EXAMPLE.replace("alerts:", "  - name: pacs-segment\n    targets: [127.0.0.1]\nalerts:")
    with pytest.raises(ConfigError, match="two jobs are named 'pacs-segment'"):
        parse(twice)


def test_schedules():
    start = datetime(2026, 12, 6, 10, 17, tzinfo=UTC)
    assert next_time("1h", start) == start + timedelta(hours=1)
    assert next_time("30m", start) == start + timedelta(minutes=30)
    assert next_time("0 * * * *", start) == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    assert next_time("*/15 * * * *", start) == datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match="shorter than 10s"):
        parse(EXAMPLE.replace("every: 1h", "every: 1s"))


def test_the_command_prints_every_error_with_its_line(tmp_path):
    config = tmp_path / "watch.yaml"
    config.write_text(EXAMPLE.replace("every: 1h", "every: often").replace("min_severity: high",
                                                                           "min_severity: x"))
    done = subprocess.run([sys.executable, "-m", "phiwatch", "watch", str(config), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and "line 6" in lines[0] and "line 13" in lines[1]
    assert "Traceback" not in done.stderr
    config.write_text(EXAMPLE)
    done = subprocess.run([sys.executable, "-m", "phiwatch", "watch", str(config), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "valid" in done.stderr


def test_the_lab_sample_configuration_is_valid():
    from pathlib import Path

    from phiwatch.watch.config import load

    config = load(Path(__file__).parent.parent / "docs" / "watch-lab.yaml")
    assert config.jobs[0].targets == ["127.0.0.1"] and config.alerts[0].type == "syslog"


def test_run_now_from_the_dashboard_makes_a_job_due(tmp_path):
    from sqlalchemy.orm import Session

    from phiwatch.watch import lifecycle
    from phiwatch.watch.runner import Watcher
    from phiwatch.watch.tables import JobRow

    config = parse(EXAMPLE.replace("sqlite:///path/watch.db", f"sqlite:///{tmp_path}/watch.db"))
    watcher = Watcher(config, say=lambda _: None)
    try:
        assert [j.name for j in watcher._due()] == ["pacs-segment"]  # never run: due at once
        with Session(watcher.store.engine) as session, session.begin():
            session.get(JobRow, "pacs-segment").next_run = datetime.now(UTC) + timedelta(hours=1)
        assert watcher._due() == []
        with Session(watcher.store.engine) as session, session.begin():
            lifecycle.request_run(session, "pacs-segment")
        assert [j.name for j in watcher._due()] == ["pacs-segment"]
    finally:
        watcher.close()
