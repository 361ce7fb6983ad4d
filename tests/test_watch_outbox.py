"""The outbox across `kill -9` of a real watcher process: alerts written while the receiver was down
are delivered when it comes back, none lost; a watcher killed in the middle of sending resends at
most the few alerts that were in flight or not yet marked delivered (their delivery key lets the
receiver drop the repeat)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phiwatch.models import Finding, ProbeStatus, ScanResult, Service, Severity
from phiwatch.store import Store
from phiwatch.watch import lifecycle
from phiwatch.watch.config import parse
from phiwatch.watch.outbox import RESEND_BOUND, enqueue
from phiwatch.watch.tables import JobRow, OutboxRow, RunRow

from .receivers import Webhook, free_port
from .test_lifecycle import result

PHIWATCH = [sys.executable, "-m", "phiwatch"]


def many_findings(count: int) -> ScanResult:
    scan = result(1)
    findings = [Finding(check_id="http_index_medical_files_exposed", title="Index exposed", severity=Severity.HIGH,
                        host="127.0.0.1", port=20000 + i, protocol="http", evidence="e", remediation="r")
                for i in range(count)]
    services = [Service(host="127.0.0.1", port=f.port, protocol="http", status=ProbeStatus.EXPOSED)
                for f in findings]
    return scan.model_copy(update={"findings": findings, "services": services})


def prepared_store(folder: Path, port: int, count: int) -> Path:
    """A store with `count` alerts in its outbox, and the job already run (not due for an hour)."""
    text = json.dumps({
        "store": f"sqlite:///{folder}/watch.db",
        "jobs": [{"name": "lab", "targets": ["127.0.0.1"], "ports": [104], "every": "1h"}],
        "alerts": [{"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "min_severity": "high"}],
    })
    config = parse(text)
    store = Store(config.store)
    now = datetime.now(UTC)
    with Session(store.engine) as session, session.begin():
        session.add(JobRow(name="lab", every="1h", config={}, next_run=now + timedelta(hours=1)))
        run = RunRow(job="lab", started=now, status="complete", open_by_severity={}, findings=0, events=0,
                     exposed_services=0, studies=0, files=0, open_findings=0)
        session.add(run)
        session.flush()
        events = lifecycle.apply_run(session, "lab", run.id, many_findings(count), lifecycle.Rules(), now=now)
        assert enqueue(session, config.alerts, "lab", run.id, events, False) == count
    store.close()
    path = folder / "watch.yaml"
    path.write_text(text)
    return path


def delivered(folder: Path) -> int:
    store = Store(folder / "watch.db")
    try:
        with Session(store.engine) as session:
            return int(session.scalar(select(func.count()).select_from(OutboxRow)
                                      .where(OutboxRow.delivered.is_not(None))) or 0)
    finally:
        store.close()


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([*PHIWATCH, "watch", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def stop(watcher: subprocess.Popen) -> None:
    watcher.send_signal(signal.SIGTERM)
    try:
        watcher.wait(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()


def test_kill_9_while_the_receiver_is_down_loses_nothing(tmp_path):
    port = free_port()
    config = prepared_store(tmp_path, port, 40)
    watcher = start(config)
    try:
        store = Store(tmp_path / "watch.db")
        with Session(store.engine) as session:
            assert wait_for(lambda: (session.expire_all() or session.scalar(
                select(func.min(OutboxRow.attempts)))) >= 1, 30)  # every alert tried and failed once
        store.close()
    finally:
        os.kill(watcher.pid, signal.SIGKILL)
        watcher.wait(timeout=10)
    assert delivered(tmp_path) == 0
    hook = Webhook(port=port).start()
    watcher = start(config)
    try:
        assert wait_for(lambda: delivered(tmp_path) == 40, 30)
        time.sleep(1.0)
    finally:
        stop(watcher)
        hook.stop()
    keys = Counter(e["id"] for e in hook.events())
    assert len(keys) == 40 and set(keys.values()) == {1}  # each alert once


def test_kill_9_while_sending_resends_at_most_those_in_flight(tmp_path):
    hook = Webhook(delay=0.02).start()  # a slow receiver: the kill lands among the sends
    config = prepared_store(tmp_path, hook.port, 400)
    watcher = start(config)
    try:
        assert wait_for(lambda: len(hook.received) >= 100, 60)
    finally:
        os.kill(watcher.pid, signal.SIGKILL)
        watcher.wait(timeout=10)
    before = delivered(tmp_path)
    assert 0 < before < 400
    watcher = start(config)
    try:
        assert wait_for(lambda: delivered(tmp_path) == 400, 60)
        time.sleep(0.5)
    finally:
        stop(watcher)
        hook.stop()
    keys = Counter(e["id"] for e in hook.events())
    assert len(keys) == 400  # none lost
    repeats = sum(n - 1 for n in keys.values())
    assert repeats <= RESEND_BOUND  # only what was in flight or not yet marked when the process died
    # a repeat carries the same delivery key and the same body: a receiver can drop it
    by_key: dict[str, set[bytes]] = {}
    for got in hook.received:
        by_key.setdefault(got["headers"]["X-Phiwatch-Delivery"], set()).add(got["body"])
    assert all(len(bodies) == 1 for bodies in by_key.values())


def test_kill_9_with_a_fast_receiver_resends_at_most_the_bound(tmp_path):
    """Sends outpace the transactions marking them: at no time are more than RESEND_BOUND alerts sent
    and not yet marked delivered, so a kill -9 makes at most that many go out again."""
    hook = Webhook().start()
    config = prepared_store(tmp_path, hook.port, 1000)
    database = sqlite3.connect(f"file:{tmp_path / 'watch.db'}?mode=ro", uri=True, timeout=10)
    watcher = start(config)
    widest = 0
    try:
        deadline = time.monotonic() + 60
        while len(hook.received) < 300 and time.monotonic() < deadline:
            arrived = len(hook.received)  # first: marks made after this only narrow the gap
            marked = database.execute("SELECT count(*) FROM watch_outbox WHERE delivered IS NOT NULL").fetchone()
            widest = max(widest, arrived - marked[0])
    finally:
        os.kill(watcher.pid, signal.SIGKILL)
        watcher.wait(timeout=10)
        database.close()
    assert widest <= RESEND_BOUND
    assert 0 < delivered(tmp_path) < 1000
    watcher = start(config)
    try:
        assert wait_for(lambda: delivered(tmp_path) == 1000, 60)
        time.sleep(0.5)
    finally:
        stop(watcher)
        hook.stop()
    keys = Counter(e["id"] for e in hook.events())
    assert len(keys) == 1000  # none lost
    assert sum(n - 1 for n in keys.values()) <= RESEND_BOUND
