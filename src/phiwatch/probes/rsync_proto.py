"""The rsync daemon protocol, as far as a header-only visitor needs it (protocol 30).

No Python library speaks rsync's file-list protocol, so this module implements the little
that is needed, from rsync's own sources (clientserver.c, compat.c, flist.c, io.c,
sender.c):

- the daemon handshake: the server greets `@RSYNCD: <version>`; phiwatch answers
  `@RSYNCD: 30.0` (protocol 30 needs no digest list); a bare line lists the modules
  (`name<TAB>comment`, then `@RSYNCD: EXIT`); a module name is answered `@RSYNCD: OK`,
  `@RSYNCD: AUTHREQD <challenge>` or `@ERROR: ...`;
- after OK: the server arguments of a recursive sender (`--server --sender -lr . module/`),
  the compat flags and checksum seed, then the multiplexed stream (4-byte headers: tag
  MPLEX_BASE + code in the top byte, 24-bit length) carrying the filter list (one rule that
  bounds the depth) and the file list (flags, prefix-compressed names, varint and varlong
  sizes, times and modes, symbolic link targets);
- the transfer phase for one file: a request with an empty checksum header makes the
  sender send the whole file as literal data; phiwatch reads the first tokens up to the
  per-file budget and drops the connection (rsync has no way to stop a file midway).

Every line, name, frame and count is bounded; every read keeps to the session's deadline
and is charged to the walk's byte budget.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .walk import Budget

PROTOCOL = 30
MAX_LINE = 4096  # greeting, MOTD, module and reply lines
MAX_LINES = 512  # lines of MOTD and module list read in one answer
MAX_PATH = 4096  # a name in the file list (rsync's MAXPATHLEN)
MPLEX_BASE = 7
MSG_DATA = 0
MSG_NO_SEND = 102
MSG_ERROR_EXIT = 86
MAX_TOKEN = 1 << 24  # literal data comes in chunks of 32 KiB (CHUNK_SIZE)
KNOWN_MESSAGES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 22, 33, 42, 86, 100, 101, 102}
ITEM_TRANSFER = 1 << 15
ITEM_BASIS_TYPE_FOLLOWS = 1 << 11
ITEM_XNAME_FOLLOWS = 1 << 12
# File-list flags (rsync.h)
XMIT_EXTENDED_FLAGS = 1 << 2
XMIT_SAME_MODE = 1 << 1
XMIT_SAME_NAME = 1 << 5
XMIT_LONG_NAME = 1 << 6
XMIT_SAME_TIME = 1 << 7
XMIT_HLINKED = 1 << 9
XMIT_HLINK_FIRST = 1 << 12
XMIT_IO_ERROR_ENDLIST = 1 << 12
XMIT_MOD_NSEC = 1 << 13
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000
_EXTRA = bytes([0] * 32 + [1] * 16 + [2] * 8 + [3] * 4 + [4] * 2 + [5, 6])  # io.c int_byte_extra
_GREETING = re.compile(rb"^@RSYNCD: (\d{1,4})(?:\.(\d{1,4}))?")
GLOB = re.compile(r"[*?\[\\]")
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class ProtocolError(Exception):
    """The peer's bytes break the rsync protocol."""


class NotSent(Exception):
    """The sender could not (or would not) send the requested file."""


class Wire:
    """A blocking socket with bounded reads: every read waits at most the timeout and the deadline."""

    def __init__(self, sock: socket.socket, budget: Budget, timeout: float) -> None:
        self.sock, self.budget, self.timeout = sock, budget, timeout
        self.buffer = bytearray()

    def _fill(self, want: int) -> None:
        if _QUICKACK is not None:  # the daemon writes small pieces: delayed ACKs would stall each by 40 ms
            self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        self.sock.settimeout(min(self.timeout, self.budget.remaining_time()))
        chunk = self.sock.recv(max(want, 4096) if want < 65_536 else 65_536)
        if not chunk:
            raise EOFError("peer closed the connection")
        self.budget.charge(len(chunk))
        self.buffer += chunk

    def exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill(count - len(self.buffer))
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def line(self) -> bytes:
        """One line without its newline; longer than MAX_LINE is a protocol error."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                data = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                if len(data) > MAX_LINE:
                    raise ProtocolError("line too long")
                return data.rstrip(b"\r")
            if len(self.buffer) > MAX_LINE:
                raise ProtocolError("line too long")
            start = len(self.buffer)
            self._fill(1)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(min(self.timeout, self.budget.remaining_time()))
        self.sock.sendall(data)


def greeting_version(line: bytes) -> tuple[int, str]:
    """(protocol major, 'major.minor') of a daemon greeting."""
    match = _GREETING.match(line)
    if match is None:
        raise ProtocolError("not an rsync daemon greeting")
    major = int(match[1])
    return major, f"{major}.{int(match[2])}" if match[2] is not None else str(major)


def handshake(wire: Wire) -> tuple[int, str]:
    """Read the greeting, answer protocol 30; returns the greeting's (major, version)."""
    major, version = greeting_version(wire.line())
    wire.send(b"@RSYNCD: %d.0\n" % PROTOCOL)
    return major, version


