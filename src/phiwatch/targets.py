"""What to scan and what never to touch.

Targets are parsed into address blocks up front (host names are resolved once,
forward only) but addresses are streamed from those blocks, never expanded into
a list. Excludes always win.

One canonical form for every address (`canonical`, `fold`): targets, excludes and
service lists all pass through it, so no spelling can talk an exclude around.

- IPv4 in any spelling the system's resolver accepts (`inet_aton`): `127.1`,
  `2130706433`, `0x7f000001`, `0177.0.0.1` (octal), `0x7f.0.0.1`, is that IPv4 address.
- IPv6 that embeds an IPv4 address and reaches it from this host is that IPv4
  address: IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d` and
  IPv4-compatible `::a.b.c.d` (but `::` and `::1`). Zero-padded and upper-case IPv6
  groups, brackets and CIDR blocks over these prefixes fold the same way.
- An excluded IPv4 address also excludes its IPv6 aliases that reach it through a
  translator: NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:AABB:CCDD::/48`.
- Never scanned, whatever is given: unspecified and "this network" (0.0.0.0/8, `::`),
  multicast (224.0.0.0/4, ff00::/8) and the limited broadcast 255.255.255.255.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LARGE_SCAN = 65_536
MAX_SPEC_LENGTH = 512
STDIN = "-"  # `-iL -` reads targets from standard input
# Endings of file names that are no top-level domain: a target ending so is a file name,
# never a host name to resolve (`-oX scan.xml` read as `-o X` and a target `scan.xml`).
FILE_ENDINGS = frozenset({
    "xml", "json", "jsonl", "txt", "csv", "tsv", "gnmap", "nmap", "html", "htm", "log", "lst",
    "sarif", "yaml", "yml", "conf", "cfg", "ini", "toml", "db", "sqlite", "dcm", "gz", "bz2", "xz",
    "tar", "pcap", "pcapng", "out", "list",
})
SCAN_OUTPUT_ENDINGS = frozenset({"xml", "json", "jsonl", "gnmap", "nmap", "html", "htm", "sarif", "csv"})


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


# IPv6 ranges that fold onto IPv4: (first, last) of the IPv6 range; IPv4 = value - first.
_MAPPED = 0xFFFF << 32
_TRANSLATED = 0xFFFF0000 << 32
_FOLDS: tuple[tuple[int, int], ...] = (
    (_MAPPED, _MAPPED | 0xFFFFFFFF),
    (_TRANSLATED, _TRANSLATED | 0xFFFFFFFF),
    (0, 0xFFFFFFFF),  # IPv4-compatible; :: and ::1 are cut out below
)
_NAT64 = 0x64FF9B << 96
_SIX_TO_FOUR = 0x2002 << 112
NEVER_SCANNED: tuple[Block, ...] = (
    Block(0, 0x00FFFFFF, 4),  # 0.0.0.0/8: this host, this network
    Block(0xE0000000, 0xEFFFFFFF, 4),  # 224.0.0.0/4 multicast
    Block(0xFFFFFFFF, 0xFFFFFFFF, 4),  # limited broadcast
    Block(0, 0, 6),  # ::
    Block(0xFF << 120, (1 << 128) - 1, 6),  # ff00::/8 multicast
)
_PART = r"(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,12})"
_NUMERIC_IPV4 = re.compile(rf"{_PART}(?:\.{_PART}){{0,3}}")


class AmbiguousAddress(TargetError):
    """A spelling two readers read differently: `010.1.2.3` is 8.1.2.3 to the resolver."""


def readings(text: str) -> list[Address]:
    """Every address `text` can mean, canonical: one, or two for a zero-padded octet that
    the resolver reads as octal and a person as decimal. ValueError if not an address."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:
        raise ValueError("scoped IPv6 addresses are not supported")
    try:
        return [_fold_address(ipaddress.ip_address(text))]
    except ValueError:
        if not _NUMERIC_IPV4.fullmatch(text):
            raise
    found: list[Address] = []
    try:  # the spellings the resolver accepts: 127.1, 2130706433, 0x7f000001, 0177.0.0.1
        found.append(ipaddress.IPv4Address(socket.inet_aton(text)))
    except OSError:
        pass
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts) and all(int(p) < 256 for p in parts):
        decimal = ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
        if decimal not in found:
            found.append(decimal)
    if not found:
        raise ValueError(f"not an address: {text[:60]!r}")
    return found


def canonical(text: str) -> Address:
    """The one canonical address for `text`, however it is spelled; ValueError if not an
    address, AmbiguousAddress if two readers would read it as different addresses."""
    found = readings(text)
    if len(found) > 1:
        raise AmbiguousAddress(
            f"ambiguous address {text.strip()[:60]!r}: {found[0]} to the resolver (octal), {found[1]}"
            " to a reader; write it without leading zeros"
        )
    return found[0]


