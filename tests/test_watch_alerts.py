"""Alerts through real receivers on loopback: a signed webhook, Slack and Teams shapes, SMTP with
STARTTLS (aiosmtpd), syslog RFC 5424 and CEF over UDP, TCP and TLS; the outbox retries while a
receiver is down and delivers each alert once when it is back; digests; no PHI in any payload."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from phiwatch.store import Store
from phiwatch.watch import lifecycle
from phiwatch.watch.config import Alert, parse
from phiwatch.watch.outbox import Deliverer, backoff, enqueue
from phiwatch.watch.tables import OutboxRow, RunRow
from phiwatch_lab.canary import CANARY_STRINGS

from .receivers import Smtp, Syslog, Webhook, self_signed
from .test_lifecycle import T0, result

SECRET = "s3cret-key-for-tests"


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "watch.db")
    yield store
    store.close()


def alerts(*entries: dict) -> list[Alert]:
    """Alerts as the YAML configuration gives them (names filled in)."""
    config = {"jobs": [{"name": "lab", "targets": ["127.0.0.1"]}], "alerts": list(entries)}
    return parse(json.dumps(config)).alerts


def one_run(store: Store, chosen: list[Alert], n: int = 1, digest: bool = False, **kwargs) -> int:
    with Session(store.engine) as session, session.begin():
        run = RunRow(job="lab", started=T0, status="complete", open_by_severity={}, findings=0, events=0,
                     exposed_services=0, studies=0, files=0, open_findings=0)
        session.add(run)
        session.flush()
        events = lifecycle.apply_run(session, "lab", run.id, result(n, **kwargs), lifecycle.Rules(),
                                     now=T0 + timedelta(hours=n))
        return enqueue(session, chosen, "lab", run.id, events, digest)


def no_phi(data: bytes | str) -> None:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    for value in CANARY_STRINGS:
        assert value not in text


def test_webhook_signed_json_with_the_finding(store, monkeypatch):
    monkeypatch.setenv("PHIWATCH_TEST_SECRET", SECRET)
    hook = Webhook(secret=SECRET).start()
    try:
        chosen = alerts({"type": "webhook", "url": hook.url, "secret_env": "PHIWATCH_TEST_SECRET"})
        assert one_run(store, chosen) == 1
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(10) == 0
        deliverer.close()
        (got,) = hook.received
        assert got["valid"] is True
        body = got["json"]
        assert body["event"] == "new" and body["job"] == "lab"
        finding = body["finding"]
        assert {k: finding[k] for k in ("check_id", "severity", "host", "port", "protocol")} == {
            "check_id": "dicom_study_data_exposed", "severity": "critical", "host": "127.0.0.1", "port": 104,
            "protocol": "dicom"}
        assert finding["first_seen"].startswith("2026-12-01T01:00:00")
        assert got["headers"]["X-Phiwatch-Delivery"] == body["id"]
        no_phi(got["body"])
    finally:
        hook.stop()


def test_severity_and_event_filters(store):
    hook = Webhook().start()
    try:
        chosen = alerts({"type": "webhook", "url": hook.url, "min_severity": "critical", "events": ["fixed"]},
                        {"type": "webhook", "url": hook.url, "name": "all"})
        assert one_run(store, chosen) == 1  # only "all" wants a new finding
        high_only = alerts({"type": "webhook", "url": hook.url, "min_severity": "critical"})
        assert high_only[0].min_severity.value == "critical"
    finally:
        hook.stop()


def test_slack_and_teams_shapes(store):
    hook = Webhook().start()
    try:
        chosen = alerts({"type": "slack", "url": hook.url}, {"type": "teams", "url": hook.url})
        one_run(store, chosen)
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(10) == 0
        deliverer.close()
        slack = next(e for e in hook.events() if "text" in e)
        assert "dicom_study_data_exposed" in slack["text"] and slack["blocks"][0]["type"] == "section"
        teams = next(e for e in hook.events() if e.get("type") == "message")
        card = teams["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["type"] == "AdaptiveCard"
    finally:
        hook.stop()


def test_smtp_with_starttls(store, tmp_path):
    cert, key = self_signed(tmp_path)
    smtp = Smtp(cert, key)
    try:
        chosen = alerts({"type": "smtp", "url": smtp.url, "mail_from": "phiwatch@example.org",
                         "mail_to": ["soc@example.org"], "ca_file": str(cert)})
        one_run(store, chosen)
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(15) == 0
        deliverer.close()
        (message,) = smtp.messages
        assert smtp.tls_used == [True]
        assert b"dicom_study_data_exposed" in message and b"X-Phiwatch-Delivery" in message
        no_phi(message)
    finally:
        smtp.stop()


@pytest.mark.parametrize("scheme", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("fmt", ["rfc5424", "cef"])
def test_syslog(store, tmp_path, scheme, fmt):
    cert, key = self_signed(tmp_path)
    receiver = Syslog(scheme, cert, key)
    try:
        chosen = alerts({"type": "syslog", "url": receiver.url, "format": fmt, "ca_file": str(cert)})
        one_run(store, chosen)
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(10) == 0
        deliverer.close()
        deadline = time.monotonic() + 5
        while not receiver.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        (message,) = receiver.messages
        text = message.decode()
        assert text.startswith("<130>1 ")  # local0 (16) * 8 + critical (2)
        parts = text.split(" ", 7)
        assert parts[3] == "phiwatch" and parts[5] == "new"
        if fmt == "cef":
            assert "CEF:0|phiwatch|phiwatch|" in text and "|dicom_study_data_exposed|" in text
            assert "dst=127.0.0.1 dpt=104" in text and "|10|" in text
        else:
            assert '[phiwatch@32473 event="new" job="lab" check="dicom_study_data_exposed"' in text
        no_phi(text)
    finally:
        receiver.stop()


def test_a_receiver_down_for_a_while_gets_each_alert_once(store):
    hook = Webhook()  # not started: its port refuses
    chosen = alerts({"type": "webhook", "url": hook.url})
    one_run(store, chosen, 1, studies=3)
    one_run(store, chosen, 2, studies=None)
    one_run(store, chosen, 3, studies=None)  # fixed
    deliverer = Deliverer(store.engine, chosen)
    assert deliverer.deliver_due() == (0, 1)  # one finding's alerts in order: "fixed" waits for "new"
    assert deliverer.deliver_due() == (0, 0)  # backing off: nothing due yet
    with Session(store.engine) as session:
        first, second = session.scalars(select(OutboxRow).order_by(OutboxRow.id))
        assert first.attempts == 1 and first.delivered is None
        assert "ConnectionRefusedError" in (first.last_error or "")
        assert second.attempts == 0 and second.delivered is None
    assert [backoff(n) for n in (1, 2, 3, 10, 20)] == [1, 2, 4, 300, 300]
    hook.start()
    try:
        assert deliverer.drain(10) == 0
        assert deliverer.drain(3) == 0
        deliverer.close()
        assert [e["event"] for e in hook.events()] == ["new", "fixed"]
        assert len({e["id"] for e in hook.events()}) == 2
    finally:
        hook.stop()


def test_digest_batches_a_run(store):
    hook = Webhook().start()
    try:
        chosen = alerts({"type": "webhook", "url": hook.url})
        assert one_run(store, chosen, 1, digest=True) == 1
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(10) == 0
        deliverer.close()
        (digest,) = hook.events()
        assert digest["event"] == "digest" and digest["counts"] == {"new": 1}
        assert digest["events"][0]["finding"]["check_id"] == "dicom_study_data_exposed"
    finally:
        hook.stop()


def test_triage_in_the_dashboard_is_alerted_once_without_its_note(store):
    from phiwatch.watch.outbox import enqueue_triage
    from phiwatch.watch.tables import TrackedFinding

    hook = Webhook().start()
    try:
        chosen = alerts({"type": "webhook", "url": hook.url,
                         "events": ["new", "acknowledged", "accepted_risk"]})
        one_run(store, chosen)
        with Session(store.engine) as session, session.begin():
            finding_id = session.scalars(select(TrackedFinding.id)).one()
            lifecycle.acknowledge(session, finding_id, "ticket 4711, patient Doe", now=T0 + timedelta(hours=2))
            lifecycle.accept_risk(session, finding_id, T0 + timedelta(days=30), "isolated segment",
                                  now=T0 + timedelta(hours=3))
        with Session(store.engine) as session, session.begin():
            assert enqueue_triage(session, chosen, T0) == 2
        with Session(store.engine) as session, session.begin():
            assert enqueue_triage(session, chosen, T0) == 0  # once
        deliverer = Deliverer(store.engine, chosen)
        assert deliverer.drain(10) == 0
        deliverer.close()
        assert [e["event"] for e in hook.events()] == ["new", "acknowledged", "accepted_risk"]
        for got in hook.received:
            assert b"Doe" not in got["body"] and b"isolated" not in got["body"]
    finally:
        hook.stop()
