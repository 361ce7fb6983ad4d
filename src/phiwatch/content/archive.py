"""Archives from a header budget: zip and tar entry names, the head of a gzip/bzip2/xz stream.

Nothing is decompressed past the budget: a compressed stream is inflated with
``decompress(data, max_length=budget)``, so a bomb stays bounded whatever its name. Zip entry
names come from the central directory when the whole file is in the budget, else from the
local headers within it (the result says the central directory lies beyond). Entry names are
masked by `safe_entry_name`: names in medical shares often carry PHI.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import tarfile
import zipfile
import zlib
from io import BytesIO

from .kinds import MAX_ENTRIES, MAX_NESTING, InnerSniff, Sniffed, SniffStatus, kind_from_name, safe_entry_name

LZMA_MEMORY_LIMIT = 64 * 1024 * 1024  # an xz header may ask for a dictionary of gigabytes
ZIP_LOCAL, ZIP_CENTRAL, ZIP_END, ZIP_DESCRIPTOR = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x07\x08"
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"Rar!\x1a\x07": "rar",
    b"\x28\xb5\x2f\xfd": "zstd",
    ZIP_LOCAL: "zip",
    ZIP_END: "zip",
    ZIP_DESCRIPTOR: "zip",
}
_COMPRESSED_SUFFIXES = {
    ".gz": "", ".gzip": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".xz": "", ".txz": ".tar"
}


def _format(data: bytes, name: str) -> str | None:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    if name.lower().endswith(".tar") and len(data) >= 512 and _tar_checksum_ok(data[:512]):
        return "tar"  # pre-POSIX tar: no magic, but the header checksum holds
    return None


def has_archive_magic(data: bytes, name: str = "") -> bool:
    return _format(data, name) is not None


def _tar_checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:512]) and block[0] != 0


def _inner_name(name: str) -> str:
    lower = name.lower()
    for suffix, replacement in _COMPRESSED_SUFFIXES.items():
        if lower.endswith(suffix):
            return name[: -len(suffix)] + replacement
    return name


def sniff_archive(data: bytes, name: str, budget: int, complete: bool, depth: int, inner: InnerSniff) -> Sniffed:
    kind = _format(data, name) or "archive"
    if kind in ("gzip", "bzip2", "xz"):
        return _stream(kind, data, name, budget, complete, depth, inner)
    if kind == "zip":
        return _zip(data, complete)
    if kind == "tar":
        return _tar(data, complete, "tar")
    return Sniffed(kind="archive", verified=False, status="ok", detail=f"{kind} archive (entries not listed)")


def _stream(
    kind: str, data: bytes, name: str, budget: int, complete: bool, depth: int, inner: InnerSniff
) -> Sniffed:
    """The head of a single compressed stream, at most `budget` bytes of it, sniffed in turn."""
    head = b""
    ended = False
    try:
        if kind == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            head = inflater.decompress(data, budget)
            ended = inflater.eof
        elif kind == "bzip2":
            bunzip = bz2.BZ2Decompressor()
            head = bunzip.decompress(data, max_length=budget)
            ended = bunzip.eof
        else:
            unxz = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=LZMA_MEMORY_LIMIT)
            head = unxz.decompress(data, max_length=budget)
            ended = unxz.eof
    except (zlib.error, OSError, EOFError, lzma.LZMAError, MemoryError) as exc:
        if not head:
            return Sniffed(
                kind="archive",
                verified=False,
                status="malformed",
                detail=f"{kind} stream does not decompress ({type(exc).__name__})",
            )
    whole = ended and len(head) < budget
    size = f"{len(head)} bytes decompressed" + ("" if whole else " (bounded by the byte budget)")
    if depth < MAX_NESTING and head:
        found = inner(head, _inner_name(name), budget, whole and complete, depth + 1)
        if found.kind != "unknown":
            detail = f"{kind}-compressed; {size}; {found.detail or ''}".rstrip("; ")
            return found.model_copy(update={"detail": detail[:400]})
    cut = not ended and not complete and len(head) < budget
    status: SniffStatus = "truncated" if cut else "ok"
    return Sniffed(
        kind="archive",
        verified=bool(head),
        status=status,
        truncated=cut,
        detail=f"{kind} stream of one file; {size}; the decompressed head is not recognised",
    )


def _zip(data: bytes, complete: bool) -> Sniffed:
    if complete:
        try:
            with zipfile.ZipFile(BytesIO(data)) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error):
            pass
        else:
            listed = [safe_entry_name(info.filename) for info in infos[:MAX_ENTRIES]]
            return _listed("zip", listed, len(infos), "from the central directory", "ok", False)
    names: list[str] = []
    total = 0
    position = 4 if data.startswith(ZIP_DESCRIPTOR) else 0  # the marker of a split archive
    note = "from local headers; the central directory is beyond the byte budget"
    status: SniffStatus = "truncated" if not complete else "malformed"
    while True:
        signature = data[position : position + 4]
        if signature in (ZIP_CENTRAL, ZIP_END):
            note, status = "from local headers; the central directory follows within the budget", "ok"
            break
        if signature != ZIP_LOCAL:
            if len(signature) == 4:
                note, status = "from local headers; then bytes that are not a zip header", "malformed"
            break
        header = data[position + 4 : position + 30]
        if len(header) < 26:
            break
        _version, flags, _method, _time, _date, _crc, packed, _size, name_length, extra_length = struct.unpack(
            "<HHHHHIIIHH", header
        )
        start = position + 30
        raw_name = data[start : start + name_length]
        if len(raw_name) < name_length:
            break
        total += 1
        if len(names) < MAX_ENTRIES:
            names.append(safe_entry_name(raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")))
        if flags & 0x08 or packed == 0xFFFFFFFF:
            note = "from local headers; sizes follow the data, so the rest needs the central directory"
            status = "truncated" if not complete else "ok"
            break
        position = start + name_length + extra_length + packed
        if position > len(data):
            break
    return _listed("zip", names, total, note, status, status == "truncated")


def _tar(data: bytes, complete: bool, kind: str) -> Sniffed:
    names: list[str] = []
    total = 0
    cut = False
    bad = False
    try:
        with tarfile.open(fileobj=BytesIO(data), mode="r:") as archive:
            while True:
                try:
                    member = archive.next()
                except tarfile.ReadError:
                    bad = True
                    break
                if member is None:
                    break
                total += 1
                if len(names) < MAX_ENTRIES:
                    names.append(safe_entry_name(member.name))
                if member.offset_data + (member.size if member.isreg() else 0) > len(data):
                    cut = True
                    break
            if not cut and archive.offset >= len(data) - 512 and not complete:
                cut = True  # no end-of-archive blocks within the budget
    except (tarfile.TarError, OSError, ValueError, EOFError, struct.error, UnicodeError):
        bad = not names
    status: SniffStatus
    if cut and not complete:
        status = "truncated"
    elif cut or (bad and not names):
        status = "malformed"
    else:
        status = "ok"
    note = "the byte budget ends inside the archive" if status == "truncated" else "from headers within the budget"
    return _listed(kind, names, total, note, status, status == "truncated")


def _listed(kind: str, names: list[str], total: int, note: str, status: SniffStatus, truncated: bool) -> Sniffed:
    by_kind: dict[str, int] = {}
    for entry in names:
        hint = kind_from_name(entry)
        if hint:
            by_kind[hint] = by_kind.get(hint, 0) + 1
    hints = ", ".join(f"{count} {hint}" for hint, count in sorted(by_kind.items()))
    detail = f"{kind}: {total} entr{'y' if total == 1 else 'ies'} {note}"
    if hints:
        detail += f"; by name: {hints}"
    if total > len(names):
        detail += f"; first {len(names)} names kept"
    return Sniffed(
        kind="archive",
        verified=total > 0 or status == "ok",
        status=status,
        detail=detail,
        entries=names,
        truncated=truncated,
    )
