"""Run a lab server that can only listen on every address (Orthanc, dcmqrscp, wlmscpfs) so that it
answers on 127.0.0.1 alone.

    python -m phiwatch_lab.isolated --port 21100 --port 21101 -- Orthanc orthanc.json

Those servers have no bind-address option: run as they are, a lab server with the canary patient
would answer on every interface of the machine, the local network's included. This wrapper
claims each port on 127.0.0.1 in the machine's network namespace, then moves itself into a new
network namespace of its own (unshare; it holds only a loopback interface), starts the server
there, and once the server accepts on every port, relays each connection made to 127.0.0.1 to the
same port inside, byte for byte. The server sees its clients come from 127.0.0.1, as before.
The namespace has no name and nothing to clean up: it ends with the wrapper and the server, which
share one process group (the lab stops both at once).

Without the right to make a namespace (not root), it runs the server as it is and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
CLONE_NEWNET = 0x40000000
READY_SECONDS = 120.0


def _claim(ports: list[int]) -> list[socket.socket]:
    """Each port bound on 127.0.0.1 here, not yet listening (a connection is refused until the
    server inside is ready)."""
    claimed = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        claimed.append(sock)
    return claimed


def _new_namespace() -> bool:
    """Move this process (one thread so far) into a new network namespace with loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return True


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.CancelledError):
        writer.close()


async def _relay(port: int, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    try:
        inner_reader, inner_writer = await asyncio.open_connection(HOST, port)  # in this namespace
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(_pipe(client_reader, inner_writer), _pipe(inner_reader, client_writer))
    for writer in (inner_writer, client_writer):
        writer.close()


async def _serve(claimed: list[socket.socket], ports: list[int], server: subprocess.Popen) -> int:
    for sock in claimed:
        sock.listen(256)
    servers = [await asyncio.start_server(functools.partial(_relay, port), sock=sock, backlog=256)
               for sock, port in zip(claimed, ports, strict=True)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    while not stop.is_set() and server.poll() is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for relay in servers:
        relay.close()
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    return server.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    claimed = _claim(args.port)
    if not _new_namespace():
        for sock in claimed:
            sock.close()
        print("phiwatch_lab.isolated: no network namespace (not root?): the server listens on every address",
              file=sys.stderr, flush=True)
        os.execvp(command[0], command)
    server = subprocess.Popen(command)
    deadline = time.monotonic() + READY_SECONDS
    while not all(_accepting(port) for port in args.port):
        if server.poll() is not None or time.monotonic() > deadline:
            if server.poll() is None:
                server.kill()
            return server.wait() or 1
        time.sleep(0.1)
    return asyncio.run(_serve(claimed, args.port, server))


def command(ports: list[int], argv: list[str]) -> list[str]:
    """The lab's command line for `argv`, answering on 127.0.0.1 `ports` only."""
    return [sys.executable, "-m", "phiwatch_lab.isolated", *(f"--port={port}" for port in ports), "--", *argv]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