def module_list(wire: Wire, limit: int) -> tuple[list[bytes], bool]:
    """Ask for the module list; at most `limit` names, True when more were offered or lines were cut."""
    wire.send(b"\n")
    names: list[bytes] = []
    for _ in range(MAX_LINES):
        try:
            line = wire.line()
        except EOFError:  # old daemons close instead of sending EXIT
            return names, False
        if line.startswith(b"@RSYNCD: EXIT"):
            return names, False
        if line.startswith(b"@ERROR"):
            raise NotSent("module list refused")
        name, tab, _comment = line.partition(b"\t")  # lines without a tab are the MOTD
        name = name.strip(b" ")
        if not tab or not valid_module(name) or name in names:
            continue
        if len(names) >= limit:
            return names, True
        names.append(name)
    return names, True


def valid_module(name: bytes) -> bool:
    return 0 < len(name) <= 128 and all(0x20 < b < 0x7F for b in name) and b"/" not in name and b"]" not in name


def open_module(wire: Wire, module: bytes) -> str:
    """'ok', 'auth' (a password is required) or 'refused' (an @ERROR or an EXIT)."""
    wire.send(module + b"\n")
    for _ in range(MAX_LINES):  # MOTD lines may come first
        line = wire.line()
        if line == b"@RSYNCD: OK":
            return "ok"
        if line.startswith(b"@RSYNCD: AUTHREQD"):
            return "auth"
        if line.startswith(b"@ERROR") or line.startswith(b"@RSYNCD: EXIT"):
            return "refused"
    raise ProtocolError("no answer to the module request")


def send_args(wire: Wire, args: list[bytes]) -> None:
    """Server arguments, NUL-terminated (protocol 30), then an empty one."""
    wire.send(b"".join(arg + b"\0" for arg in args) + b"\0")


def setup(wire: Wire) -> None:
    """Compat flags (a varint) and checksum seed, sent before multiplexing starts."""
    flags = varint(wire.exact)
    if flags & 1:  # CF_INC_RECURSE: never asked for ('i' not in the client info)
        raise ProtocolError("incremental recursion not offered")
    wire.exact(4)


