"""Given an HTTP peer that misbehaves, the web probe ends in a status: limits hold, no crash,
no hang past its deadline, bounded memory, and canary PHI never reaches the facts."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from urllib.parse import parse_qs, urlsplit

from phiwatch.engine import Engine, Limits
from phiwatch.models import ProbeStatus
from phiwatch.peertext import peer_text
from phiwatch.probes import http
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch.probes.web_catalog import web_catalog

from .parrot import Parrot

CANARY = "HTTPCANARY^QIDO^ZZ7"
BOMB = gzip.compress(b"[" + b" " * 50_000_000 + b"]")  # ~50 kB that expands to 50 MB


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def study(index: int) -> dict:
    return {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": CANARY}]},
        "00100020": {"vr": "LO", "Value": [f"HTTPCANARY-{index}"]},
        "00100030": {"vr": "DA"},
        "00201208": {"vr": "IS", "Value": [3]},
        "0020000D": {"vr": "UI", "Value": [f"1.2.3.{index}"]},
    }


def server(route):
    async def scenario(reader, writer):
        method, target, headers = await read_request(reader)
        await route(method, target, headers, writer)
        await writer.drain()

    return scenario


def run_probe(route, options: http.HttpOptions | None = None, limits: Limits | None = None):
    async def go(port: int):
        engine = Engine(limits or Limits(timeout=1.0, retries=0))
        try:
            probe_options = ProbeOptions(http=options or http.HttpOptions())
            return await http.probe(engine, Peer("127.0.0.1", port), probe_options)
        finally:
            engine.close()

    with Parrot(server(route)) as parrot:
        tracemalloc.start()
        started = time.monotonic()
        outcome = asyncio.run(go(parrot.port))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return outcome, elapsed, peak, parrot.connections


async def huge_headers(method, target, headers, writer):
    writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"A" * 2_000_000 + b"\r\n\r\n")


async def endless_chunks(method, target, headers, writer):
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(100_000):
        writer.write(b"400\r\n" + b"A" * 1024 + b"\r\n")
        await writer.drain()


async def redirect_loop(method, target, headers, writer):
    writer.write(respond(302, headers={"Location": "/b" if target == "/a" else "/a"}))


def off_origin(port: int):
    async def route(method, target, headers, writer):
        writer.write(respond(302, headers={"Location": f"http://127.0.0.1:{port}/steal"}))

    return route


async def drip(method, target, headers, writer):
    for byte in respond(200, b"x" * 100):
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.3)


def qido(pages_ignore_limit: bool = False, bomb: bool = False, bad_json: bool = False, total: int = 250):
    async def route(method, target, headers, writer):
        url = urlsplit(target)
        if url.path != "/dicom-web/studies":
            writer.write(respond(404))
            return
        if bad_json:
            writer.write(respond(200, b'[{"00100010": {"vr": "PN", "Value": [{"Alph', {
                "Content-Type": "application/dicom+json"}))
            return
        if bomb:
            writer.write(respond(200, BOMB, {"Content-Type": "application/dicom+json",
                                                "Content-Encoding": "gzip"}))
            return
        query = parse_qs(url.query)
        limit, offset = int(query["limit"][0]), int(query.get("offset", ["0"])[0])
        chosen = range(total) if pages_ignore_limit else range(offset, min(total, offset + limit))
        body = json.dumps([study(i) for i in chosen]).encode()
        writer.write(respond(200, body, {"Content-Type": "application/dicom+json",
                                         "Access-Control-Allow-Origin": "*",
                                         "Access-Control-Allow-Credentials": "true"}))

    return route


def test_huge_headers_end_in_a_protocol_error():
    outcome, elapsed, peak, _ = run_probe(huge_headers)
    assert outcome.status in (ProbeStatus.PROTOCOL_ERROR, ProbeStatus.BUDGET_EXCEEDED)
    assert elapsed < 15 and peak < 32 * 1024 * 1024


def test_an_endless_chunked_body_is_cut_at_the_body_limit():
    outcome, elapsed, peak, _ = run_probe(endless_chunks)
    assert outcome.status is ProbeStatus.OPEN
    assert outcome.facts.status_code == 200
    assert elapsed < 30 and peak < 32 * 1024 * 1024


def test_a_redirect_loop_stops_at_the_redirect_limit():
    outcome, _, _, connections = run_probe(redirect_loop)
    assert outcome.status is ProbeStatus.OPEN and outcome.facts.status_code == 302
    catalog = web_catalog()
    paths = {"/"} | {row.path for row in catalog.fingerprints} | set(catalog.dicomweb_roots)
    assert connections == outcome.facts.requests
    assert connections <= 4 * len(paths)  # each path: the request and at most 3 hops


def test_a_redirect_to_another_host_is_never_followed():
    with Parrot(server(redirect_loop)) as elsewhere:  # another origin: it must see nothing
        outcome, _, _, _ = run_probe(off_origin(elsewhere.port))
        assert elsewhere.connections == 0
    assert outcome.facts.status_code == 302


def test_a_dripping_server_cannot_stretch_the_request_deadline():
    outcome, elapsed, _, _ = run_probe(drip, options=http.HttpOptions(request_time=1.5))
    assert outcome.status is ProbeStatus.TIMEOUT
    assert elapsed < 5


def test_a_compression_bomb_expands_no_further_than_the_body_limit():
    outcome, _, peak, _ = run_probe(qido(bomb=True))
    [exposure] = [d for d in outcome.facts.dicomweb if d.root == "/dicom-web"] or [None]
    assert peak < 48 * 1024 * 1024
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.BUDGET_EXCEEDED)
    assert exposure is None or exposure.result == "error"


def test_invalid_json_is_an_error_result_not_a_crash():
    outcome, _, _, _ = run_probe(qido(bad_json=True))
    assert outcome.status is ProbeStatus.OPEN
    assert outcome.facts.dicomweb == []  # a common root that fails is not reported


def test_qido_paging_counts_up_to_max_matches_and_keeps_no_values():
    outcome, _, _, _ = run_probe(qido(), options=http.HttpOptions(max_matches=120))
    [exposure] = outcome.facts.dicomweb
    assert outcome.status is ProbeStatus.EXPOSED
    assert (exposure.studies, exposure.instances, exposure.truncated) == (120, 360, True)
    assert exposure.phi_attributes == ["PatientID", "PatientName"]  # BirthDate came back empty
    assert exposure.cors_wildcard and outcome.facts.cors_wildcard_credentials
    dumped = outcome.facts.model_dump_json()
    assert CANARY not in dumped and "HTTPCANARY-" not in dumped


def test_a_server_ignoring_limit_is_counted_no_further_than_asked():
    # Each page is 900 studies built and parsed under tracemalloc; on a loaded machine the first one
    # took longer than run_probe's default 1 s, and a page that never came proves nothing (pages read
    # before a failure are kept: test_a_broken_second_page_keeps_what_the_first_proved).
    # This test counts; it does not time: 10 s of margin.
    outcome, _, _, _ = run_probe(qido(pages_ignore_limit=True, total=900),
                                 options=http.HttpOptions(max_matches=150), limits=Limits(timeout=10.0, retries=0))
    [exposure] = outcome.facts.dicomweb
    assert exposure.studies == 150 and exposure.truncated


def test_https_on_an_odd_port_is_identified_with_its_certificate(tmp_path):
    import ssl

    from phiwatch.scanner import ScanConfig, Scanner
    from phiwatch.targets import build_targets
    from phiwatch_lab.certs import make_self_signed

    # Given a DICOMweb server behind TLS with a self-signed certificate, on an odd port
    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with Parrot(server(qido(total=7)), ssl_context=context) as parrot:
        config = ScanConfig(ports=[parrot.port], limits=Limits(timeout=1.0, retries=0))
        outcome = asyncio.run(Scanner(config).run(build_targets(["127.0.0.1"])))
    # Then it is found as HTTPS, exposed, with the certificate's facts
    [service] = outcome.services
    assert (service.protocol, service.status, service.identified_by) == ("https", ProbeStatus.EXPOSED, "probe")
    assert service.tls is not None and service.tls.self_signed
    assert service.tls.subject == peer_text("CN=phiwatch-lab")  # the certificate's subject, through the gate
    checks = {f.check_id for f in outcome.findings}
    assert "dicomweb_studies_exposed" in checks and "web_credentials_over_http" not in checks


HOSTILE_STUDIES = [
    {"1FFFFFFFF": {"vr": "PN", "Value": [{"Alphabetic": CANARY}]}, "00201208": {"vr": "IS", "Value": [2]}},
    {"00201208": {"vr": "IS", "Value": ["Infinity"]}, "-0010": {"Value": [1]}},
    {"00201208": {"vr": "IS", "Value": [1e999]}, "00100010": {"vr": "PN", "Value": 5}},
    {"00201208": {"vr": "IS", "Value": [float("nan")]}, "00100020": {"Value": {"a": CANARY}}},
    {"00201208": {"vr": "IS", "Value": [10**40]}, "00100030": "not an element"},
    {"00201208": {"vr": "IS", "Value": [-3]}, "00100010": {"Value": [{"Alphabetic": CANARY}]}},
    {"00201208": {"vr": "IS", "Value": 7}, "00100020": {"Value": [[CANARY]]}},
    {"00201208": {"vr": "IS", "Value": [True]}},
    {"00201208": {"vr": "IS", "Value": ["5"]}},
]


def hostile_qido(second_page: bytes | None = None):
    """Studies with out-of-range and wrong-typed fields (Infinity and NaN as JSON words)."""
    async def route(method, target, headers, writer):
        url = urlsplit(target)
        if url.path != "/dicom-web/studies":
            writer.write(respond(404))
            return
        offset = int(parse_qs(url.query).get("offset", ["0"])[0])
        if offset and second_page is not None:
            writer.write(respond(200, second_page, {"Content-Type": "application/dicom+json"}))
            return
        studies = HOSTILE_STUDIES if not offset else []
        body = json.dumps(studies).replace('"Infinity"', "Infinity")
        body = body.replace('[1e999]', '[1e999]').replace("[NaN]", "[NaN]")
        body = body.replace(str(10**40), "9" * 5000)  # longer than Python's int parser allows
        body = body[:-1] + ", " + ", ".join(json.dumps(study(i)) for i in range(91)) + "]"
        writer.write(respond(200, body.encode(), {"Content-Type": "application/dicom+json"}))

    return route


def test_hostile_dicomweb_json_keeps_the_exposure():
    # Given a QIDO-RS answer with a tag key above 32 bits, Infinity/NaN/1e999 and a
    # 5000-digit count, wrong types for Value, and 91 ordinary studies after them
    outcome, _, _, _ = run_probe(hostile_qido())
    # Then the service is exposed, every study counted, only sane counts summed
    [exposure] = outcome.facts.dicomweb
    assert outcome.status is ProbeStatus.EXPOSED
    assert exposure.result == "exposed" and exposure.studies == len(HOSTILE_STUDIES) + 91
    assert exposure.instances == 2 + 5 + 91 * 3
    assert exposure.phi_attributes == ["PatientID", "PatientName"]
    assert CANARY not in outcome.facts.model_dump_json()


def test_a_broken_second_page_keeps_what_the_first_proved():
    # Given a server whose first page is full and whose second page is not JSON
    route = hostile_qido(second_page=b'[{"00100010": {"Value": [')
    outcome, _, _, _ = run_probe(route, options=http.HttpOptions(max_matches=500))
    [exposure] = outcome.facts.dicomweb
    # Then the first page's studies still prove the exposure, and the failure is noted
    assert outcome.status is ProbeStatus.EXPOSED and exposure.result == "exposed"
    assert exposure.studies == 100 and exposure.error == "answer is not JSON"


def test_an_exception_in_any_step_keeps_the_facts_gathered_before(monkeypatch):
    from phiwatch.probes import dicomweb

    # Given a parser that breaks (a bug, or an answer nobody foresaw) on the second page
    calls = {"n": 0}
    original = dicomweb._phi_names

    def breaks_later(study_json, into):
        calls["n"] += 1
        if calls["n"] > 100:
            raise RuntimeError(CANARY)
        original(study_json, into)

    monkeypatch.setattr(dicomweb, "_phi_names", breaks_later)
    outcome, _, _, _ = run_probe(qido(total=250), options=http.HttpOptions(max_matches=250))
    # Then the step ends with a status, the exposure stands, and the message is not kept
    [exposure] = outcome.facts.dicomweb
    assert outcome.status is ProbeStatus.EXPOSED
    assert exposure.result == "exposed" and exposure.studies >= 100
    assert exposure.error == "internal error (RuntimeError)"
    assert CANARY not in outcome.facts.model_dump_json() and CANARY not in (outcome.detail or "")


def test_a_failing_fingerprint_step_does_not_end_the_probe(monkeypatch):
    # Given a fingerprint step that raises
    async def broken(self):
        raise KeyError(CANARY)

    monkeypatch.setattr(http._Probe, "_fingerprint", broken)
    outcome, _, _, _ = run_probe(qido(total=5))
    # Then the later steps still ran and proved the exposure; the failed step is named
    assert outcome.status is ProbeStatus.EXPOSED and outcome.facts.dicomweb[0].studies == 5
    assert outcome.detail == "fingerprint: unexpected answer (KeyError)"
    assert CANARY not in (outcome.detail or "")
