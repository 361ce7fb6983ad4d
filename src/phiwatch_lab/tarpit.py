"""A TCP tarpit: accepts connections and never sends a byte.

Run: ``python -m phiwatch_lab.tarpit --port N``. Listens on 127.0.0.1 only. Reads and
discards at most a few KB per connection, closes each connection after 120 s (or when
the peer closes first), and holds at most 512 connections (extras are closed at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

LOG = logging.getLogger("phiwatch_lab.tarpit")

HOLD_SECONDS = 120.0
READ_LIMIT = 4096
MAX_CONNECTIONS = 512


class Tarpit:
    def __init__(
        self,
        hold: float = HOLD_SECONDS,
        read_limit: int = READ_LIMIT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.hold = hold
        self.read_limit = read_limit
        self.max_connections = max_connections
        self.active = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            writer.close()
            return
        self.active += 1
        try:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(self._swallow(reader), timeout=self.hold)
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        received = 0
        while received < self.read_limit:
            chunk = await reader.read(self.read_limit - received)
            if not chunk:
                return  # the peer closed: let go at once
            received += len(chunk)
        await asyncio.sleep(self.hold)  # budget read: stop reading, just hold on


async def serve(host: str, port: int) -> None:
    tarpit = Tarpit()
    server = await asyncio.start_server(tarpit.handle, host, port, backlog=1024, limit=READ_LIMIT)
    LOG.info("tarpit listening on %s:%d", host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Accept TCP connections and never answer.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