def varint(read: Callable[[int], bytes]) -> int:
    first = read(1)[0]
    extra = _EXTRA[first // 4]
    if extra >= 5:
        raise ProtocolError("varint overflow")
    if not extra:
        value = first
    else:
        value = int.from_bytes(read(extra) + bytes([first & ((1 << (8 - extra)) - 1)]), "little")
    return value - (1 << 32) if value & 0x80000000 else value


def varlong(read: Callable[[int], bytes], min_bytes: int) -> int:
    head = read(min_bytes)
    extra = _EXTRA[head[0] // 4]
    if min_bytes + extra > 9:
        raise ProtocolError("varlong overflow")
    body = head[1:]
    if extra:
        body += read(extra) + bytes([head[0] & ((1 << (8 - extra)) - 1)])
    else:
        body += head[:1]
    value = int.from_bytes(body[:8], "little")
    return value - (1 << 64) if value & (1 << 63) else value


class Mux:
    """The multiplexed stream from the server: MSG_DATA payload; other messages are read and dropped."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.pending = 0  # MSG_DATA bytes left in the current frame

    def read(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            if not self.pending:
                self._frame()
                continue
            take = min(self.pending, count - len(out))
            out += self.wire.exact(take)
            self.pending -= take
        return bytes(out)

    def _frame(self) -> None:
        header = struct.unpack("<I", self.wire.exact(4))[0]
        tag, length = (header >> 24) - MPLEX_BASE, header & 0xFFFFFF
        if tag not in KNOWN_MESSAGES:
            raise ProtocolError("unknown message tag")
        if tag == MSG_DATA:
            self.pending = length
            return
        left = length
        while left:  # logging text and the like: never kept (it quotes file names)
            left -= len(self.wire.exact(min(left, 65_536)))
        if tag == MSG_NO_SEND:
            raise NotSent("the sender could not open the file")
        if tag == MSG_ERROR_EXIT:
            raise NotSent("the sender ended with an error")

    def send(self, payload: bytes) -> None:
        self.wire.send(struct.pack("<I", ((MPLEX_BASE + MSG_DATA) << 24) + len(payload)) + payload)


@dataclass
class FileEntry:
    name: bytes  # path relative to the transfer root, "." for the root itself
    mode: int
    size: int
    target: bytes | None = None


def filter_rules(max_depth: int) -> bytes:
    """The filter list: exclude what lies below the walk's depth (folders one deeper are still listed)."""
    rule = b"- /" + b"/".join([b"*"] * (max_depth + 2))
    return struct.pack("<i", len(rule)) + rule + struct.pack("<i", 0)


def file_list(mux: Mux, limit: int, budget: Budget) -> tuple[list[FileEntry], bool]:
    """Entries of the file list (links sent with -l); True when cut at `limit` or by the byte budget."""
    entries: list[FileEntry] = []
    last = b""
    mode = 0
    read = mux.read
    while True:
        if len(entries) >= limit or budget.bytes_left() <= 0:
            return entries, True
        flags = read(1)[0]
        if flags == 0:
            return entries, False
        if flags & XMIT_EXTENDED_FLAGS:
            flags |= read(1)[0] << 8
            if flags == XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST:
                varint(read)  # the sender's I/O error flags: some entries were unreadable
                return entries, False
        prefix = read(1)[0] if flags & XMIT_SAME_NAME else 0
        length = varint(read) if flags & XMIT_LONG_NAME else read(1)[0]
        if prefix > len(last) or length < 0 or prefix + length >= MAX_PATH:
            raise ProtocolError("file name out of bounds")
        name = last[:prefix] + read(length)
        last = name
        if flags & XMIT_HLINKED and not flags & XMIT_HLINK_FIRST:
            raise ProtocolError("hard-link data not asked for")
        size = varlong(read, 3)
        if not flags & XMIT_SAME_TIME:
            varlong(read, 4)
        if flags & XMIT_MOD_NSEC:
            varint(read)
        if not flags & XMIT_SAME_MODE:
            mode = struct.unpack("<I", read(4))[0]
        target = None
        if mode & S_IFMT == S_IFLNK:
            link = varint(read)
            if not 0 <= link < MAX_PATH:
                raise ProtocolError("link target out of bounds")
            target = read(link)
        if size < 0:
            raise ProtocolError("negative size")
        entries.append(FileEntry(name, mode, size, target))


def write_ndx_request() -> bytes:
    """Request file index 0 (the only file listed) with ITEM_TRANSFER and an empty checksum header."""
    return b"\x01" + struct.pack("<H", ITEM_TRANSFER) + b"\0" * 16


def read_ndx(read: Callable[[int], bytes]) -> int:
    first = read(1)[0]
    negative = first == 0xFF
    if negative:
        first = read(1)[0]
    elif first == 0:
        return -1  # NDX_DONE
    if first == 0xFE:
        b = read(2)
        if b[0] & 0x80:
            value = int.from_bytes(bytes([b[1]]) + read(2) + bytes([b[0] & 0x7F]), "little")
        else:
            value = (b[0] << 8) + b[1] + (1 if negative else -1)
    else:
        value = first + (1 if negative else -1)
    return -value if negative else value


def file_head(mux: Mux, limit: int) -> tuple[bytes, bool]:
    """After the request: the first `limit` bytes of literal data; True when the file ended first."""
    if read_ndx(mux.read) != 0:
        raise ProtocolError("answer for another file")
    iflags = struct.unpack("<H", mux.read(2))[0]
    if iflags & ITEM_BASIS_TYPE_FOLLOWS:
        mux.read(1)
    if iflags & ITEM_XNAME_FOLLOWS:
        length = mux.read(1)[0]
        if length & 0x80:
            length = ((length & 0x7F) << 8) + mux.read(1)[0]
        mux.read(length)
    if not iflags & ITEM_TRANSFER:
        raise NotSent("the sender did not transfer the file")
    mux.read(16)  # the checksum header, echoed
    data = bytearray()
    while True:
        token = struct.unpack("<i", mux.read(4))[0]
        if token == 0:
            return bytes(data), True
        if token < 0 or token > MAX_TOKEN:
            raise ProtocolError("unexpected token")
        room = limit - len(data)
        if token > room:
            data += mux.read(room)
            return bytes(data), False
        data += mux.read(token)
        if len(data) >= limit:  # exactly at the budget: the file is whole if its end comes next
            return bytes(data), struct.unpack("<i", mux.read(4))[0] == 0
