"""Given a probe cut short on our side, its service says so: never an open service, never the
target's error, and a partial scan passes no compliance requirement."""

from __future__ import annotations

import asyncio

from phiwatch.models import UNFINISHED, ProbeStatus, Service
from phiwatch.scanner import _cut_short


def a_service(status: ProbeStatus, detail: str | None = None) -> Service:
    return Service(host="127.0.0.1", port=104, protocol="http", status=status, detail=detail)


def test_a_probe_that_fails_while_being_cancelled_says_interrupted():
    async def probe_then_cancelled() -> list[Service]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # as a library that turns a cancel into its own error
            return [_cut_short(a_service(s, "unexpected answer (ValueError)")) for s in (
                ProbeStatus.PROTOCOL_ERROR, ProbeStatus.PROBE_ERROR, ProbeStatus.RESET, ProbeStatus.EXPOSED)]
        raise AssertionError("not cancelled")

    async def main() -> list[Service]:
        task = asyncio.create_task(probe_then_cancelled())
        await asyncio.sleep(0)
        task.cancel()
        return await task

    failed, ours, reset, exposed = asyncio.run(main())
    for service in (failed, ours, reset):
        assert service.status is ProbeStatus.INTERRUPTED
        assert service.detail == "scan interrupted; unexpected answer (ValueError)"
    assert exposed.status is ProbeStatus.EXPOSED  # what the facts proved stands


def test_without_a_cancel_a_probe_keeps_its_status():
    async def main() -> Service:
        return _cut_short(a_service(ProbeStatus.PROTOCOL_ERROR))

    assert asyncio.run(main()).status is ProbeStatus.PROTOCOL_ERROR
    assert {ProbeStatus.INTERRUPTED, ProbeStatus.PROBE_ERROR} == UNFINISHED
