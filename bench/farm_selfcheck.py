"""Self-check for bench/farm.py: start a small farm, probe each kind, verify behaviour.

Usage: python bench/farm_selfcheck.py [--count 30] [--net 127.78.0.0/24] [--port 104]
Exits 0 when every check passes. Uses pynetdicom as the client plus raw sockets for
reject details, silence and hostile input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

HERE = Path(__file__).resolve().parent
VERIFICATION = "1.2.840.10008.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
Check = Callable[[str, int], None]


def rq_bytes(called: str, calling: str = "SELFCHECK") -> bytes:
    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.called_ae_title, prim.calling_ae_title = called, calling
    max_len = MaximumLengthNotification()
    max_len.maximum_length_received = 16384
    prim.user_information = [max_len]
    cx = build_context(VERIFICATION)
    cx.context_id = 1
    prim.presentation_context_definition_list = [cx]
    return A_ASSOCIATE_RQ(prim).encode()


def raw_exchange(host: str, port: int, payload: bytes, wait: float = 2.0) -> bytes | None:
    """Send payload, return what comes back before close (None if nothing within wait)."""
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            if not chunks:
                return None
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def associate(host: str, port: int, called: str):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="SELFCHECK")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 3
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(STUDY_FIND)
    return ae.associate(host, port, ae_title=called)


def check_accepts(host: str, port: int, called: str) -> None:
    assoc = associate(host, port, called)
    assert assoc.is_established, f"{host}: not established with called={called}"
    acc = assoc.acceptor
    assert acc.implementation_class_uid == "1.2.826.0.1.3680043.9.3811.3.0.4"
    assert acc.implementation_version_name == "PHIWATCH_FARM"
    assert acc.maximum_length == 16384
    results = {str(c.abstract_syntax): c.result for c in assoc.accepted_contexts}
    results |= {str(c.abstract_syntax): c.result for c in assoc.rejected_contexts}
    assert results == {VERIFICATION: 0, STUDY_FIND: 3}, results
    status = assoc.send_c_echo()
    assert status is not None and status.Status == 0, status
    assoc.release()
    assert assoc.is_released, f"{host}: release failed"


def check_accept_any(host: str, port: int) -> None:
    check_accepts(host, port, "ANY-SCP")
    check_accepts(host, port, "FARMPACS")


def check_called_ae(host: str, port: int) -> None:
    assert associate(host, port, "ANY-SCP").is_rejected, f"{host}: not rejected"
    reply = raw_exchange(host, port, rq_bytes("ANY-SCP"))
    assert reply == bytes([3, 0, 0, 0, 0, 4, 0, 1, 1, 7]), reply
    check_accepts(host, port, "FARMPACS")


def check_silent(host: str, port: int) -> None:
    assert raw_exchange(host, port, rq_bytes("ANY-SCP"), wait=1.5) is None, f"{host} spoke"
    assert not associate(host, port, "FARMPACS").is_established


def check_hostile(host: str, port: int) -> None:
    hostile = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"\x01\x00\xff\xff\xff\xff",  # huge length
        b"\x01\x00\x00\x00\x00\x0a" + b"\x00" * 10,  # RQ too short to decode
        b"\x04\x00\x00\x00\x00\x02\x00\x00",  # P-DATA before association
        rq_bytes("ANY-SCP") + b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x01\x03",  # bad PDV
    ]
    for payload in hostile:
        reply = raw_exchange(host, port, payload)
        assert reply is None or reply[:1] in (b"\x02", b"\x07"), (payload, reply)
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(rq_bytes("ANY-SCP")[:20])  # truncated, then hang up
    check_accept_any(host, port)  # the farm still answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--net", default="127.78.0.0/24")
    ap.add_argument("--port", type=int, default=104)
    ap.add_argument("--per-kind", type=int, default=3)
    args = ap.parse_args(argv)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    truth_file = Path(tempfile.mkdtemp(prefix="farm-selfcheck-")) / "truth.json"
    cmd = [sys.executable, str(HERE / "farm.py"), "--count", str(args.count), "--net", args.net,
           "--port", str(args.port), "--truth", str(truth_file)]
    farm = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    failures = 0
    try:
        assert farm.stdout is not None
        line = farm.stdout.readline().strip()
        if not line.startswith("READY"):
            print(f"farm did not start: {line!r}")
            return 1
        by_kind: dict[str, list[str]] = {}
        for entry in json.loads(truth_file.read_text()):
            by_kind.setdefault(entry["kind"], []).append(entry["host"])
        checks: dict[str, Check] = {"accept-any": check_accept_any,
                                    "called-ae-check": check_called_ae, "silent": check_silent}
        plan = [(k, h, checks[k]) for k in checks for h in by_kind[k][: args.per_kind]]
        plan.append(("hostile", by_kind["accept-any"][0], check_hostile))
        for kind, host, check in plan:
            t0 = time.monotonic()
            try:
                check(host, args.port)
                print(f"ok   {kind:16} {host:15} {time.monotonic() - t0:.2f}s")
            except Exception as exc:  # report every failure, keep going
                failures += 1
                print(f"FAIL {kind:16} {host:15} {exc!r}")
        alive = farm.poll() is None
        print(f"farm alive after checks: {alive}")
        failures += 0 if alive else 1
    finally:
        if farm.poll() is None:
            os.killpg(farm.pid, signal.SIGTERM)
        farm.wait(timeout=10)
    print("SELFCHECK PASS" if failures == 0 else f"SELFCHECK FAIL ({failures})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
