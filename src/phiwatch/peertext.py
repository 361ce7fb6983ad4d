"""The one gate for text a peer sends: nothing a peer says is kept as it was said.

Banners, Server headers, FTP welcome lines, page titles, authentication realms,
certificate subjects, issuers and alternative names, DICOM implementation version names,
error texts and the names of shares, modules, exports, buckets and folders may all carry
a patient's name. Such text enters a model only as a `PeerText` (or a `PlaceName`), and
only this module builds them. Each keeps one of:

(a) a product and version from the data table `probes/peer_products.yaml`: "vsftpd 3.0.3";
(b) a class from a closed vocabulary and a length: "HL7 v2 over MLLP, 212 bytes";
(c) a keyed hash and a length: "#3fa1b2c4d5e6 (17 chars)". The key is this installation's
    salt (32 random bytes in `$XDG_DATA_HOME/phiwatch/salt`, mode 0600, made once): the same
    text gives the same hash in every scan of this installation, and nobody without the salt
    can look a hash up.

Names that locate data follow one rule (`place_name`): a name is kept only when every word
of it is one of the table's generic, non-personal words (`imaging`, `pacs-export`,
`/srv/dicom`) or a number of up to four digits; any other name becomes (c), so a report can
still say which share to close ("share #3fa1b2c4d5e6 (9 chars)") and the same share keeps
its hash from one scan to the next.

The types enforce it: their validator accepts only text of these shapes, with products
from the table, classes from the vocabulary and words from the generic list, so text a
probe copies from a peer fails validation wherever a model is built or assigned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator

TABLE = Path(__file__).parent / "probes" / "peer_products.yaml"
HASH_HEX = 12
_VERSION = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,4}){0,3}(?:[a-z]|p[0-9]|-?(?:rc|beta|alpha)[0-9]?)?")
_HASHED = re.compile(rf"#[0-9a-f]{{{HASH_HEX}}} \([0-9]{{1,9}} chars\)")
_CLASSED = re.compile(r"(?P<label>[A-Za-z0-9 ().,/-]{1,60}), (?P<length>[0-9]{1,9}) bytes")
_WORDS = re.compile(r"[A-Za-z]+|[0-9]+")
_SEPARATORS = re.compile(r"[-_./ $]*")

# (b): what a peer's first bytes can be said to be, without keeping them.
CLASSES = (
    "HL7 v2 over MLLP",
    "HL7 v2",
    "ASTM E1381 (ENQ)",
    "ASTM E1394 record",
    "DICOM PDU",
    "TLS record",
    "HTTP",
    "binary",
    "text",
    "empty",
)


@dataclass(frozen=True)
class _Row:
    product: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class _Table:
    rows: tuple[_Row, ...]
    products: frozenset[str]
    generic: frozenset[str]
    implementation: re.Pattern[str]


@cache
def _table() -> _Table:
    document = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    rows = tuple(_Row(r["product"], re.compile(r["regex"], re.IGNORECASE)) for r in document["products"])
    generic = frozenset(w.lower() for w in document["generic_words"])
    prefixes = "|".join(re.escape(p) for p in sorted(document["implementation_prefixes"], key=len, reverse=True))
    implementation = re.compile(rf"(?:{prefixes})(?:[_ .-]?(?:REV_?)?[0-9][0-9A-Za-z._]{{0,10}})?", re.IGNORECASE)
    return _Table(rows, frozenset(r.product for r in rows), generic, implementation)


# --- the installation's key -------------------------------------------------------

def salt_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "phiwatch" / "salt"


_SCAN_SALT: list[bytes] = []


@contextmanager
def scan_salt() -> Iterator[None]:
    """A salt for one scan only (a scan with --no-db writes nothing to disk): its hashes match
    within the scan, not across scans; the installation's salt is back afterwards."""
    _SCAN_SALT.append(secrets.token_bytes(32))
    try:
        yield
    finally:
        _SCAN_SALT.pop()


def _salt() -> bytes:
    return _SCAN_SALT[-1] if _SCAN_SALT else _installation_salt()


