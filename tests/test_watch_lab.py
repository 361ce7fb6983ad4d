"""`phiwatch watch` against the lab: an exposure opened and closed between runs (the lab's nginx with
autoindex, started and stopped) gives new, fixed (after two complete runs) and reopened alerts at a
signed webhook within 2 s of each run's end; SIGTERM during a scan stores it as partial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from phiwatch.store import Store
from phiwatch.watch.tables import RunRow, TrackedFinding
from phiwatch_lab.canary import CANARY_STRINGS

from .receivers import Webhook

SECRET = "lab-webhook-secret"
PHIWATCH = [sys.executable, "-m", "phiwatch"]


def write_config(folder: Path, port: int, hook: Webhook, every: str = "1h") -> Path:
    config = folder / "watch.yaml"
    config.write_text(f"""\
store: sqlite:///{folder}/watch.db
jobs:
  - name: lab-web
    targets: [127.0.0.1]
    ports: [{port}, {hook.port}]   # the receiver's port answers: the host is reachable
    every: {every}
    options: {{timeout: 2}}
alerts:
  - type: webhook
    url: {hook.url}
    secret_env: PHIWATCH_TEST_WEBHOOK_SECRET
    events: [new, fixed, reopened]
    min_severity: high
""")
    return config


def watch_once(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHIWATCH_TEST_WEBHOOK_SECRET": SECRET}
    done = subprocess.run([*PHIWATCH, "watch", str(config), "--once"], capture_output=True, text=True,
                          timeout=240, env=env)
    assert done.returncode == 0, done.stderr
    for value in CANARY_STRINGS:
        assert value not in done.stdout + done.stderr
    return done


def last_run(folder: Path) -> RunRow:
    store = Store(folder / "watch.db")
    try:
        with Session(store.engine) as session:
            run = session.scalars(select(RunRow).order_by(RunRow.id.desc())).first()
            assert run is not None
            session.expunge(run)
            return run
    finally:
        store.close()


@pytest.mark.lab
def test_exposure_opened_closed_reopened_between_runs(lab_plugin, tmp_path):
    hook = Webhook(secret=SECRET).start()
    try:
        with lab_plugin("nginx-autoindex") as entries:
            port = entries[0]["port"]
            config = write_config(tmp_path, port, hook)
            watch_once(config)
        run = last_run(tmp_path)
        assert run.status == "complete" and run.events >= 1
        new = [e for e in hook.received if e["json"]["event"] == "new"]
        assert new and all(e["valid"] for e in hook.received)
        finding = new[0]["json"]["finding"]
        assert finding["port"] == port and finding["protocol"] in ("http", "https")
        assert finding["severity"] in ("high", "critical") and finding["files"] > 0
        ended = run.ended.replace(tzinfo=UTC) if run.ended.tzinfo is None else run.ended
        assert hook.times[0] - ended.timestamp() < 2.0  # sent within 2 s of the run's end
        received = len(hook.received)

        watch_once(config)  # the server is down: absent once, not fixed yet
        assert len(hook.received) == received
        watch_once(config)  # absent in a second complete run: fixed
        fixed = [e["json"] for e in hook.received[received:]]
        assert [e["event"] for e in fixed] == ["fixed"] * len(new)
        assert fixed[0]["finding"]["fixed_at"] is not None
        received = len(hook.received)

        with lab_plugin("nginx-autoindex"):
            watch_once(config)
        reopened = [e["json"] for e in hook.received[received:]]
        assert [e["event"] for e in reopened] == ["reopened"] * len(new)
        for got in hook.received:
            for value in CANARY_STRINGS:
                assert value.encode() not in got["body"]
    finally:
        hook.stop()
    store = Store(tmp_path / "watch.db")
    with Session(store.engine) as session:
        states = {r.state for r in session.scalars(select(TrackedFinding).where(TrackedFinding.port == port))}
        assert states == {"reopened"}
    store.close()
    listed = subprocess.run([*PHIWATCH, "scans", "--db", f"sqlite:///{tmp_path}/watch.db"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.count("complete") == 4


@pytest.mark.lab
def test_sigterm_during_a_scan_stores_it_partial(lab_plugin, tmp_path):
    hook = Webhook(secret=SECRET).start()
    try:
        with lab_plugin("nginx-autoindex") as entries:
            config = write_config(tmp_path, entries[0]["port"], hook)
            env = {**os.environ, "PHIWATCH_TEST_WEBHOOK_SECRET": SECRET}
            watcher = subprocess.Popen([*PHIWATCH, "watch", str(config)], stderr=subprocess.PIPE, text=True,
                                       env=env)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    time.sleep(0.2)
                    if (tmp_path / "watch.db").exists() and _scan_started(tmp_path):
                        break
                time.sleep(1.0)  # inside the scan (it takes several seconds against this server)
                watcher.send_signal(signal.SIGTERM)
                _, err = watcher.communicate(timeout=60)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
        assert watcher.returncode == 0, err
        assert "Traceback" not in err
        run = last_run(tmp_path)
        assert run.status == "partial" and run.ended is not None
        store = Store(tmp_path / "watch.db")
        (scan,) = store.scans()
        assert scan.complete is False
        store.close()
    finally:
        hook.stop()


def _scan_started(folder: Path) -> bool:
    store = Store(folder / "watch.db")
    try:
        return bool(store.scans())
    finally:
        store.close()