def _fold_address(address: Address) -> Address:
    if address.version == 6:
        value = int(address)
        for first, last in _FOLDS:
            if first <= value <= last and not (first == 0 and value <= 1):
                return ipaddress.IPv4Address(value - first)
    return address


def never_scanned(address: Address) -> bool:
    value = int(address)
    return any(b.version == address.version and b.first <= value <= b.last for b in NEVER_SCANNED)


def fold(block: Block) -> list[Block]:
    """The block in canonical form: its parts that embed IPv4 addresses become IPv4 blocks."""
    if block.version == 4:
        return [block]
    pieces = [block]
    folded: list[Block] = []
    for first, last in _FOLDS:
        low = 2 if first == 0 else first
        rest: list[Block] = []
        for piece in pieces:
            start, end = max(piece.first, low), min(piece.last, last)
            if start > end:
                rest.append(piece)
                continue
            folded.append(Block(start - first, end - first, 4))
            if piece.first < start:
                rest.append(Block(piece.first, start - 1, 6))
            if piece.last > end:
                rest.append(Block(end + 1, piece.last, 6))
        pieces = rest
    return folded + pieces


def aliases(block: Block) -> list[Block]:
    """An excluded IPv4 block and the IPv6 addresses that reach it through a translator."""
    if block.version != 4:
        return [block]
    return [
        block,
        Block(_NAT64 | block.first, _NAT64 | block.last, 6),
        Block(_SIX_TO_FOUR | block.first << 80, _SIX_TO_FOUR | block.last << 80 | ((1 << 80) - 1), 6),
    ]


def _block(first: Address, last: Address) -> Block:
    if first.version != last.version:
        raise TargetError(f"range mixes IPv4 and IPv6: {first}-{last}")
    if int(last) < int(first):
        raise TargetError(f"range ends before it starts: {first}-{last}")
    return Block(int(first), int(last), first.version)


def _parse_range(spec: str) -> Block:
    start_text, _, end_text = spec.partition("-")
    start = _raw_address(start_text)
    end_text = end_text.strip()
    if start.version == 4 and end_text.isdigit():
        # 10.0.0.1-20: the last octet
        last_octet = int(end_text)
        if last_octet > 255:
            raise TargetError(f"bad range end in {spec!r}")
        end: Address = ipaddress.IPv4Address((int(start) & ~0xFF) | last_octet)
    else:
        end = _raw_address(end_text)
    return _block(start, end)


def _network(spec: str) -> Network:
    try:
        return ipaddress.ip_network(spec, strict=False)
    except ValueError:
        address, _, prefix = spec.rpartition("/")
        if not _NUMERIC_IPV4.fullmatch(address.strip()):
            raise
        return ipaddress.ip_network(f"{canonical(address)}/{prefix.strip()}", strict=False)


def _raw_address(text: str) -> Address:
    """An address in any accepted spelling, not yet folded (a range folds as a whole)."""
    text = text.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        folded = canonical(text)  # numeric IPv4 spellings
        return folded


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


def looks_like_file_name(spec: str) -> bool:
    """A path, or a name ending in a file type no top-level domain spells."""
    spec = spec.strip()
    if spec.startswith(("./", "../", "~", "/")) or "\\" in spec:
        return True
    ending = spec.rpartition(".")[2].lower()
    return "." in spec and ending in FILE_ENDINGS


def numeric_blocks(spec: str, exclude: bool = False) -> list[Block] | None:
    """An address, CIDR block or range as canonical blocks (as parse_spec); None for a host name,
    never resolved."""
    spec = spec.strip()
    if not spec or len(spec) > MAX_SPEC_LENGTH:
        raise TargetError(f"bad target {spec[:60]!r}")
    if exclude and "/" not in spec and "-" not in spec and _NUMERIC_IPV4.fullmatch(spec):
        try:
            return [_block(address, address) for address in readings(spec)]
        except ValueError:
            pass  # the error is the one parse_spec gives
    blocks = _parse_spec(spec, resolve=False)
    return None if blocks is None else [folded for block in blocks for folded in fold(block)]


def parse_spec(spec: str, exclude: bool = False) -> list[Block]:
    """One target: an address, a CIDR block, a range or a host name; in canonical form.

    An exclude written as an ambiguous single address excludes every reading of it; an
    ambiguous target is an error (scanning either reading could leave the scope).
    """
    blocks = numeric_blocks(spec, exclude)
    if blocks is not None:
        return blocks
    return [folded for block in _resolve(spec.strip()) for folded in fold(block)]


