"""Alert payloads and their senders: webhook (HMAC-signed JSON), Slack, Microsoft Teams, e-mail over
SMTP with STARTTLS, syslog (RFC 5424, or CEF inside it) over UDP, TCP and TLS.

A payload holds keys, states, counts and dates of a tracked finding: never the evidence, never a
note typed in triage, never anything a peer sent. Every sender raises AlertError with one line
that quotes nothing the receiver said.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..severity import Severity
from .config import Alert, secret
from .lifecycle import Event
from .tables import EventRow, TrackedFinding

SIGNATURE_HEADER = "X-Phiwatch-Signature"
DELIVERY_HEADER = "X-Phiwatch-Delivery"  # the outbox key: receivers can drop a repeat


class AlertError(Exception):
    """A delivery failed: one line, no text from the receiver."""


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_payload(event: EventRow | Event, row: TrackedFinding | Any) -> dict[str, Any]:
    """One event, as every sender's payload is made from."""
    detail = {k: v for k, v in (event.detail or {}).items() if k in ("studies", "files", "state_before", "until")}
    return {
        "event": event.kind,
        "job": event.job,
        "at": _iso(event.at),
        "run": event.run_id,
        "finding": {
            "id": row.id,
            "check_id": row.check_id,
            "title": row.title,
            "severity": row.severity,
            "host": row.host,
            "port": row.port,
            "protocol": row.protocol,
            "state": row.state,
            "first_seen": _iso(row.first_seen),
            "last_seen": _iso(row.last_seen),
            "fixed_at": _iso(row.fixed_at),
            "studies": row.studies,
            "files": row.files,
        },
        "detail": detail,
    }


def digest_payload(job: str, run_id: int | None, events: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for item in events:
        counts[item["event"]] = counts.get(item["event"], 0) + 1
    return {"event": "digest", "job": job, "run": run_id, "at": _iso(datetime.now(UTC)),
            "counts": counts, "events": events}


def wanted(alert: Alert, kind: str, severity: str, job: str) -> bool:
    """Does this alert want this event?"""
    if kind not in alert.events or (alert.jobs is not None and job not in alert.jobs):
        return False
    try:
        return Severity(severity).rank >= alert.min_severity.rank
    except ValueError:
        return False


def _events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return payload["events"] if payload["event"] == "digest" else [payload]


def line(item: dict[str, Any]) -> str:
    f = item["finding"]
    return (f"phiwatch {item['job']}: {item['event']} {f['severity']} {f['check_id']} on "
            f"{f['host']}:{f['port']}/{f['protocol']} (first seen {f['first_seen']})")


def summary(payload: dict[str, Any]) -> str:
    if payload["event"] != "digest":
        return line(payload)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(payload["counts"].items()))
    return f"phiwatch {payload['job']}: run {payload['run']}: {counts}"


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


# ---- HTTP: webhook, Slack, Teams --------------------------------------------------------------------

def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    lines = [line(item) for item in _events(payload)]
    return {"text": summary(payload),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines[:40])}}]}


def teams_body(payload: dict[str, Any]) -> dict[str, Any]:
    """An Adaptive Card in a message, as Teams workflows and incoming webhooks take it."""
    facts = [{"title": f"{item['event']} {item['finding']['severity']}",
              "value": f"{item['finding']['check_id']} on {item['finding']['host']}:{item['finding']['port']}"}
             for item in _events(payload)[:40]]
    card = {"type": "AdaptiveCard", "version": "1.4",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "body": [{"type": "TextBlock", "text": summary(payload), "wrap": True, "weight": "Bolder"},
                     {"type": "FactSet", "facts": facts}]}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


