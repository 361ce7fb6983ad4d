"""Run the lab's nfs-ganesha and rpcbind in a network namespace of their own.

    python -m phiwatch_lab.nfsns --base PORT --folder DIR

Creates the namespace and the veth pair named after the base port (first removing any left
by a crashed run), starts rpcbind in a private mount namespace with its own /run (rpcbind's
socket file is global), then ganesha.nfsd in the same namespaces. On SIGTERM, or when either
daemon exits, it stops both and deletes the namespace and the veth pair.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .nfs import GANESHA, PORTMAP_PORT, RPCBIND, addresses, links, namespace
from .process import port_accepting

STOP_WAIT = 8.0  # ganesha takes about 5 s to exit after SIGTERM


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, timeout=15)


def remove(base: int) -> None:
    """Delete the namespace and veth pair of this base port, and end what still runs inside."""
    name = namespace(base)
    if (Path("/run/netns") / name).exists():
        pids = _ip("netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name, check=False)
    host_end, _ = links(base)
    if (Path("/sys/class/net") / host_end).exists():
        _ip("link", "del", host_end, check=False)


def setup(base: int) -> None:
    name = namespace(base)
    host_end, ns_end = links(base)
    host_addr, ns_addr = addresses(base)
    _ip("netns", "add", name)
    _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", name)
    _ip("addr", "add", f"{host_addr}/30", "dev", host_end)
    _ip("link", "set", host_end, "up")
    for args in (("addr", "add", f"{ns_addr}/30", "dev", ns_end), ("link", "set", ns_end, "up"),
                 ("link", "set", "lo", "up")):  # fmt: skip
        _ip("-n", name, *args)


def _stop(child: subprocess.Popen[bytes] | None) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(5)


def run(base: int, folder: Path, stop: threading.Event) -> int:
    remove(base)
    rpcbind = ganesha = None
    try:
        setup(base)
        mount_run = f"mount -t tmpfs -o mode=0755,size=16m phiwatch-nfs /run && exec {RPCBIND} -w -f"
        rpcbind = subprocess.Popen(
            ["ip", "netns", "exec", namespace(base), "unshare", "--mount", "--propagation", "private",
             "sh", "-c", mount_run]  # fmt: skip
        )
        ns_addr = addresses(base)[1]
        deadline = time.monotonic() + 10
        while not port_accepting(PORTMAP_PORT, ns_addr, 0.2):
            if rpcbind.poll() is not None or time.monotonic() > deadline or stop.is_set():
                print("rpcbind did not start", flush=True)
                return 1
            time.sleep(0.1)
        ganesha = subprocess.Popen(
            ["nsenter", "-t", str(rpcbind.pid), "-m", "-n", "--", GANESHA, "-F",
             "-f", str(folder / "ganesha.conf"), "-L", str(folder / "ganesha.log"),
             "-p", str(folder / "ganesha.pid")]  # fmt: skip
        )
        print(f"nfs-ganesha and rpcbind in namespace {namespace(base)} at {ns_addr}", flush=True)
        while not stop.wait(0.2):
            if rpcbind.poll() is not None or ganesha.poll() is not None:
                print("a daemon exited: see ganesha.log", flush=True)
                return 1
        return 0
    finally:
        _stop(ganesha)
        _stop(rpcbind)
        remove(base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phiwatch_lab.nfsns")
    parser.add_argument("--base", type=int, required=True)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run(args.base, args.folder, stop)


if __name__ == "__main__":
    raise SystemExit(main())