def _parse_spec(spec: str, resolve: bool = True) -> list[Block] | None:
    """Blocks of a spec; a host name resolved (or None with `resolve` False); a file name refused."""
    try:
        if "/" in spec:
            net = _network(spec.replace("[", "").replace("]", ""))
            return [_block(net.network_address, net.broadcast_address)]
        if "-" in spec and (spec[0].isdigit() or spec[0] == "[" or ":" in spec.partition("-")[0]):
            return [_parse_range(spec)]
        address = canonical(spec)
        return [_block(address, address)]
    except ValueError as exc:
        if isinstance(exc, TargetError):
            raise
        if looks_like_file_name(spec):
            raise TargetError(f"{spec[:80]!r} looks like a file name, not a target; give a list "
                              "with -iL, nmap or masscan output with --from") from None
        if "/" not in spec and _looks_like_host_name(spec) and not spec[0].isdigit():
            return _resolve(spec) if resolve else None
        raise TargetError(f"bad target {spec!r}: not an address, CIDR block, range or host name") from exc


def read_list_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, entry) from a file, or standard input for `-`: one or more entries per
    line, separated by spaces or commas; # comments."""
    try:
        if str(path) == STDIN:
            for number, line in enumerate(sys.stdin, 1):
                for item in line.split("#", 1)[0].replace(",", " ").split():
                    yield number, item
            return
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                for item in line.split("#", 1)[0].replace(",", " ").split():
                    yield number, item
    except OSError as exc:
        raise TargetError(f"cannot read target file {str(path)!r}: {exc.strerror or exc}") from exc


def read_list_file(path: str | Path) -> Iterator[str]:
    """Entries from a file (or `-`, standard input), without their line numbers."""
    for _, item in read_list_lines(path):
        yield item


def _parse_listed(path: str | Path, exclude: bool = False) -> tuple[list[str], list[Block]]:
    """Every entry of a list file parsed; an error names the file and the line."""
    specs: list[str] = []
    blocks: list[Block] = []
    name = "standard input" if str(path) == STDIN else repr(str(path))
    for number, item in read_list_lines(path):
        try:
            blocks.extend(parse_spec(item, exclude))
        except TargetError as exc:
            raise TargetError(f"{name} line {number}: {exc}") from None
        specs.append(item)
    return specs, blocks


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
            value = canonical(address)
        except ValueError:
            return False
        return any(
            b.version == value.version and b.first <= int(value) <= b.last for b in self.blocks
        )


def build_excludes(excludes: Iterable[str] = (), exclude_files: Iterable[str] = ()) -> TargetSet:
    """The do-not-probe set alone, for filtering services that come from a list."""
    specs = [item for spec in excludes for item in spec.replace(",", " ").split()]
    blocks = [block for spec in specs for block in parse_spec(spec, exclude=True)]
    for path in exclude_files:
        listed, listed_blocks = _parse_listed(path, exclude=True)
        specs.extend(listed)
        blocks.extend(listed_blocks)
    return TargetSet(specs, [], _exclude_blocks(blocks))


def _exclude_blocks(blocks: Iterable[Block]) -> list[Block]:
    """Excluded blocks with every alias that reaches them, and what is never scanned."""
    return _merge([*(alias for block in blocks for alias in aliases(block)), *NEVER_SCANNED])


def is_list_file(spec: str) -> bool:
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
    """Parse every target and exclude; excludes always win. Nothing left to scan is an error."""
    all_specs: list[str] = []
    blocks: list[Block] = []
    for spec in specs:
        if is_list_file(spec) and spec.rpartition(".")[2].lower() in SCAN_OUTPUT_ENDINGS:
            raise TargetError(f"{spec[:80]!r} looks like a scanner's output, not a list of targets: "
                              "give it with --from to probe the services it lists")
        listed = _parse_listed(spec) if is_list_file(spec) else ([spec], parse_spec(spec))
        all_specs.extend(listed[0])
        blocks.extend(listed[1])
    for path in list_files:
        listed = _parse_listed(path)
        all_specs.extend(listed[0])
        blocks.extend(listed[1])
    if not all_specs:
        raise TargetError("no targets given")
    excluded = build_excludes(excludes, exclude_files)
    targets = TargetSet(all_specs, excluded.specs, _subtract(_merge(blocks), excluded.blocks))
    if not targets.blocks:
        raise TargetError("every target is excluded (or never scanned: multicast, broadcast, 0.0.0.0/8): "
                          "nothing to scan")
    return targets


def address_order(host: str) -> tuple[int, str]:
    """Sort key: IPv4 before IPv6, numerically; anything else after, by name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (9, host)
    return (address.version, f"{int(address):040d}")


def parse_ports(text: str) -> list[int]:
    """`104,4242,11110-11112` -> sorted unique ports; as in nmap, `-` is every port, `-1024`
    starts at 1 and `60000-` ends at 65535."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                low_text, high_text = part.split("-", 1)
                low, high = int(low_text or 1), int(high_text or 65535)
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