class HttpSender:
    """POSTs over a kept-alive connection per sending thread (the standard library's http.client: a
    fraction of a general client's cost per request, which counts with a thousand alerts in a run)."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        parts = urlsplit(alert.url or "")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.context = _tls_context(alert.ca_file) if self.https else None
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            if self.https:
                connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.alert.timeout,
                                                         context=self.context)
            else:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.alert.timeout)
            self.local.connection = connection
            with self.lock:
                self.opened.append(connection)
        return connection

    def send(self, key: str, payload: dict[str, Any]) -> None:
        kind = self.alert.type
        document = (payload if kind == "webhook" else slack_body(payload) if kind == "slack"
                    else teams_body(payload))
        body = body_bytes(document)
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: key,
                   "User-Agent": f"phiwatch/{__version__}"}
        key_text = secret(self.alert.secret_env)
        if kind == "webhook" and key_text:
            headers[SIGNATURE_HEADER] = sign(body, key_text)
        for attempt in (1, 2):  # a kept-alive connection the receiver closed meanwhile: once more, anew
            connection = self._connection()
            try:
                connection.request("POST", self.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read(65536)
                if response.will_close:
                    connection.close()
                status = response.status
                break
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self.local.connection = None
                if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                        ConnectionResetError)):
                    raise AlertError(f"{kind} not delivered ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise AlertError(f"{kind} not delivered (HTTP {status})")

    def close(self) -> None:
        with self.lock:
            for connection in self.opened:
                connection.close()
            self.opened.clear()


# ---- e-mail ------------------------------------------------------------------------------------------

def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


class SmtpSender:
    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        parts = urlsplit(alert.url or "")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 25

    def send(self, key: str, payload: dict[str, Any]) -> None:
        message = EmailMessage()
        message["Subject"] = summary(payload)[:200]
        message["From"] = self.alert.mail_from
        message["To"] = ", ".join(self.alert.mail_to)
        message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@phiwatch>"
        message[DELIVERY_HEADER] = key
        text = "\n".join(line(item) for item in _events(payload))
        message.set_content(text + "\n\n" + json.dumps(payload, indent=2, sort_keys=True) + "\n")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.alert.timeout) as smtp:
                smtp.ehlo()
                if self.alert.starttls:
                    smtp.starttls(context=_tls_context(self.alert.ca_file))
                    smtp.ehlo()
                user, password = secret(self.alert.username_env), secret(self.alert.password_env)
                if user and password:
                    smtp.login(user, password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise AlertError(f"smtp not delivered ({type(exc).__name__})") from None

    def close(self) -> None:
        pass


# ---- syslog ------------------------------------------------------------------------------------------

_SYSLOG_LEVEL = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
_CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3, "info": 1}
SD_ID = "phiwatch@32473"  # 32473: the enterprise number RFC 5612 sets aside for examples


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _cef_header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\n", " ")


def cef(item: dict[str, Any]) -> str:
    f = item["finding"]
    extension = {"act": item["event"], "dst": f["host"], "dpt": f["port"], "app": f["protocol"],
                 "cs1Label": "job", "cs1": item["job"], "cs2Label": "state", "cs2": f["state"],
                 "cs3Label": "firstSeen", "cs3": f["first_seen"], "cn1Label": "studies",
                 "cn1": f["studies"] if f["studies"] is not None else 0}
    fields = " ".join(f"{k}={_cef_value(v)}" for k, v in extension.items())
    return (f"CEF:0|phiwatch|phiwatch|{_cef_header(__version__)}|{_cef_header(f['check_id'])}|"
            f"{_cef_header(f['title'])}|{_CEF_SEVERITY.get(f['severity'], 1)}|{fields}")


def rfc5424(item: dict[str, Any], facility: int, fmt: str, hostname: str) -> bytes:
    f = item["finding"]
    pri = facility * 8 + _SYSLOG_LEVEL.get(f["severity"], 6)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if fmt == "cef":
        return f"<{pri}>1 {stamp} {hostname} phiwatch {os.getpid()} {item['event']} - {cef(item)}".encode()
    params = {"event": item["event"], "job": item["job"], "check": f["check_id"], "severity": f["severity"],
              "host": f["host"], "port": f["port"], "protocol": f["protocol"], "state": f["state"],
              "first_seen": f["first_seen"]}
    data = " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items())
    header = f"<{pri}>1 {stamp} {hostname} phiwatch {os.getpid()} {item['event']}"
    return f"{header} [{SD_ID} {data}] {line(item)}".encode()


class SyslogSender:
    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        parts = urlsplit(alert.url or "")
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (6514 if parts.scheme == "tls" else 514)
        self.hostname = (socket.gethostname() or "-").split(".")[0][:255] or "-"

    def send(self, key: str, payload: dict[str, Any]) -> None:
        alert = self.alert
        messages = [rfc5424(item, alert.facility, alert.format, self.hostname) for item in _events(payload)]
        try:
            if self.scheme == "udp":
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    for message in messages:
                        sock.sendto(message, (self.host, self.port))
                return
            with socket.create_connection((self.host, self.port), timeout=self.alert.timeout) as raw:
                stream: socket.socket = raw
                if self.scheme == "tls":
                    stream = _tls_context(self.alert.ca_file).wrap_socket(raw, server_hostname=self.host)
                stream.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))  # RFC 6587 octet counting
                if self.scheme == "tls":
                    stream.close()
        except OSError as exc:
            raise AlertError(f"syslog not delivered ({type(exc).__name__})") from None

    def close(self) -> None:
        pass


Sender = HttpSender | SmtpSender | SyslogSender
SENDERS: dict[str, Callable[[Alert], Sender]] = {
    "webhook": HttpSender, "slack": HttpSender, "teams": HttpSender, "smtp": SmtpSender, "syslog": SyslogSender,
}


def sender(alert: Alert) -> Sender:
    return SENDERS[alert.type](alert)
