"""A counting TCP relay: what a server in front of which it stands sees of a client's connections.

It listens on `listen_host` at each of `ports` and forwards every connection to the same port
of `target_host`, byte for byte, in both directions. Each connection is recorded from its
accept to the client's end (its EOF or reset): the relay reports the most connections open at
once and the most accepted within any one second. It runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Two connections are simultaneous if both were open for longer than this at once: shorter
# overlaps are the order in which the relay's loop happened to see one's end and the other's
# accept, both already done by the client.
TOLERANCE = 0.003


@dataclass
class Record:
    port: int
    opened: float
    closed: float | None = None
    sent: int = 0  # bytes the server sent the client


@dataclass
class CountingRelay:
    listen_host: str
    target_host: str
    ports: list[int]
    records: list[Record] = field(default_factory=list)
    # For each connection, a function through which the server's bytes pass on their way to the
    # client (a tampering relay: tests that a server's one malformed answer is survived).
    rewrite: Callable[[], Callable[[bytes], bytes]] | None = None

    def __enter__(self) -> CountingRelay:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # --- what was seen ------------------------------------------------------------------

    def peak(self) -> int:
        """The most connections open at once (overlaps shorter than TOLERANCE not counted)."""
        events: list[tuple[float, int]] = []
        end = time.monotonic()
        for record in self.records:
            closed = record.closed if record.closed is not None else end
            if closed - record.opened > TOLERANCE:
                events.append((record.opened, 1))
                events.append((closed - TOLERANCE, -1))
        events.sort(key=lambda e: (e[0], e[1]))
        now = best = 0
        for _, step in events:
            now += step
            best = max(best, now)
        return best

    def busiest_second(self) -> int:
        """The most connections accepted within any one second."""
        starts = sorted(r.opened for r in self.records)
        best, first = 0, 0
        for last, moment in enumerate(starts):
            while moment - starts[first] >= 1.0:
                first += 1
            best = max(best, last - first + 1)
        return best

    # --- the relay ----------------------------------------------------------------------

    def _run(self) -> None:
        self._error: BaseException | None = None
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        servers = []
        try:
            for port in self.ports:
                servers.append(await asyncio.start_server(
                    lambda r, w, p=port: self._relay(p, r, w), self.listen_host, port, backlog=256))
        except OSError as exc:
            self._error = exc
        self._ready.set()
        if self._error is None:
            await self._stop.wait()
        for server in servers:
            server.close()

    async def _relay(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = Record(port, time.monotonic())
        self.records.append(record)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, port)
        except OSError:
            await self._until_client_ends(record, reader)
            writer.close()
            return
        change = self.rewrite() if self.rewrite is not None else None
        upstream = asyncio.ensure_future(self._pipe(up_reader, writer, record, change))
        await self._pipe(reader, up_writer)  # the client's data, to its end
        record.closed = time.monotonic()
        upstream.cancel()
        for side in (writer, up_writer):
            side.close()

    async def _until_client_ends(self, record: Record, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        record.closed = time.monotonic()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    record: Record | None = None, change: Callable[[bytes], bytes] | None = None) -> None:
        try:
            while data := await source.read(65536):
                if record is not None:
                    record.sent += len(data)
                if change is not None:
                    data = change(data)
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                if sink.can_write_eof():
                    sink.write_eof()
            except OSError:
                pass