@cache
def _installation_salt() -> bytes:
    """This installation's salt: read, or made once (0600) by whichever process comes first."""
    path = salt_path()
    try:
        return _read_salt(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_salt(path)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return _read_salt(path)


def _read_salt(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) < 32:  # a salt being written by another process right now
        raise FileNotFoundError(str(path))
    return data[:32]


def keyed_hash(text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hmac.new(_salt(), data, hashlib.sha256).hexdigest()[:HASH_HEX]


# --- the gate -------------------------------------------------------------------

def _printable(raw: str | bytes, limit: int) -> str:
    if isinstance(raw, bytes):
        raw = raw[: limit * 4].decode("latin-1")
    return "".join(c if c.isprintable() else " " for c in raw[:limit]).strip()


def _hashed(raw: str | bytes) -> str:
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    return f"#{keyed_hash(data)} ({len(data)} chars)"


def product_of(raw: str | bytes) -> str | None:
    """(a): the product (and version) the table finds in the text, else None."""
    text = _printable(raw, 512)
    for row in _table().rows:
        found = row.pattern.search(text)
        if found is None:
            continue
        version = found.groupdict().get("version")
        if version and _VERSION.fullmatch(version):
            return f"{row.product} {version}"
        return row.product
    return None


def classify(data: bytes) -> str:
    """(b): the class of a peer's first bytes, from a closed vocabulary."""
    if not data:
        return "empty"
    if data[:1] == b"\x0b" and data[1:4] == b"MSH":
        return "HL7 v2 over MLLP"
    if data[:3] == b"MSH" and len(data) > 8 and not data[3:4].isalnum():
        return "HL7 v2"
    if data[:1] == b"\x05":
        return "ASTM E1381 (ENQ)"
    if data[:1] == b"\x02" and data[1:2].isdigit() and data[2:3] in (b"H", b"P", b"O", b"R"):
        return "ASTM E1394 record"
    if data[:1] in b"\x01\x02\x03\x04\x05\x06\x07" and len(data) >= 6 and data[1] == 0:
        return "DICOM PDU"
    if data[:1] == b"\x16" and data[1:2] == b"\x03":
        return "TLS record"
    if data[:5] == b"HTTP/":
        return "HTTP"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:512]):
        return "text"
    return "binary"


def peer_text(raw: str | bytes | None) -> PeerTextValue | None:
    """The gate for any text a peer sent: a product, else a class and length, else a keyed hash.

    Free text (a title, a realm, a certificate subject) that names no known product is hashed;
    bytes are classed when they are a known non-text protocol (HL7, ASTM, DICOM, TLS).
    """
    if raw is None:
        return None
    found = product_of(raw)
    if found is not None:
        return found
    if isinstance(raw, bytes):
        kind = classify(raw)
        if kind not in ("text", "empty"):
            return f"{kind}, {len(raw)} bytes"
    if not raw:
        return None
    return _hashed(raw)


def first_bytes(data: bytes) -> PeerTextValue:
    """A server-first protocol's first bytes: a product, else their class and length (never hashed:
    first bytes differ in every session, so a hash would match nothing)."""
    found = product_of(data)
    if found is not None:
        return found
    return f"{classify(data)}, {len(data)} bytes"


def implementation_name(raw: str) -> PeerTextValue | None:
    """A DICOM implementation version name: kept as sent when it is a known product prefix and a
    version (fingerprints match it exactly), else through `peer_text`."""
    text = raw.strip()
    if len(text) <= 16 and _table().implementation.fullmatch(text):
        return text
    return peer_text(text or None)


def place_name(raw: str | bytes) -> PlaceNameValue:
    """A share, module, export, bucket or folder name: kept when generic, else a keyed hash."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if _generic(text):
        return text
    return _hashed(raw)


def _generic(text: str) -> bool:
    if not text or len(text) > 64:
        return False
    if text == "/":
        return True
    words = _WORDS.findall(text)
    if not words or _SEPARATORS.sub("", _WORDS.sub("", text)):
        return False
    generic = _table().generic
    return all((w.isdigit() and len(w) <= 4) or w.lower() in generic for w in words)


# --- the types ------------------------------------------------------------------

def _gate_shaped(value: str) -> str:
    """Accept only what the gate can produce: a table product, a class and length, a hash."""
    if _HASHED.fullmatch(value):
        return value
    classed = _CLASSED.fullmatch(value)
    if classed and classed.group("label") in CLASSES:
        return value
    if len(value) <= 16 and _table().implementation.fullmatch(value):
        return value
    products = _table().products
    if value in products:
        return value
    name, _, version = value.rpartition(" ")
    if name in products and _VERSION.fullmatch(version):
        return value
    raise ValueError("peer text must pass through phiwatch.peertext")


def _place_shaped(value: str) -> str:
    if _HASHED.fullmatch(value) or _generic(value):
        return value
    raise ValueError("a name that locates data must pass through phiwatch.peertext.place_name")


PeerTextValue = Annotated[str, AfterValidator(_gate_shaped)]
PlaceNameValue = Annotated[str, AfterValidator(_place_shaped)]
# The names models use.
PeerText = PeerTextValue
PlaceName = PlaceNameValue
