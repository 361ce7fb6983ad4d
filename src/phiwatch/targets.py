"""What to scan and what never to touch.

Targets are parsed into address blocks up front (host names are resolved once,
forward only) but addresses are streamed from those blocks, never expanded into
a list. Excludes always win.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LARGE_SCAN = 65_536
MAX_SPEC_LENGTH = 512


class TargetError(ValueError):
    """A target or port specification that cannot be used; the message is one clear line."""


@dataclass(frozen=True)
class Block:
    """An inclusive range of addresses of one family."""

    first: int
    last: int
    version: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def addresses(self) -> Iterator[str]:
        """Every address of the block as text, streamed, without address objects."""
        if self.version == 4:
            ntoa = socket.inet_ntoa
            for value in range(self.first, self.last + 1):
                yield ntoa(value.to_bytes(4, "big"))
        else:
            for value in range(self.first, self.last + 1):
                yield str(ipaddress.IPv6Address(value))

    def address(self, value: int) -> Address:
        if self.version == 4:
            return ipaddress.IPv4Address(value)
        return ipaddress.IPv6Address(value)


def _block(first: Address, last: Address) -> Block:
    if first.version != last.version:
        raise TargetError(f"range mixes IPv4 and IPv6: {first}-{last}")
    if int(last) < int(first):
        raise TargetError(f"range ends before it starts: {first}-{last}")
    return Block(int(first), int(last), first.version)


def _parse_range(spec: str) -> Block:
    start_text, _, end_text = spec.partition("-")
    start = ipaddress.ip_address(start_text.strip())
    end_text = end_text.strip()
    if start.version == 4 and end_text.isdigit():
        # 10.0.0.1-20: the last octet
        last_octet = int(end_text)
        if last_octet > 255:
            raise TargetError(f"bad range end in {spec!r}")
        end: Address = ipaddress.IPv4Address((int(start) & ~0xFF) | last_octet)
    else:
        end = ipaddress.ip_address(end_text)
    return _block(start, end)


def _resolve(name: str) -> list[Block]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError(f"cannot resolve host name {name!r}") from exc
    seen: dict[str, Block] = {}
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        seen.setdefault(str(address), _block(address, address))
    return list(seen.values())


def _looks_like_host_name(spec: str) -> bool:
    labels = spec.rstrip(".").split(".")
    return bool(spec) and all(
        0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) for label in labels
    )


def parse_spec(spec: str) -> list[Block]:
    """One target: an address, a CIDR block, a range or a host name."""
    spec = spec.strip()
    if not spec or len(spec) > MAX_SPEC_LENGTH:
        raise TargetError(f"bad target {spec[:60]!r}")
    try:
        if "/" in spec:
            net = ipaddress.ip_network(spec, strict=False)
            return [_block(net.network_address, net.broadcast_address)]
        if "-" in spec and (spec[0].isdigit() or ":" in spec.partition("-")[0]):
            return [_parse_range(spec)]
        address = ipaddress.ip_address(spec.strip("[]"))
        return [_block(address, address)]
    except ValueError as exc:
        if isinstance(exc, TargetError):
            raise
        if "/" not in spec and _looks_like_host_name(spec) and not spec[0].isdigit():
            return _resolve(spec)
        raise TargetError(f"bad target {spec!r}: not an address, CIDR block, range or host name") from exc


def read_list_file(path: str | Path) -> Iterator[str]:
    """Targets from a file: one or more per line, separated by spaces or commas; # comments."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.split("#", 1)[0]
                yield from line.replace(",", " ").split()
    except OSError as exc:
        raise TargetError(f"cannot read target file {str(path)!r}: {exc.strerror}") from exc


def _merge(blocks: Iterable[Block]) -> list[Block]:
    """Sort and merge overlapping or adjacent blocks of the same family."""
    merged: list[Block] = []
    for block in sorted(blocks, key=lambda b: (b.version, b.first)):
        if merged and merged[-1].version == block.version and block.first <= merged[-1].last + 1:
            last = merged[-1]
            merged[-1] = Block(last.first, max(last.last, block.last), last.version)
        else:
            merged.append(block)
    return merged


def _subtract(blocks: list[Block], excludes: list[Block]) -> list[Block]:
    result: list[Block] = []
    for block in blocks:
        pieces = [block]
        for ex in excludes:
            if ex.version != block.version:
                continue
            next_pieces: list[Block] = []
            for piece in pieces:
                if ex.last < piece.first or ex.first > piece.last:
                    next_pieces.append(piece)
                    continue
                if piece.first < ex.first:
                    next_pieces.append(Block(piece.first, ex.first - 1, piece.version))
                if piece.last > ex.last:
                    next_pieces.append(Block(ex.last + 1, piece.last, piece.version))
            pieces = next_pieces
        result.extend(pieces)
    return result


@dataclass
class TargetSet:
    """The addresses to scan: merged blocks minus excludes. Streams addresses."""

    specs: list[str] = field(default_factory=list)
    exclude_specs: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(block.size for block in self.blocks)

    def addresses(self) -> Iterator[str]:
        """Every address as text, block by block; one string at a time."""
        for block in self.blocks:
            yield from block.addresses()

    def __contains__(self, address: str) -> bool:
        try:
            value = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(
            b.version == value.version and b.first <= int(value) <= b.last for b in self.blocks
        )


def build_excludes(excludes: Iterable[str] = (), exclude_files: Iterable[str] = ()) -> TargetSet:
    """The do-not-probe set alone, for filtering services that come from a list."""
    specs = [item for spec in excludes for item in spec.replace(",", " ").split()]
    for path in exclude_files:
        specs.extend(read_list_file(path))
    return TargetSet(specs, [], _merge(b for spec in specs for b in parse_spec(spec)))


def _is_file(spec: str) -> bool:
    try:
        return len(spec) <= 4096 and Path(spec).is_file()
    except (OSError, ValueError):
        return False


def build_targets(
    specs: Iterable[str],
    list_files: Iterable[str] = (),
    excludes: Iterable[str] = (),
    exclude_files: Iterable[str] = (),
) -> TargetSet:
    """Parse every target and exclude; excludes always win."""
    all_specs: list[str] = []
    for spec in specs:
        if _is_file(spec):
            all_specs.extend(read_list_file(spec))
        else:
            all_specs.append(spec)
    for path in list_files:
        all_specs.extend(read_list_file(path))
    all_excludes = [item for spec in excludes for item in spec.replace(",", " ").split()]
    for path in exclude_files:
        all_excludes.extend(read_list_file(path))
    if not all_specs:
        raise TargetError("no targets given")
    blocks = _merge(b for spec in all_specs for b in parse_spec(spec))
    exclude_blocks = _merge(b for spec in all_excludes for b in parse_spec(spec))
    return TargetSet(all_specs, all_excludes, _subtract(blocks, exclude_blocks))


def address_order(host: str) -> tuple[int, str]:
    """Sort key: IPv4 before IPv6, numerically; anything else after, by name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (9, host)
    return (address.version, f"{int(address):040d}")


def parse_ports(text: str) -> list[int]:
    """`104,4242,11110-11112` -> sorted unique ports."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                low_text, high_text = part.split("-", 1)
                low, high = int(low_text), int(high_text)
            else:
                low = high = int(part)
        except ValueError as exc:
            raise TargetError(f"bad port specification {part!r}") from exc
        if not (1 <= low <= high <= 65535):
            raise TargetError(f"port out of range in {part!r} (1-65535)")
        ports.update(range(low, high + 1))
    if not ports:
        raise TargetError("no ports given")
    return sorted(ports)
