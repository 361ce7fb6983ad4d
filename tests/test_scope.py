"""Given an excluded address, no spelling of it is ever connected to: on the command line,
in target files, in `--from` service lists, as a target or as the exclude itself.

A real listening socket on 127.0.0.1 counts every connection attempt. Only numeric
spellings are used, so nothing here can reach a resolver.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from phiwatch.run import ScanRequest, run_scan
from phiwatch.targets import TargetError, build_targets, canonical

# Every way of writing 127.0.0.1 that reaches it (or that a reader would take for it).
SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.0.0.1",
    "0x7f.0x0.0x0.0x1",
    "127.000.000.001",
    "017700000001",
    "::ffff:127.0.0.1",
    "::FFFF:7F00:1",
    "0:0:0:0:0:ffff:7f00:0001",
    "0000:0000:0000:0000:0000:ffff:7f00:0001",
    "[::ffff:127.0.0.1]",
    "::ffff:0:127.0.0.1",
    "::127.0.0.1",
    "::7f00:1",
]
# Octal with a leading zero: 127.0.0.1 to the resolver, 177.0.0.1 to a reader. As an
# exclude it excludes both; as a target it is refused.
AMBIGUOUS = ["0177.0.0.1", "0177.0.0.01"]
# Written as blocks and ranges (targets) around the same address.
BLOCKS = ["127.0.0.1/32", "::ffff:127.0.0.1/128", "::ffff:127.0.0.0/127", "127.0.0.1-1",
          "::ffff:127.0.0.1-::ffff:127.0.0.1", "0x7f000001/32", "127.1/32"]


class CountingServer:
    """Accepts and counts every connection on 127.0.0.1 (which every spelling reaches)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[CountingServer]:
    counting = CountingServer()
    yield counting
    counting.close()


@pytest.fixture
def control(server: CountingServer) -> Iterator[CountingServer]:
    """The same port on 127.0.0.2, not excluded: proves each scan did run."""
    counting = CountingServer("127.0.0.2", server.port)
    yield counting
    counting.close()


def scan(port: int, **options) -> None:
    request = ScanRequest(ports=str(port), store=False, timeout=0.5, retries=0, progress="none", **options)
    try:
        run_scan(request, Console(file=open("/dev/null", "w")))  # noqa: SIM115
    except TargetError as exc:
        assert "no open TCP service" in str(exc) or "no targets" in str(exc) or "nothing" in str(exc)


def test_every_spelling_is_the_same_canonical_address():
    assert {str(canonical(s)) for s in SPELLINGS} == {"127.0.0.1"}


def test_the_control_scan_does_connect(server):
    # Given no exclude, each spelling alone reaches the server: the counter can see a scan
    for spelling in ["127.0.0.1", "::ffff:127.0.0.1", "2130706433"]:
        before = server.accepted
        scan(server.port, targets=[spelling])
        assert server.accepted > before, spelling


@pytest.mark.parametrize("excluded", SPELLINGS + AMBIGUOUS)
def test_every_spelling_as_target_and_as_exclude_gives_zero_attempts(server, excluded):
    # When every spelling is a target and one spelling is the exclude
    scan(server.port, targets=SPELLINGS + BLOCKS, excludes=[excluded])
    # Then not one connection reached the excluded address
    assert server.accepted == 0


def test_from_lists_and_target_files_cannot_talk_an_exclude_around(server, control, tmp_path: Path):
    # Given a --from list and a target file holding every spelling, excluded by a file with another
    listed = [f"[{s.strip('[]')}]:{server.port}" if ":" in s else f"{s}:{server.port}" for s in SPELLINGS]
    (tmp_path / "services.txt").write_text("\n".join([*listed, f"127.0.0.2:{server.port}"]) + "\n")
    (tmp_path / "targets.txt").write_text("\n".join([*SPELLINGS, *BLOCKS, "127.0.0.2"]) + "\n")
    (tmp_path / "excludes.txt").write_text("::ffff:7f00:1\n0177.0.0.1\n")
    excludes = [str(tmp_path / "excludes.txt")]
    scan(server.port, targets=[], from_file=tmp_path / "services.txt", exclude_files=excludes)
    assert control.accepted > 0
    scan(server.port, targets=[], input_lists=[str(tmp_path / "targets.txt")], excludes=["0x7f.1"])
    assert control.accepted > 1
    assert server.accepted == 0


def test_the_command_line_honours_excludes_in_any_spelling(server, control, tmp_path: Path):
    # The same through the real command, both ways: targets and a --from list
    (tmp_path / "services.txt").write_text(
        f"[::ffff:127.0.0.1]:{server.port}\n2130706433:{server.port}\n127.0.0.2:{server.port}\n")
    common = ["-p", str(server.port), "--no-db", "--timeout", "0.5", "--retries", "0"]
    runs = [
        ["scan", *SPELLINGS, *BLOCKS, "127.0.0.2", "--exclude", "0x7f000001", *common],
        ["scan", "--from", str(tmp_path / "services.txt"), "--exclude", "::127.0.0.1", *common],
    ]
    for number, args in enumerate(runs, 1):
        result = subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert control.accepted >= number  # the scan ran and reached the address it may reach
    assert server.accepted == 0


@pytest.mark.parametrize("never", ["0.0.0.0", "::", "0", "0x0", "::ffff:0.0.0.0", "224.0.0.1", "239.1.2.3",
                                   "255.255.255.255", "ff02::1", "::ffff:224.0.0.1", "0.1.2.3"])
def test_unspecified_multicast_and_broadcast_are_never_scanned(never):
    targets = build_targets([never, "127.0.0.2"])
    assert list(targets.addresses()) == ["127.0.0.2"]


def test_translator_aliases_of_an_excluded_address_are_excluded():
    # NAT64 and 6to4 addresses reach the IPv4 host through a translator: the exclude covers them
    targets = build_targets(["64:ff9b::7f00:1", "2002:7f00:1::9", "2002:7f00:2::9"], excludes=["127.0.0.1"])
    assert list(targets.addresses()) == ["2002:7f00:2::9"]


def test_an_ambiguous_spelling_is_refused_as_target_and_excludes_both_readings():
    # 010.0.0.1 is 8.0.0.1 to the resolver and 10.0.0.1 to a reader
    with pytest.raises(TargetError, match="ambiguous"):
        build_targets(["010.0.0.1"])
    targets = build_targets(["8.0.0.0/30", "10.0.0.0/30"], excludes=["010.0.0.1"])
    assert "8.0.0.1" not in list(targets.addresses()) and "10.0.0.1" not in list(targets.addresses())
    assert targets.size == 6
